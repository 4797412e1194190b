"""`dataengine export kitti-c | nyu-c`: a robustness release in the folder layout RoboDepth reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from dataengine.core.fields import decode_member
from dataengine.io.atomic import write_bytes_atomic
from dataengine.io.paths import safe_join
from dataengine.release.reader import Release

# `<date>/<date>_drive_<NNNN>_sync/image_0{2,3}/data/<frame:010d>.<ext>`, after any prefix such as `kitti_data/`.
KITTI_RAW_FRAME = re.compile(r"(?:^|/)(\d{4}_\d{2}_\d{2}/\d{4}_\d{2}_\d{2}_drive_\d{4}_sync/image_0[23]/data/\d{10})\.[A-Za-z]+$")


def robodepth_frame_path(frame: str) -> str:
    """Where RoboDepth's KITTI-C loader opens a frame, below `kitti_c/<corruption>/<severity>/`.

    The loader joins `kitti_data/<date>/<drive>/image_0{2,3}/data/<frame>.png` whatever split file
    the release was built from: frames from a KITTI-C-style list already start with `kitti_data/`,
    frames from a MonoDepth2-style list (`<date>/<drive> <frame> l|r`) are relative to `kitti_data/`.
    A frame that is not a KITTI raw image path is kept as it is.
    """
    match = KITTI_RAW_FRAME.search(frame)
    return f"kitti_data/{match.group(1)}.png" if match else frame


def _same_frame(frame: str) -> str:
    return frame


def export_corruption_set(
    release: str | Path, out: str | Path, top: str = "kitti_c", frame_path: Callable[[str], str] = _same_frame
) -> int:
    """`<out>/<top>/<corruption>/<severity>/<path>` and `<out>/<top>/clean/<path>`, with `<path>` =
    `frame_path(record frame)` as a `.png`. `out` is RoboDepth's data root (the folder holding `<top>/`),
    or the `<top>` folder itself (`/data/kitti_c`): it is not nested a second time. PNG bytes are
    copied from the shards unchanged. Returns the number of files written."""
    source = Release.open(release)
    root = Path(out) if Path(out).name == top else Path(out) / top
    if source.manifest.sample_kind != "depth_c":
        raise ValueError(f"{release} is a '{source.manifest.sample_kind}' release; this export needs a corruption set (depth_c)")
    written = 0
    for sample in source.raw_samples():
        record = decode_member("json", sample["json"])
        folder = "clean" if record["corruption"] == "clean" else f"{record['corruption']}/{record['severity']}"
        target = safe_join(root, f"{folder}/{frame_path(record['frame'])}")
        if target.suffix.lower() != ".png":
            target = target.with_suffix(".png")
        write_bytes_atomic(target, sample["rgb.png"])
        written += 1
    return written


def export_kitti_c(release: str | Path, out: str | Path) -> int:
    """The published KITTI-C layout: `kitti_c/<corruption>/<severity>/kitti_data/<date>/<drive>/image_02/data/<frame>.png`."""
    return export_corruption_set(release, out, top="kitti_c", frame_path=robodepth_frame_path)


def export_nyu_c(release: str | Path, out: str | Path) -> int:
    return export_corruption_set(release, out, top="nyu_c")
