"""The dataset card (README.md): YAML that `datasets` and the Hub read, and prose from the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dataengine.fields import field_kind
from dataengine.schema import SampleSchema

TASKS_BY_KIND = {"scene": ["depth-estimation", "object-detection", "image-segmentation"]}


def card_yaml(manifest: dict[str, Any], schema: SampleSchema) -> dict[str, Any]:
    """The card's YAML header: one `default` config over the tar shards, with declared features."""
    import datasets

    features = schema.hf_features(manifest["fields"])
    # A split with no samples has no shards for a data_files pattern to match: leave it out.
    splits = [split for split, entry in manifest["splits"].items() if entry["num_samples"] > 0]
    split_dict = datasets.SplitDict()
    for split in splits:
        entry = manifest["splits"][split]
        split_dict.add(datasets.SplitInfo(name=split, num_bytes=entry["num_bytes"], num_examples=entry["num_samples"]))
    info = datasets.DatasetInfo(features=features, splits=split_dict)._to_yaml_dict()
    return {
        "pretty_name": f"{manifest['name']} {manifest['version']}",
        "license": manifest["license"],
        "task_categories": TASKS_BY_KIND.get(manifest["sample_kind"], []),
        "tags": ["webdataset", "dataengine", manifest["builder"]],
        "configs": [
            {
                "config_name": "default",
                "default": True,
                "data_files": [{"split": split, "path": f"{split}/*.tar"} for split in splits],
            }
        ],
        "dataset_info": {"config_name": "default", **info},
    }


def card_text(manifest: dict[str, Any], schema: SampleSchema) -> str:
    header = yaml.safe_dump(card_yaml(manifest, schema), sort_keys=False, allow_unicode=True)
    splits = "\n".join(
        f"| {split} | {entry['num_samples']} | {len(entry['shards'])} | {entry['num_bytes'] / 1e6:.1f} MB |"
        for split, entry in manifest["splits"].items()
    )
    rejects = manifest["rejects"]
    reject_lines = "\n".join(f"- `{code}`: {count}" for code, count in rejects["by_reason"].items()) or "- none"
    fields = "\n".join(f"- `{name}`: {field_kind(kind).description}" for name, kind in manifest["fields"].items())
    packages = ", ".join(f"{k} {v}" for k, v in manifest["packages"].items())
    first_split = next(iter(manifest["splits"]))
    last_shard = max(len(manifest["splits"][first_split]["shards"]) - 1, 0)
    return f"""---
{header}---

# {manifest['name']} {manifest['version']}

{manifest['description'].strip() or 'A dataengine release.'}

## How it was built

- builder: `{manifest['builder']}` (sample kind `{manifest['sample_kind']}`, schema in `schema.json`)
- seed: {manifest['seed']}; catalog sha256: `{manifest['catalog_sha256']}`
- overrides: {', '.join(f'`{o}`' for o in manifest['overrides']) or 'none'}; limit: {manifest['limit'] or 'none'}
- packages: {packages}

The full resolved catalog is in `manifest.json`; the same catalog and seed rebuild byte-identical shards.

## Contents

| split | samples | shards | size |
|---|---|---|---|
{splits}

Members of every sample:
{fields}

Rejected samples: {rejects['total']} (reasons in `rejects.jsonl`)
{reject_lines}

## Loading

```python
import dataengine
for sample in dataengine.load("<release dir>", split="{first_split}"):
    ...
```

```python
import datasets
ds = datasets.load_dataset("<release dir>", split="{first_split}")
```

```python
import webdataset as wds
ds = wds.WebDataset("<release dir>/{first_split}/{manifest['name']}-{{000000..{last_shard:06d}}}.tar", shardshuffle=False)
```
"""


def write_card(out: Path, manifest: dict[str, Any], schema: SampleSchema) -> None:
    (out / "README.md").write_text(card_text(manifest, schema))
