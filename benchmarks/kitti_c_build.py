"""KITTI-C build throughput: our build (1 and 2 workers) vs the way the published set was made.

The published KITTI-C was made by RoboDepth's script: the reference corruption code run frame by
frame, corruption by corruption, in one process, writing PNG files. Here both produce the full
18 x 5 set (plus clean) of the same rendered KITTI frames at 640x192.

    python -m benchmarks.kitti_c_build [--frames 4]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from builders.fixtures import write_kitti_tree
from corruptions import names
from corruptions.reference import load_reference
from dataengine.api import build
from dataengine.core.catalog import load_catalog


def robodepth_style(image: Image.Image, name: str, severity: int) -> np.ndarray:
    """RoboDepth's script: imagecorruptions for 15, its own numpy code (global RNG) for 3."""
    x = np.asarray(image) / 255.0
    if name == "color_quant":
        from PIL import ImageOps

        return np.asarray(ImageOps.posterize(image, 6 - severity))
    if name == "iso_noise":
        x = np.clip(np.random.poisson(x * 25) / 25, 0, 1)
        return np.uint8(np.clip(x + np.random.normal(size=x.shape, scale=0.7 * [0.08, 0.12, 0.18, 0.26, 0.38][severity - 1]), 0, 1) * 255)
    if name == "dark":
        y = ((x - x.min()) / (x.max() - x.min())) ** 2 * [0.6, 0.5, 0.4, 0.3, 0.2][severity - 1]
        scale = 10 * [60, 25, 12, 5, 3][severity - 1]
        y = np.clip(np.random.poisson(y * scale) / scale, 0, 1)
        return np.uint8(np.clip(y + np.random.normal(size=y.shape, scale=0.1 * [0.08, 0.12, 0.18, 0.26, 0.38][severity - 1]), 0, 1) * 255)
    return np.uint8(getattr(load_reference(), name)(image, severity))


def reference_run(tree, out: Path) -> float:
    started = time.perf_counter()
    np.random.seed(2023)
    for name in names("kitti-c"):
        for severity in range(1, 6):
            for line in tree.lines:
                image = Image.open(tree.root / line).convert("RGB").resize((640, 192), Image.Resampling.LANCZOS)
                target = out / name / str(severity) / line
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(robodepth_style(image, name, severity)).save(target)
    return time.perf_counter() - started


def our_run(tree, out: Path, workers: int) -> float:
    document = {
        "name": "kitti-c",
        "version": "bench",
        "builder": "kitti_c",
        "seed": 2023,
        "params": {"corruptions": "kitti-c", "severities": [1, 2, 3, 4, 5]},
        "sources": {"root": str(tree.root), "split_file": str(tree.split_file), "gt_root": str(tree.gt_root)},
        "splits": {"test": {}},
        "shards": {"max_samples": 700},
    }
    path = out / "kitti-c.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    started = time.perf_counter()
    result = build(load_catalog(path), out / "release", workers=workers, progress=False, echo=lambda message: None)
    assert result.status == "built"
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=4, help="source frames (1242x375)")
    parser.add_argument("--no-reference", action="store_true", help="time only our build (the reference takes minutes)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-kitti-c-", dir=".")).resolve()
    try:
        tree = write_kitti_tree(work / "kitti", frames_per_drive=args.frames, drives=1)
        load_reference()
        one = our_run(tree, work / "ours1", 1)
        two = our_run(tree, work / "ours2", 2)
        frames = len(tree.lines)
        reference = None if args.no_reference else reference_run(tree, work / "reference")
        print(f"{frames} KITTI frames -> clean + 18 x 5 corrupted at 640x192 ({frames * 91} images)")
        print(f"  dataengine, 1 worker : {one:7.1f} s  {frames / one:.3f} source frames/s")
        print(f"  dataengine, 2 workers: {two:7.1f} s  {frames / two:.3f} source frames/s  (speed-up {one / two:.2f}x)")
        if reference is not None:
            print(f"  reference script (1 process): {reference:7.1f} s  {frames / reference:.3f} source frames/s")
            print(f"  wall-time ratio reference / dataengine: {reference / one:.1f}x on 1 worker, {reference / two:.1f}x on 2")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
