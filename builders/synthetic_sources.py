"""Source trees in the real layouts of KITTI raw and NYU Depth v2, rendered by the scenes renderer.

For offline demos and tests: the same files, names and encodings the real datasets use, with
ground truth known exactly. KITTI: `kitti_data/<date>/<date>_drive_<NNNN>_sync/image_02/data/
<frame:010d>.png`, an Eigen-style split file, `gt_depths.npz` (`data`: N x H x W metres) and
per-frame 16-bit PNGs (metres x 256, 0 = no LiDAR return, sparse like a velodyne projection).
NYU (BTS / AdaBins test layout): `<scene>/rgb_<NNNNN>.jpg` and `<scene>/sync_depth_<NNNNN>.png`
(uint16 millimetres).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from builders.scene_geometry import Camera, render, sample_layout, sample_light
from dataengine.rng import sample_rng

KITTI_FX = 721.5377
KITTI_DATE = "2011_09_26"


@dataclass(frozen=True)
class KittiTree:
    root: Path
    split_file: Path
    gt_depths: Path
    gt_root: Path
    lines: list[str]


def _scene(camera: Camera, hfov: float, seed: int, key: str, depth_range: tuple[float, float], count: int):
    rng = sample_rng(seed, key, "layout")
    shapes = sample_layout(rng, camera, hfov, count, depth_range)
    return render(camera, shapes, sample_light(sample_rng(seed, key, "light")))


def write_kitti_tree(root: str | Path, frames_per_drive: int = 3, drives: int = 2, width: int = 1242, height: int = 375, seed: int = 0, lidar_fraction: float = 0.06) -> KittiTree:
    """Render a small KITTI raw tree with an Eigen-style split file and ground truth."""
    root = Path(root)
    hfov = math.degrees(2 * math.atan(width / 2 / (KITTI_FX * width / 1242)))
    camera = Camera.from_fov(width, height, hfov, 1.65, 1.0)
    lines, depths = [], []
    gt_root = root / "gt_depth"
    for drive in range(drives):
        folder = f"kitti_data/{KITTI_DATE}/{KITTI_DATE}_drive_{drive + 2:04d}_sync/image_02/data"
        for index in range(frames_per_drive):
            relative = f"{folder}/{69 + 7 * index:010d}.png"
            rendering = _scene(camera, hfov, seed, relative, (5.0, 45.0), 6)
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rendering.rgb).save(root / relative)
            keep = sample_rng(seed, relative, "lidar").random(rendering.depth.shape) < lidar_fraction
            depth = np.where(keep & (rendering.depth < 80), rendering.depth, 0).astype(np.float32)
            depths.append(depth)
            (gt_root / relative).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(np.rint(depth * 256), 0, 65535).astype(np.uint16)).save(gt_root / relative)
            lines.append(relative)
    split_file = root / "eigen_test_files.txt"
    split_file.write_text("\n".join(lines) + "\n")
    gt_depths = root / "gt_depths.npz"
    np.savez_compressed(gt_depths, data=np.stack(depths))
    return KittiTree(root, split_file, gt_depths, gt_root, lines)


def write_nyu_tree(root: str | Path, frames: int = 4, seed: int = 0, width: int = 640, height: int = 480) -> list[Path]:
    """Render NYU-style indoor pairs: `official_splits/test/<scene>/rgb_XXXXX.jpg` + `sync_depth_XXXXX.png`."""
    root = Path(root)
    camera = Camera.from_fov(width, height, 62.0, 1.2, 15.0)
    written = []
    for index in range(frames):
        scene = root / "official_splits" / "test" / ("bedroom" if index % 2 == 0 else "kitchen")
        scene.mkdir(parents=True, exist_ok=True)
        number = 45 + 2 * index
        rendering = _scene(camera, 62.0, seed, f"nyu-{number}", (1.5, 6.0), 4)
        Image.fromarray(rendering.rgb).save(scene / f"rgb_{number:05d}.jpg", quality=95)
        depth = np.where((rendering.depth > 0) & (rendering.depth < 10), rendering.depth, 0)
        Image.fromarray(np.rint(depth * 1000).astype(np.uint16)).save(scene / f"sync_depth_{number:05d}.png")
        written.append(scene / f"rgb_{number:05d}.jpg")
    return written
