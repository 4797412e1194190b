"""Reading a release back: decoded samples through webdataset, never unpickling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataengine.fields import decode_member


def read_manifest(release: str | Path) -> dict[str, Any]:
    path = Path(release) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{release} is not a dataengine release (no manifest.json); build one with `dataengine build`")
    return json.loads(path.read_text())


def split_path(split: str, config: str | None = None) -> str:
    """Where a split lives: `severity_3` of config `fog` is `fog/severity_3`."""
    return f"{config}/{split}" if config and config != "default" else split


def shard_paths(release: str | Path, split: str, manifest: dict[str, Any] | None = None, config: str | None = None) -> list[str]:
    manifest = manifest or read_manifest(release)
    split = split_path(split, config)
    if split not in manifest["splits"]:
        raise ValueError(f"split '{split}' is not in {release}; splits: {', '.join(manifest['splits'])}")
    return [str(Path(release) / shard["path"]) for shard in manifest["splits"][split]["shards"]]


def decode_sample(raw: dict[str, Any], kinds: dict[str, str]) -> dict[str, Any]:
    """Decode every member by its declared kind; unknown members stay bytes (never unpickled)."""
    sample: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("__"):
            sample[name] = value
        elif name in kinds:
            sample[name] = decode_member(kinds[name], value)
        else:
            sample[name] = value
    return sample


def load(release: str | Path, split: str = "train", config: str | None = None, decode: bool = True) -> Any:
    """Iterate a split (of a config) as dicts: images uint8 arrays, depth float32 metres, JSON as dicts.

    Returns a `webdataset.WebDataset` pipeline (a torch IterableDataset when torch is installed).
    """
    import webdataset as wds

    manifest = read_manifest(release)
    urls = shard_paths(release, split, manifest, config)
    kinds = manifest["fields"]
    if not urls:
        return []  # an empty split has no shards; webdataset cannot open an empty list
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    return dataset.map(lambda raw: decode_sample(raw, kinds)) if decode else dataset


def iter_split(release: str | Path, split: str = "train", config: str | None = None) -> Iterator[dict[str, Any]]:
    """The same samples as `load`, without webdataset: our own tar reader."""
    from dataengine.shards import iter_samples

    manifest = read_manifest(release)
    for url in shard_paths(release, split, manifest, config):
        for key, members in iter_samples(url):
            yield {"__key__": key, "__url__": url, **decode_sample(members, manifest["fields"])}
