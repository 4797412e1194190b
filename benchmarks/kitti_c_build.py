"""KITTI-C build throughput: our build (1 and 2 workers) vs the way the published set was made.

The published KITTI-C was made by RoboDepth's script: the reference corruption code run frame by
frame, corruption by corruption, in one process, writing PNG files. Here both produce the full
18 x 5 set (plus clean) of the same rendered KITTI frames at 640x192.

First the floor: per source frame on one core, what PNG encoding of its 91 outputs, the random
numbers the stochastic corruptions draw, and one memory pass per output cost by themselves; the
1-worker build is compared with it. Then the builds (their shards must be byte-identical whatever
the worker count), then `shards.png_level` 1, 3 and 6 (release size vs build time), then the
reference script.

    python -m benchmarks.kitti_c_build [--frames 16] [--no-reference] [--png-levels 1 3 6]
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

from benchmarks.corruptions import timed
from builders.fixtures import write_kitti_tree
from builders.robustness.recipe import corrupted_output
from corruptions import names
from corruptions.blur import GLASS
from corruptions.normal import standard_normal
from corruptions.reference import load_reference
from dataengine.api import build
from dataengine.core.catalog import DEFAULT_SHARDS, load_catalog
from dataengine.core.png import encode_png
from dataengine.release.reader import Release

SIZE = (640, 192)


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


def our_run(tree, out: Path, workers: int, png_level: int = DEFAULT_SHARDS["png_level"]) -> tuple[float, Release]:
    document = {
        "name": "kitti-c",
        "version": "bench",
        "builder": "kitti_c",
        "seed": 2023,
        "params": {"corruptions": "kitti-c", "severities": [1, 2, 3, 4, 5]},
        "sources": {"root": str(tree.root), "split_file": str(tree.split_file), "gt_root": str(tree.gt_root)},
        "splits": {"test": {}},
        "shards": {"max_samples": 700, "png_level": png_level},
    }
    path = out / "kitti-c.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document))
    started = time.perf_counter()
    result = build(load_catalog(path), out / "release", workers=workers, progress=False, echo=lambda message: None)
    assert result.status == "built"
    return time.perf_counter() - started, Release.open(out / "release")


def shard_hashes(release: Release) -> dict[str, str]:
    return {shard.path: shard.sha256 for entry in release.manifest.splits.values() for shard in entry.shards}


def release_bytes(release: Release) -> int:
    return sum(entry.num_bytes for entry in release.manifest.splits.values())


def floor_per_frame(tree, png_level: int) -> dict[str, float]:
    """Seconds per source frame on one core for what no build can avoid: encoding its 91 PNGs, the
    random numbers its stochastic corruptions draw, one memory pass per output."""
    image = np.asarray(Image.open(tree.root / tree.lines[0]).convert("RGB").resize(SIZE, Image.Resampling.LANCZOS))
    outputs = [image] + [corrupted_output(image, n, s, 2023, "floor") for n in names("kitti-c") for s in range(1, 6)]
    h, w = image.shape[:2]
    rng = np.random.default_rng(0)
    fog_map = (1 << (max(h, w) - 1).bit_length()) ** 2 * 4 // 3  # the diamond-square's new points
    glass = sum(it * (h - 2 * d) * (w - 2 * d) * 2 for _, d, it in GLASS)

    def draws() -> None:
        for _ in range(5):
            standard_normal(rng, image.size)  # gaussian_noise (the ziggurat on NumPy's uniforms)
            rng.random(image.shape)  # shot_noise (one uniform per value)
            rng.random(image.shape, dtype=np.float32)  # impulse_noise
            rng.random(image.shape), standard_normal(rng, image.size)  # iso_noise
            rng.random(image.shape), standard_normal(rng, image.size)  # dark
            rng.standard_normal((h, w), dtype=np.float32)  # snow
            rng.random(fog_map, dtype=np.float32)  # fog
            rng.uniform(size=(2, h, w))  # elastic_transform
        rng.integers(-4, 4, size=glass, dtype=np.int64)  # glass_blur, all five severities

    return {
        "png": timed(lambda: [encode_png(out, png_level) for out in outputs], 3),
        "random numbers": timed(draws, 3),
        "memory passes": timed(lambda: [out.copy() for out in outputs], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="source frames (1242x375)")
    parser.add_argument("--no-reference", action="store_true", help="time only our build (the reference takes minutes)")
    parser.add_argument("--png-levels", type=int, nargs="*", default=[1, 3, 6], help="shards.png_level values to compare")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-kitti-c-", dir=".")).resolve()
    try:
        tree = write_kitti_tree(work / "kitti", frames_per_drive=args.frames, drives=1)
        load_reference()
        frames = len(tree.lines)
        level = DEFAULT_SHARDS["png_level"]
        floor = floor_per_frame(tree, level)
        one, release_one = our_run(tree, work / "ours1", 1)
        two, release_two = our_run(tree, work / "ours2", 2)
        identical = shard_hashes(release_one) == shard_hashes(release_two)
        print(f"{frames} KITTI frames -> clean + 18 x 5 corrupted at 640x192 ({frames * 91} images)")
        total_floor = sum(floor.values())
        print(f"floor per source frame on one core (png_level {level}):")
        for name, seconds in floor.items():
            print(f"  {name:<15} {seconds:6.3f} s")
        print(f"  {'total':<15} {total_floor:6.3f} s -> at most {1 / total_floor:.2f} frames/s per core")
        print(f"  dataengine, 1 worker : {one:7.1f} s  {frames / one:.3f} source frames/s ({one / frames / total_floor:.1f}x the floor)")
        print(f"  dataengine, 2 workers: {two:7.1f} s  {frames / two:.3f} source frames/s  (speed-up {one / two:.2f}x; goal >= 1.45/s)")
        print(f"  shards byte-identical on 1 and 2 workers: {identical}")
        if args.png_levels:
            print("shards.png_level on 2 workers (size of the release vs build time):")
            for png_level in sorted({*args.png_levels, level}):
                seconds, release = (two, release_two) if png_level == level else our_run(tree, work / f"level{png_level}", 2, png_level)
                size = release_bytes(release)
                print(
                    f"  level {png_level}: {seconds:6.1f} s  {frames / seconds:.3f} frames/s  {size / 2**20:7.1f} MiB ({size / frames / 2**20:.2f} MiB per frame)"
                )
        if not args.no_reference:
            reference = reference_run(tree, work / "reference")
            print(f"  reference script (1 process): {reference:7.1f} s  {frames / reference:.3f} source frames/s")
            print(f"  wall-time ratio reference / dataengine: {reference / one:.1f}x on 1 worker, {reference / two:.1f}x on 2")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
