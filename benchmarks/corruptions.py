"""Corruption speed: ours vs the reference (imagecorruptions 1.1.2, shimmed) on the same photos.

Single process, both warmed up first (imports, numba compilation, texture cache). For each size,
every corruption at every severity; times are summed over the five severities.

    python -m benchmarks.corruptions [--sizes 640x192 1242x375] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from PIL import Image
from skimage import data

from corruptions import corrupt, names
from corruptions.digital import JPEG_QUALITY
from corruptions.reference import reference_corrupt

RICHER_THAN_REFERENCE = ("dark", "iso_noise", "color_quant")  # RoboDepth's own: not in imagecorruptions


def timed(function, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def jpeg_codec_only(image: np.ndarray, quality: int) -> np.ndarray:
    """The codec work jpeg_compression cannot avoid: one encode and one decode by libjpeg-turbo."""
    _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def run(size: tuple[int, int], repeats: int, reference_repeats: int) -> None:
    image = np.asarray(Image.fromarray(data.astronaut()).resize(size, Image.Resampling.LANCZOS))
    compared = [n for n in names("kitti-c") if n not in RICHER_THAN_REFERENCE]
    for name in names("kitti-c"):  # warm-up
        corrupt(image, name, 1, seed=0)
    for name in compared:
        reference_corrupt(image, name, 1, 0) if name != "glass_blur" else None
    print(f"\n{size[0]}x{size[1]}: milliseconds for severities 1-5 (best of {repeats} ours, {reference_repeats} reference)")
    print(f"{'corruption':<18} {'ours':>9} {'reference':>10} {'speed-up':>9}")
    ours_total = reference_total = 0.0
    ours_no_glass = reference_no_glass = 0.0
    slower = []
    jpeg = (float("nan"), float("nan"))
    for name in names("kitti-c"):
        ours = timed(lambda name=name: [corrupt(image, name, s, seed=s) for s in range(1, 6)], repeats)
        if name in RICHER_THAN_REFERENCE:
            print(f"{name:<18} {ours * 1e3:9.1f} {'-':>10} {'-':>9}   (RoboDepth's own; no reference to time)")
            continue
        reference = timed(lambda name=name: [reference_corrupt(image, name, s, s) for s in range(1, 6)], reference_repeats)
        ratio = reference / ours
        slower += [name] if ratio < 1 else []
        print(f"{name:<18} {ours * 1e3:9.1f} {reference * 1e3:10.1f} {ratio:8.1f}x")
        jpeg = (ours, reference) if name == "jpeg_compression" else jpeg
        ours_total += ours
        reference_total += reference
        if name != "glass_blur":
            ours_no_glass += ours
            reference_no_glass += reference
    print(f"{'total (15 shared)':<18} {ours_total * 1e3:9.1f} {reference_total * 1e3:10.1f} {reference_total / ours_total:8.1f}x")
    print(
        f"{'without glass_blur':<18} {ours_no_glass * 1e3:9.1f} {reference_no_glass * 1e3:10.1f} {reference_no_glass / ours_no_glass:8.1f}x"
    )
    codec = timed(lambda: [jpeg_codec_only(image, quality) for quality in JPEG_QUALITY], repeats)
    print(
        f"jpeg_compression floor, libjpeg-turbo's encode + decode alone: {codec * 1e3:.1f} ms; ours {jpeg[0] / codec:.2f}x it, "
        f"the reference {jpeg[1] / codec:.2f}x it (the most any exact implementation on this codec can gain)"
    )
    all_18 = timed(lambda: [corrupt(image, n, s, seed=s) for n in names("kitti-c") for s in range(1, 6)], 1)
    print(f"whole KITTI-C set (18 x 5 = 90 outputs) of one image: {all_18:.2f} s -> {90 / all_18:.1f} corrupted images/s per core")
    print("corruptions slower than the reference:", ", ".join(slower) or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["640x192", "1242x375"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-repeats", type=int, default=1)
    args = parser.parse_args()
    for text in args.sizes:
        width, height = (int(v) for v in text.lower().split("x"))
        run((width, height), args.repeats, args.reference_repeats)


if __name__ == "__main__":
    main()
