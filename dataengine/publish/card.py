"""The dataset card (README.md): YAML that `datasets` and the Hub read, prose from the manifest, the
unit and scale of every depth member, how to load the release with each reader, and a few thumbnails
(`thumbnails/`, which the Hub shows on the dataset's page)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from dataengine.core.builder import Builder, create_builder
from dataengine.core.depth_png import MAX_CODE, UNITS_PER_M
from dataengine.core.fields import field_kind
from dataengine.core.schema import SampleSchema
from dataengine.io.atomic import write_bytes_atomic, write_text_atomic
from dataengine.io.tar import read_samples
from dataengine.publish.probe_summary import probe_rows
from dataengine.release.reader import Release, configs_of, decode_value

THUMBNAILS_DIR = "thumbnails"
THUMBNAILS = 4
THUMBNAIL_HEIGHT = 160
UNIT_NAMES = {1000.0: "millimetres", 256.0: "1/256 m (KITTI)"}


@dataclass(frozen=True)
class Location:
    """Where the card says the release is: a local folder (`<release dir>`), or a Hub dataset repo."""

    repo_id: str | None = None
    revision: str | None = None

    @property
    def ours(self) -> str:
        """What `dataengine.load` and the decoders open."""
        if not self.repo_id:
            return "<release dir>"
        return f"hf://datasets/{self.repo_id}" + (f"@{self.revision}" if self.revision else "")

    @property
    def hub(self) -> str:
        """What `datasets.load_dataset` opens."""
        return self.repo_id or "<release dir>"

    def shards(self, pattern: str) -> str:
        """What webdataset opens: local paths, or the Hub's download URLs."""
        if not self.repo_id:
            return f"<release dir>/{pattern}"
        return f"https://huggingface.co/datasets/{self.repo_id}/resolve/{self.revision or 'main'}/{pattern}"


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


def depth_lines(fields: dict[str, str]) -> list[str]:
    """The unit and scale of each depth member, as the card states them."""
    lines = []
    for name, kind in fields.items():
        if kind in UNITS_PER_M:
            units = UNITS_PER_M[kind]
            lines.append(
                f"- `{name}`: 16-bit PNG in {UNIT_NAMES.get(units, f'1/{units:g} m')}: **metres = value / {units:g}**; 0 = no measurement; "
                f"at most {MAX_CODE / units:.3f} m (farther is clipped there, never wrapped). `dataengine.load` and the decoders "
                "below return float32 metres."
            )
    return lines


def card_text(
    manifest: dict[str, Any],
    schema: SampleSchema,
    summary: dict[str, Any] | None = None,
    sections: Sequence[str] = (),
    tasks: Sequence[str] = (),
    location: Location = Location(),
    thumbnails: Sequence[tuple[str, str]] = (),
) -> str:
    """The whole card; `sections` are the family's extra lines for "How it was built", `tasks` its Hub
    task categories, `location` where readers open it, `thumbnails` (file, caption) pairs to show."""
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
    depth_section = "\n".join(["", "## Depth", "", *depth_lines(manifest["fields"]), ""]) if depth_members else ""
    samples_section = (
        "\n".join(["", "## Samples", "", " ".join(f"![{caption}]({file})" for file, caption in thumbnails), ""]) if thumbnails else ""
    )
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
{depth_section}{samples_section}{_summary_section(summary)}
{loading_section(manifest, location)}"""


def loading_section(manifest: dict[str, Any], location: Location = Location()) -> str:
    """How to read the release with dataengine, datasets and webdataset; with depth, the same metres from all three."""
    first_split = next((path for path, entry in manifest["splits"].items() if entry["num_samples"]), next(iter(manifest["splits"])))
    last_shard = max(len(manifest["splits"][first_split]["shards"]) - 1, 0)
    config, _, split = first_split.rpartition("/")
    ours_args = f'config="{config}", split="{split}"' if config else f'split="{split}"'
    hf_args = f'"{config}", split="{split}"' if config else f'split="{split}"'
    urls = location.shards(f"{first_split}/{manifest['name']}-{{000000..{last_shard:06d}}}.tar")
    depth = next((name for name, kind in manifest["fields"].items() if kind in UNITS_PER_M), None)
    if depth is None:
        return f"""## Loading

```python
import dataengine
for batch in dataengine.load("{location.ours}", {ours_args}, batch_size=8):  # a torch IterableDataset
    ...  # arrays stacked, records as lists
```

```python
import datasets
ds = datasets.load_dataset("{location.hub}", {hf_args})
```

```python
import webdataset as wds
import dataengine
ds = wds.WebDataset("{urls}", shardshuffle=False).decode(dataengine.wds_decoder("{location.ours}"))
```
"""
    units = UNITS_PER_M[manifest["fields"][depth]]
    return f"""## Loading

The same depth, in float32 metres, from each reader:

```python
import dataengine
for batch in dataengine.load("{location.ours}", {ours_args}, batch_size=8):  # a torch IterableDataset
    batch["{depth}"]  # float32 metres, 8 x H x W
```

```python
import datasets, dataengine
ds = datasets.load_dataset("{location.hub}", {hf_args})
ds[0]["{depth}"]  # a 16-bit PIL image: numpy.asarray(...) / {units:g} is metres
ds = ds.with_transform(dataengine.hf_decoder("{location.ours}"))
ds[0]["{depth}"]  # float32 metres
```

