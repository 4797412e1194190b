"""The dataset card (README.md): YAML that `datasets` and the Hub read, and prose from the manifest."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dataengine.core.builder import Builder, create_builder
from dataengine.core.fields import field_kind
from dataengine.core.schema import SampleSchema
from dataengine.io.atomic import write_text_atomic
from dataengine.release.reader import Release, configs_of


def card_yaml(manifest: dict[str, Any], schema: SampleSchema, tasks: Sequence[str] = ()) -> dict[str, Any]:
    """The card's YAML header: one config per group of splits over the tar shards, with declared features."""
    import datasets

    features = schema.hf_features(manifest["fields"])
    # A split with no samples has no shards for a data_files pattern to match: leave it out.
    non_empty = [path for path, entry in manifest["splits"].items() if entry["num_samples"] > 0]
    configs, infos = [], []
    for index, (config, splits) in enumerate(configs_of(non_empty).items()):
        split_dict = datasets.SplitDict()
        for split, path in splits:
            entry = manifest["splits"][path]
            split_dict.add(datasets.SplitInfo(name=split, num_bytes=entry["num_bytes"], num_examples=entry["num_samples"]))
        configs.append(
            {
                "config_name": config,
                **({"default": True} if index == 0 else {}),
                "data_files": [{"split": split, "path": f"{path}/*.tar"} for split, path in splits],
            }
        )
        infos.append({"config_name": config, **datasets.DatasetInfo(features=features, splits=split_dict)._to_yaml_dict()})
    return {
        "pretty_name": f"{manifest['name']} {manifest['version']}",
        "license": manifest["license"],
        "task_categories": list(tasks),
        "tags": ["webdataset", "dataengine", manifest["builder"]],
        "configs": configs,
        "dataset_info": infos[0] if len(infos) == 1 else infos,
    }


def card_text(
    manifest: dict[str, Any],
    schema: SampleSchema,
    summary: dict[str, Any] | None = None,
    sections: Sequence[str] = (),
    tasks: Sequence[str] = (),
) -> str:
    """The whole card; `sections` are the family's extra lines for "How it was built", `tasks` its Hub task categories."""
    header = yaml.safe_dump(card_yaml(manifest, schema, tasks), sort_keys=False, allow_unicode=True)
    splits = "\n".join(
        f"| {split} | {entry['num_samples']} | {len(entry['shards'])} | {entry['num_bytes'] / 1e6:.1f} MB |"
        for split, entry in manifest["splits"].items()
    )
    rejects = manifest["rejects"]
    reject_lines = "\n".join(f"- `{code}`: {count}" for code, count in rejects["by_reason"].items()) or "- none"
    fields = "\n".join(f"- `{name}`: {field_kind(kind).description}" for name, kind in manifest["fields"].items())
    packages = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items())
    catalog = manifest.get("catalog", {})
    sources = ", ".join(f"`{k}` = `{v}`" for k, v in catalog.get("sources", {}).items()) or "none (generated)"
    depth_members = [f"`{m}` ({field_kind(k).description})" for m, k in manifest["fields"].items() if k.startswith("depth")]
    depth = (
        "; ".join(depth_members) + (f", {manifest['depth_source']}" if manifest.get("depth_source") else "") if depth_members else "none"
    )
    family_lines = "".join(f"{line}\n" for line in sections)
    first_split = next(iter(manifest["splits"]))
    last_shard = max(len(manifest["splits"][first_split]["shards"]) - 1, 0)
    config, _, split = first_split.rpartition("/")
    ours_args = f'config="{config}", split="{split}"' if config else f'split="{split}"'
    hf_args = f'"{config}", split="{split}"' if config else f'split="{split}"'
    return f"""---
{header}---

# {manifest["name"]} {manifest["version"]}

{manifest["description"].strip() or "A dataengine release."}

## How it was built

- builder: `{manifest["builder"]}` (sample kind `{manifest["sample_kind"]}`, schema in `schema.json`)
- seed: {manifest["seed"]}; catalog sha256: `{manifest["catalog_sha256"]}`
- overrides: {", ".join(f"`{o}`" for o in manifest["overrides"]) or "none"}; limit: {manifest["limit"] or "none"}
- sources: {sources}
- depth: {depth}
{family_lines}- packages: {packages}

The full resolved catalog is in `manifest.json`; the same catalog and seed rebuild byte-identical shards.

## Contents

| split | samples | shards | size |
|---|---|---|---|
{splits}

Members of every sample:
{fields}

Rejected samples: {rejects["total"]} (reasons in `rejects.jsonl`)
{reject_lines}
{_summary_section(summary)}
## Loading

```python
import dataengine
for sample in dataengine.load("<release dir>", {ours_args}):
    ...
```

```python
import datasets
ds = datasets.load_dataset("<release dir>", {hf_args})
```

```python
import webdataset as wds
ds = wds.WebDataset("<release dir>/{first_split}/{manifest["name"]}-{{000000..{last_shard:06d}}}.tar", shardshuffle=False)
```
"""


