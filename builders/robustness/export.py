"""`dataengine export kitti-c | nyu-c`: a robustness release in the folder layout RoboDepth reads."""

from __future__ import annotations

from pathlib import Path

from dataengine.core.fields import decode_member
from dataengine.io.atomic import write_bytes_atomic
from dataengine.io.paths import safe_join
from dataengine.release.reader import Release


def export_corruption_set(release: str | Path, out: str | Path, top: str = "kitti_c") -> int:
    """`<out>/<top>/<corruption>/<severity>/<frame>` and `<out>/<top>/clean/<frame>`: the published
    KITTI-C layout (frames keep their `kitti_data/<date>/<drive>/image_02/data/...` paths). PNG bytes
    are copied from the shards unchanged. Returns the number of files written."""
    source, root = Release.open(release), Path(out) / top
    if source.manifest.sample_kind != "depth_c":
        raise ValueError(f"{release} is a '{source.manifest.sample_kind}' release; this export needs a corruption set (depth_c)")
    written = 0
    for sample in source.raw_samples():
        record = decode_member("json", sample["json"])
        folder = "clean" if record["corruption"] == "clean" else f"{record['corruption']}/{record['severity']}"
        target = safe_join(root, f"{folder}/{record['frame']}")
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        write_bytes_atomic(target, sample["rgb.png"])
        written += 1
    return written


def export_kitti_c(release: str | Path, out: str | Path) -> int:
    return export_corruption_set(release, out, top="kitti_c")


def export_nyu_c(release: str | Path, out: str | Path) -> int:
    return export_corruption_set(release, out, top="nyu_c")