```python
import webdataset as wds
import dataengine
ds = wds.WebDataset("{urls}", shardshuffle=False).decode(dataengine.wds_decoder("{location.ours}"))
next(iter(ds))["{depth}"]  # float32 metres (webdataset's own .decode("rgb8") reads 16-bit depth as 8 bits: do not use it for depth)
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


def write_thumbnails(
    out: Path, manifest: dict[str, Any], count: int = THUMBNAILS, write: bool = True, shards_at: str | None = None
) -> list[tuple[str, str]]:
    """`thumbnails/sample-<n>.png` for the first samples of the first split with samples: the image, and
    beside it the depth as a colour map (near is bright, no measurement black). Returns (file, caption);
    `write=False` only names them. Shards are read from `shards_at` (a store URL) when given, else `out`."""
    images = [name for name, kind in manifest["fields"].items() if kind == "image"]
    depths = [name for name, kind in manifest["fields"].items() if kind in UNITS_PER_M]
    shards = next((entry["shards"] for entry in manifest["splits"].values() if entry["num_samples"]), [])
    if not images or not shards:
        return []
    written = []
    first = f"{shards_at}/{shards[0]['path']}" if shards_at else out / shards[0]["path"]
    for number, (key, members) in enumerate(islice(read_samples(first), count)):
        file, caption = f"{THUMBNAILS_DIR}/sample-{number}.png", key + (f" ({images[0]}, {depths[0]})" if depths else "")
        written.append((file, caption))
        if not write:
            continue
        image = Image.fromarray(decode_value("image", members[images[0]]))
        width = max(1, round(image.width * THUMBNAIL_HEIGHT / image.height))
        tiles = [image.convert("RGB").resize((width, THUMBNAIL_HEIGHT), Image.Resampling.LANCZOS)]
        if depths:
            depth = decode_value(manifest["fields"][depths[0]], members[depths[0]])
            tiles.append(colour_depth(depth).resize((width, THUMBNAIL_HEIGHT), Image.Resampling.NEAREST))
        canvas = Image.new("RGB", (sum(tile.width for tile in tiles) + 4 * (len(tiles) - 1), THUMBNAIL_HEIGHT), "white")
        for index, tile in enumerate(tiles):
            canvas.paste(tile, (index * (width + 4), 0))
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG", compress_level=9)
        write_bytes_atomic(out / file, buffer.getvalue())
    return written


def colour_depth(depth: np.ndarray) -> Image.Image:
    """Depth in metres as an RGB colour map (magma, near bright), 0 = no measurement in black."""
    from matplotlib import colormaps

    valid = depth > 0
    near, far = (float(depth[valid].min()), float(depth[valid].max())) if valid.any() else (0.0, 1.0)
    scaled = np.clip((far - depth) / max(far - near, 1e-6), 0, 1)
    rgb = (colormaps["magma"](scaled)[..., :3] * 255).round().astype(np.uint8)
    rgb[~valid] = 0
    return Image.fromarray(rgb)


def write_card(
    out: Path,
    manifest: dict[str, Any],
    schema: SampleSchema,
    summary: dict[str, Any],
    builder: Builder,
    location: Location = Location(),
    shards_at: str | None = None,
) -> None:
    """README.md (and its thumbnails) of a release being finalised (a side file of `dataengine.run.finalize`;
    `shards_at`: where its shards are read, when not in `out`)."""
    write_text_atomic(out / "README.md", render_card(out, manifest, schema, summary, builder, location, shards_at=shards_at))


def render_card(
    out: Path,
    manifest: dict[str, Any],
    schema: SampleSchema,
    summary: dict[str, Any],
    builder: Builder,
    location: Location = Location(),
    write: bool = True,
    shards_at: str | None = None,
) -> str:
    """The card's text for the release in `out` (writing its thumbnails there unless `write=False`)."""
    thumbnails = write_thumbnails(out, manifest, write=write, shards_at=shards_at)
    text = card_text(manifest, schema, summary, builder.card_sections(manifest), builder.task_categories, location, thumbnails)
    validation = out / "validation.json"
    if validation.exists():  # written by `dataengine validate`
        text += validation_section(json.loads(validation.read_text()))
    return text


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
    if result.get("probes"):
        lines += ["### Probes", "", "| probe | measure | value |", "|---|---|---|"]
        lines += [f"| {title} | {measure} | {value} |" for title, measure, value in probe_rows(result["probes"])] + [""]
    robustness = result.get("robustness", {})
    if robustness.get("dee2"):
        lines += [f"Robustness of the reference model: mCE {robustness['mCE']}, mRR {robustness['mRR']} ({robustness['reference']}).", ""]
    if result.get("least_learnable"):
        keys = ", ".join(f"`{row['key']}` ({row['loss']:.3f})" for row in result["least_learnable"])
        lines += [f"Least learnable training samples (highest loss; look here first for label errors): {keys}", ""]
    return "\n".join(lines)


def release_card(release: str | Path, location: Location = Location(), write: bool = True) -> str:
    """The card of a finished release, from its files, for readers at `location` (publish: the Hub repo);
    `write=False` leaves the thumbnails as they are."""
    root = Path(release)
    manifest = Release.open(root).manifest
    schema = SampleSchema(json.loads((root / "schema.json").read_text()))
    stats = json.loads((root / "stats.json").read_text()) if (root / "stats.json").exists() else {}
    builder = create_builder(manifest.builder)
    return render_card(root, manifest.document, schema, stats.get("dataset", {}), builder, location, write)


def refresh_card(release: str | Path, location: Location = Location()) -> Path:
    """Rewrite the README.md of a finished release from its files (after validate wrote validation.json,
    or before publish, naming the Hub repo)."""
    root = Path(release)
    write_text_atomic(root / "README.md", release_card(root, location))
    return root / "README.md"
