"""`dataengine inspect`: what is inside a shard (or the first shard of every split of a release), in a
form a person can read."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.core.fields import decode_member
from dataengine.io.tar import read_samples
from dataengine.release.reader import Release


def describe_value(value: Any) -> str:
    if isinstance(value, np.ndarray):
        finite = value[np.isfinite(value)] if value.dtype.kind == "f" else value
        stats = f" min={finite.min():.3g} max={finite.max():.3g}" if finite.size else ""
        return f"array {value.dtype} {tuple(value.shape)}{stats}"
    if isinstance(value, dict):
        return "json {" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes"
    return repr(value)[:120]


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"list[{len(value)}]"
    if isinstance(value, dict):
        return f"dict[{len(value)}]"
    return repr(value)[:40]


def summarize_shard(path: str | Path) -> dict[str, Any]:
    """Keys, member names with counts and byte sizes, and the first sample decoded."""
    path = Path(path)
    release = Release.containing(path)
    kinds = release.manifest.fields if release else {}
    sizes: dict[str, list[int]] = defaultdict(list)
    counts: Counter = Counter()
    keys: list[str] = []
    first: dict[str, Any] | None = None
    for key, members in read_samples(path):
        keys.append(key)
        for name, data in members.items():
            counts[name] += 1
            sizes[name].append(len(data))
        if first is None:
            first = {"__key__": key}
            for name, data in members.items():
                kind = kinds.get(name) or _guess_kind(name)
                first[name] = describe_value(decode_member(kind, data)) if kind else describe_value(data)
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "samples": len(keys),
        "first_keys": keys[:3],
        "last_key": keys[-1] if keys else None,
        "members": {
            name: {"count": counts[name], "mean_bytes": int(np.mean(sizes[name])), "total_bytes": int(np.sum(sizes[name]))}
            for name in sorted(counts)
        },
        "first_sample": first,
    }


def _guess_kind(name: str) -> str | None:
    ext = name.rsplit(".", 1)[-1]
    return {"json": "json", "jpg": "image", "jpeg": "image", "png": "image", "txt": "text"}.get(ext)


def summarize_release(path: str | Path) -> list[dict[str, Any]]:
    """The summary of the first shard of every split of the release at `path` (splits without shards
    are left out), each with its `split`."""
    release = Release.open(path)
    summaries = []
    for split in release.splits:
        shards = release.shards(split)
        if shards:
            summaries.append({"split": split, "split_shards": len(shards), **summarize_shard(release.path / shards[0].path)})
    return summaries
