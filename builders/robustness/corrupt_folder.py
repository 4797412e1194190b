"""`dataengine corrupt`: a folder of images under many corruptions and severities, in parallel on Dask.

Output layout: `OUT_DIR/<corruption>/<severity>/<relative path of the input>`. Every output is
seeded by (seed, relative path, corruption, severity), so any single file can be regenerated
alone. Outputs appear atomically; a rerun skips what exists. Unreadable inputs are listed in
`OUT_DIR/rejects.jsonl` and the run goes on.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builders.robustness.recipe import corrupted_output
from dataengine.core.rejects import RejectSink
from dataengine.io.atomic import write_bytes_atomic, write_jsonl_atomic
from dataengine.run.executor import Progress, create_executor

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
FILES_PER_TASK = 4


@dataclass(frozen=True)
class CorruptionJob:
    in_dir: str
    out_dir: str
    names: tuple[str, ...]
    severities: tuple[int, ...]
    seed: int


def list_images(in_dir: Path) -> list[str]:
    """Relative POSIX paths of the images below `in_dir`, sorted."""
    return sorted(p.relative_to(in_dir).as_posix() for p in in_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def output_path(out_dir: Path, name: str, severity: int, relative: str) -> Path:
    return out_dir / name / str(severity) / relative


def _encode(array: np.ndarray, suffix: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if suffix in (".jpg", ".jpeg"):
        image.save(buffer, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(buffer, format=Image.registered_extensions().get(suffix, "PNG"))
    return buffer.getvalue()


def corrupt_files(job: CorruptionJob, relatives: Sequence[str]) -> dict[str, Any]:
    """Worker task: every missing output of a few input files; returns counts and rejects."""
    in_dir, out_dir = Path(job.in_dir), Path(job.out_dir)
    written, skipped, sink = 0, 0, RejectSink()
    for relative in relatives:
        targets = [(n, s) for n in job.names for s in job.severities if not output_path(out_dir, n, s, relative).exists()]
        skipped += len(job.names) * len(job.severities) - len(targets)
        if not targets:
            continue
        with sink.guard(key=relative, source=str(in_dir / relative)):
            with Image.open(in_dir / relative) as handle:
                image = np.asarray(handle.convert("RGB"))
            for name, severity in targets:
                target = output_path(out_dir, name, severity, relative)
                write_bytes_atomic(target, _encode(corrupted_output(image, name, severity, job.seed, relative), target.suffix.lower()))
                written += 1
    return {"files": len(relatives), "written": written, "skipped": skipped, "rejects": [r.as_dict() for r in sink.rejects]}


def corrupt_folder(job: CorruptionJob, workers: int | None = None, scheduler: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the job on an executor (a local Dask cluster by default); returns totals.
    Rejects go to OUT_DIR/rejects.jsonl."""
    files = list_images(Path(job.in_dir))
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) below {job.in_dir}")
    chunks = [tuple(files[i : i + FILES_PER_TASK]) for i in range(0, len(files), FILES_PER_TASK)]
    executor = create_executor(workers, scheduler)
    totals: dict[str, Any] = {"files": 0, "written": 0, "skipped": 0, "rejects": []}
    bar = Progress(len(files), "image", enabled=progress)
    try:
        for outcome in executor.run(partial(corrupt_files, job), chunks, name=lambda chunk: f"corrupt-{chunk[0]}", retries=2):
            if outcome.error is not None:
                raise RuntimeError(f"corrupting {', '.join(outcome.task)} failed: {outcome.error}")
            for key in ("files", "written", "skipped"):
                totals[key] += outcome.result[key]
            totals["rejects"].extend(outcome.result["rejects"])
            bar.advance(outcome.result["files"], written=outcome.result["written"], rejected=len(outcome.result["rejects"]))
    finally:
        bar.close()
        executor.close()
    totals["rejects"].sort(key=lambda r: r["key"])
    write_jsonl_atomic(Path(job.out_dir) / "rejects.jsonl", totals["rejects"])
    return totals
