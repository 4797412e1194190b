"""`dataengine depth`: depth maps for a folder of images, as 16-bit millimetre PNGs.

Monocular models take every image under the folder (batched); stereo takes Middlebury-style folders
(`im0.png`, `im1.png`, `calib.txt`) and writes the left view's depth. Outputs mirror the input tree
with a `.png` extension, are written atomically, and are skipped when already there, so a rerun
resumes. Unreadable inputs go to `rejects.jsonl` and the rest goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from dataengine.atomic import write_bytes_atomic
from dataengine.depth.codec import encode_depth_png
from dataengine.depth.sources import load_monocular, parse_spec
from dataengine.depth.stereo import StereoDepth, read_middlebury_calib

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _write(target: Path, depth_m: np.ndarray) -> int:
    data, clipped = encode_depth_png(depth_m)
    write_bytes_atomic(target, data)
    return clipped


def depth_folder(images_dir: str | Path, out_dir: str | Path, source: str, device: str | None = None, batch_size: int = 4,
                 progress: bool = True) -> dict[str, Any]:
    """Write the depth of every input; returns counts (written, skipped, rejected, clipped pixels)."""
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if out_dir.resolve().is_relative_to(images_dir.resolve()):
        raise ValueError(f"OUT_DIR {out_dir} lies inside IMAGES_DIR; choose a folder outside it")
    kind, _ = parse_spec(source)
    if kind == "gt":
        raise ValueError("'gt' depth is read from a source, not computed; use --source stereo or --source model:<path or hub id>")
    if kind == "stereo":
        inputs = sorted(p.parent / "im0.png" for p in images_dir.rglob("calib.txt") if (p.parent / "im0.png").is_file())
        if not inputs:
            raise FileNotFoundError(f"no Middlebury-style stereo folders (calib.txt + im0.png + im1.png) under {images_dir}")
    else:
        inputs = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not inputs:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {images_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    targets = {p: out_dir / p.relative_to(images_dir).with_suffix(".png") for p in inputs}
    todo = [p for p in inputs if not targets[p].exists()]
    report = {"written": 0, "skipped": len(inputs) - len(todo), "rejected": 0, "clipped_pixels": 0, "source": source}
    rejects = []
    bar = tqdm(total=len(todo), desc="depth", unit="img", disable=not progress)
    model = load_monocular(source, device=device, batch_size=batch_size) if kind == "model" else None
    for start in range(0, len(todo), batch_size):
        batch, pixels = [], []
        for path in todo[start : start + batch_size]:
            try:
                if kind == "stereo":
                    calib = read_middlebury_calib(path.parent / "calib.txt")
                    left, right = (np.asarray(Image.open(path.parent / name).convert("RGB")) for name in ("im0.png", "im1.png"))
                    stereo = StereoDepth(calib["focal_px"], calib["baseline_m"], calib["doffs"], max_disparity=left.shape[1] // 4)
                    report["clipped_pixels"] += _write(targets[path], stereo.depth(left, right))
                    report["written"] += 1
                else:
                    with Image.open(path) as image:
                        pixels.append(np.asarray(image.convert("RGB")))
                    batch.append(path)
            except (OSError, ValueError, KeyError) as exc:
                rejects.append({"path": str(path.relative_to(images_dir)), "reason": f"{type(exc).__name__}: {exc}"})
        if model is not None and batch:
            for path, prediction in zip(batch, model.predict(pixels)):
                report["clipped_pixels"] += _write(targets[path], prediction.depth)
                report["written"] += 1
        bar.update(len(todo[start : start + batch_size]))
    bar.close()
    report["rejected"] = len(rejects)
    if rejects:
        with open(out_dir / "rejects.jsonl", "a") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in rejects)
    return report
