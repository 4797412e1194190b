"""`dataengine depth`: depth maps for a folder of images, as 16-bit millimetre PNGs, run as a job.

Monocular models take every image under the folder (batched); stereo takes Middlebury-style folders
(`im0.png`, `im1.png`, `calib.txt`) and writes the left view's depth. Outputs mirror the input tree
with a `.png` extension, are written atomically, and are skipped when already there, so a rerun
resumes. Batches run on an executor like every job (a local Dask cluster by default; each worker
loads the model once); unreadable inputs go to `rejects.jsonl` and the rest goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dataengine.core.depth_png import encode_depth_png
from dataengine.core.rejects import RejectSink
from dataengine.depth.sources import load_monocular, parse_spec
from dataengine.depth.stereo import StereoDepth, read_middlebury_calib
from dataengine.io.atomic import write_bytes_atomic, write_jsonl_atomic
from dataengine.run.executor import Progress, create_executor
from dataengine.run.hub_models import check_hub_model

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class DepthJob:
    images_dir: str
    out_dir: str
    source: str
    device: str | None = None
    batch_size: int = 4


def _target(job: DepthJob, relative: str) -> Path:
    return Path(job.out_dir) / Path(relative).with_suffix(".png")


def _write(target: Path, depth_m: np.ndarray) -> int:
    data, clipped = encode_depth_png(depth_m)
    write_bytes_atomic(target, data)
    return clipped


def _stereo_depth(folder: Path) -> np.ndarray:
    calib = read_middlebury_calib(folder / "calib.txt")
    left, right = (np.asarray(Image.open(folder / name).convert("RGB")) for name in ("im0.png", "im1.png"))
    stereo = StereoDepth(calib["focal_px"], calib["baseline_m"], calib["doffs"], max_disparity=left.shape[1] // 4)
    return stereo.depth(left, right)


def depth_batch(job: DepthJob, relatives: tuple[str, ...]) -> dict[str, Any]:
    """Worker task: the depth of a few inputs (one model call for a monocular source)."""
    images_dir = Path(job.images_dir)
    kind, _ = parse_spec(job.source)
    sink, written, clipped = RejectSink(), 0, 0
    batch, pixels = [], []
    for relative in relatives:
        with sink.guard(key=relative, source=str(images_dir / relative)):
            if kind == "stereo":
                clipped += _write(_target(job, relative), _stereo_depth((images_dir / relative).parent))
                written += 1
            else:
                with Image.open(images_dir / relative) as image:
                    pixels.append(np.asarray(image.convert("RGB")))
                batch.append(relative)
    if batch:
        model = load_monocular(job.source, device=job.device, batch_size=job.batch_size)
        for relative, prediction in zip(batch, model.predict(pixels)):
            clipped += _write(_target(job, relative), prediction.depth)
            written += 1
    return {"written": written, "clipped_pixels": clipped, "rejects": [r.as_dict() for r in sink.rejects]}


def list_inputs(images_dir: Path, kind: str) -> list[str]:
    """Relative paths of the inputs: left views of stereo folders, or every image."""
    if kind == "stereo":
        inputs = sorted(p.parent / "im0.png" for p in images_dir.rglob("calib.txt") if (p.parent / "im0.png").is_file())
        if not inputs:
            raise FileNotFoundError(f"no Middlebury-style stereo folders (calib.txt + im0.png + im1.png) under {images_dir}")
    else:
        inputs = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not inputs:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {images_dir}")
    return [p.relative_to(images_dir).as_posix() for p in inputs]


def depth_folder(
    images_dir: str | Path,
    out_dir: str | Path,
    source: str,
    device: str | None = None,
    batch_size: int = 4,
    progress: bool = True,
    workers: int | None = None,
    scheduler: str | None = None,
) -> dict[str, Any]:
    """Write the depth of every input; returns counts (written, skipped, rejected, clipped pixels).

    `workers=0` runs in this process (one model load; the natural choice for a single GPU).
    """
    images_dir, out_dir = Path(images_dir), Path(out_dir)
    if out_dir.resolve().is_relative_to(images_dir.resolve()):
        raise ValueError(f"OUT_DIR {out_dir} lies inside IMAGES_DIR; choose a folder outside it")
    if batch_size < 1:
        raise ValueError(f"--batch-size {batch_size}: give at least 1")
    kind, _ = parse_spec(source)
    if kind == "gt":
        raise ValueError("'gt' depth is read from a source, not computed; use --source stereo or --source model:<path or hub id>")
    check_hub_model(source)
    job = DepthJob(str(images_dir.resolve()), str(out_dir.resolve()), source, device, batch_size)
    inputs = list_inputs(images_dir, kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [relative for relative in inputs if not _target(job, relative).exists()]
    report: dict[str, Any] = {"written": 0, "skipped": len(inputs) - len(todo), "rejected": 0, "clipped_pixels": 0, "source": source}
    batches = [tuple(todo[i : i + batch_size]) for i in range(0, len(todo), batch_size)]
    rejects: list[dict[str, str]] = []
    bar = Progress(len(todo), "img", enabled=progress)
    executor = create_executor(workers, scheduler) if batches else None
    try:
        for outcome in (
            executor.run(partial(depth_batch, job), batches, name=lambda batch: f"depth-{batch[0]}", retries=1) if executor else ()
        ):
            if outcome.error is not None:
                raise RuntimeError(f"depth of {', '.join(outcome.task)} failed: {outcome.error}")
            report["written"] += outcome.result["written"]
            report["clipped_pixels"] += outcome.result["clipped_pixels"]
            rejects += outcome.result["rejects"]
            bar.advance(len(outcome.task), written=outcome.result["written"], rejected=len(outcome.result["rejects"]))
    finally:
        bar.close()
        if executor is not None:
            executor.close()
    report["rejected"] = len(rejects)
    write_jsonl_atomic(out_dir / "rejects.jsonl", sorted(rejects, key=lambda r: r["key"]))
    return report
