"""`dataengine export`: write a release in the folder layout that existing evaluation code reads."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dataengine.fields import decode_member
from dataengine.loading import read_manifest
from dataengine.shards import iter_samples


def safe_join(root: Path, relative: str) -> Path:
    """`root / relative`, refusing absolute paths and `..` that would leave `root`."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"path {relative!r} from the release would leave {root}; refusing to write it")
    return target


def export_corruption_set(release: str | Path, out: str | Path, top: str = "kitti_c") -> int:
    """`<out>/<top>/<corruption>/<severity>/<frame>` and `<out>/<top>/clean/<frame>`: the published
    KITTI-C layout (frames keep their `kitti_data/<date>/<drive>/image_02/data/...` paths). PNG bytes
    are copied from the shards unchanged. Returns the number of files written."""
    release, root = Path(release), Path(out) / top
    manifest = read_manifest(release)
    if manifest.get("sample_kind") != "depth_c":
        raise ValueError(f"{release} is a '{manifest.get('sample_kind')}' release; this export needs a corruption set (depth_c)")
    written = 0
    for entry in manifest["splits"].values():
        for shard in entry["shards"]:
            for _, members in iter_samples(release / shard["path"]):
                record = decode_member("json", members["json"])
                folder = "clean" if record["corruption"] == "clean" else f"{record['corruption']}/{record['severity']}"
                target = safe_join(root, f"{folder}/{record['frame']}")
                if target.suffix.lower() != ".png":
                    target = target.with_suffix(".png")
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.partial")
                tmp.write_bytes(members["rgb.png"])
                os.replace(tmp, target)
                written += 1
    return written


EXPORTERS: dict[str, Callable[[str | Path, str | Path], int]] = {
    "kitti-c": export_corruption_set,
    "nyu-c": lambda release, out: export_corruption_set(release, out, top="nyu_c"),
}