def _summary_section(summary: dict[str, Any] | None) -> str:
    """Per-category tables when the builder reports them, else the statistics as JSON."""
    if not summary:
        return ""
    lines = ["", "## Statistics", ""]
    for split, categories in summary.get("categories", {}).items():
        columns = list(next(iter(categories.values())))
        lines += [f"**{split}**", "", "| category | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        lines += [f"| {name} | " + " | ".join(str(values[c]) for c in columns) + " |" for name, values in categories.items()]
        lines.append("")
    rest = {k: v for k, v in summary.items() if k != "categories"}
    if rest:
        lines += ["```json", json.dumps(rest, indent=2), "```", ""]
    return "\n".join(lines)


def write_card(out: Path, manifest: dict[str, Any], schema: SampleSchema, summary: dict[str, Any], builder: Builder) -> None:
    """README.md of a release being finalised (a side file of `dataengine.run.finalize`)."""
    text = card_text(manifest, schema, summary, builder.card_sections(manifest), builder.task_categories)
    validation = out / "validation.json"
    if validation.exists():  # written by `dataengine validate`
        text += validation_section(json.loads(validation.read_text()))
    write_text_atomic(out / "README.md", text)


def validation_section(result: dict[str, Any]) -> str:
    """The card's summary of validation.json: verdict and reasons, model vs baselines, where to look.

    Metrics named `<metric>/<group>` (e.g. `accuracy/distance`) go to a second table, a row per group
    and a column per metric."""
    columns = [("model", result.get("metrics", {})), ("prior baseline", result.get("prior", {}))]
    if "reference" in result:
        columns += [("on the reference", result["reference"]["metrics"]), ("reference prior", result["reference"]["prior"])]
    if "against" in result:
        columns.append(("previous release", result["against"]["metrics"]))
    names = [name for name in result.get("metrics", {}) if "/" not in name]
    table = ["| metric | " + " | ".join(title for title, _ in columns) + " |", "|---|" + "---|" * len(columns)]
    table += [
        f"| {name} | " + " | ".join(f"{values[name]:.4f}" if name in values else "-" for _, values in columns) + " |" for name in names
    ]
    grouped: dict[str, dict[str, float]] = {}
    for name, value in result.get("metrics", {}).items():
        if "/" in name:
            metric, group = name.split("/", 1)
            grouped.setdefault(group, {})[metric] = value
    metrics = list(dict.fromkeys(metric for values in grouped.values() for metric in values))
    by_group = ["| group | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)] if grouped else []
    by_group += [
        f"| {group} | " + " | ".join(f"{values[m]:.4f}" if m in values else "-" for m in metrics) + " |"
        for group, values in grouped.items()
    ]
    recipe = result.get("recipe", {})
    lines = [
        "",
        "## Validation",
        "",
        f"Verdict: **{result['verdict']}** (trainer `{result['trainer']}`, {recipe.get('epochs', '?')} epochs of "
        f"`{recipe.get('backbone', recipe.get('vision', '?'))}`, seed {result.get('seed')}, {result.get('device', '?')}; full results in `validation.json`).",
        "",
        *[f"- {reason}" for reason in result.get("reasons", [])],
        "",
        *table,
        "",
        *([*by_group, ""] if by_group else []),
    ]
    robustness = result.get("robustness", {})
    if robustness.get("dee2"):
        lines += [f"Robustness of the reference model: mCE {robustness['mCE']}, mRR {robustness['mRR']} ({robustness['reference']}).", ""]
    if result.get("least_learnable"):
        keys = ", ".join(f"`{row['key']}` ({row['loss']:.3f})" for row in result["least_learnable"])
        lines += [f"Least learnable training samples (highest loss; look here first for label errors): {keys}", ""]
    return "\n".join(lines)


def refresh_card(release: str | Path) -> Path:
    """Rewrite the README.md of a finished release from its files (after validate wrote validation.json)."""
    root = Path(release)
    manifest = Release.open(root).manifest
    schema = SampleSchema(json.loads((root / "schema.json").read_text()))
    stats = json.loads((root / "stats.json").read_text()) if (root / "stats.json").exists() else {}
    write_card(root, manifest.document, schema, stats.get("dataset", {}), create_builder(manifest.builder))
    return root / "README.md"
