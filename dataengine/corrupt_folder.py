"""`dataengine corrupt`: a folder of images under many corruptions and severities, in parallel on Dask.

Output layout: `OUT_DIR/<corruption>/<severity>/<relative path of the input>`. Every output is
seeded by (seed, relative path, corruption, severity), so any single file can be regenerated
alone. Outputs appear atomically; a rerun skips what exists. Unreadable inputs are listed in
`OUT_DIR/rejects.jsonl` and the run goes on.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from corruptions import corrupt
from dataengine.rng import sample_rng

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


def corrupted_output(image: np.ndarray, name: str, severity: int, seed: int, frame: str) -> np.ndarray:
    """The exact output for one (frame, corruption, severity): the regeneration recipe shared by
    `dataengine corrupt` and the corruption-set builders. `name == "clean"` returns the image."""
    if name == "clean":
        return image
    return corrupt(image, name, severity, seed=sample_rng(seed, frame, f"{name}/{severity}"))


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    image = Image.fromarray(array)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(tmp, format="JPEG", quality=95, subsampling=0)
    else:
        image.save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    os.replace(tmp, path)


def corrupt_files(job: CorruptionJob, relatives: Sequence[str]) -> dict[str, Any]:
    """Worker task: every missing output of a few input files; returns counts and rejects."""
    in_dir, out_dir = Path(job.in_dir), Path(job.out_dir)
    written, skipped, rejects = 0, 0, []
    for relative in relatives:
        targets = [(n, s) for n in job.names for s in job.severities if not output_path(out_dir, n, s, relative).exists()]
        skipped += len(job.names) * len(job.severities) - len(targets)
        if not targets:
            continue
        try:
            with Image.open(in_dir / relative) as handle:
                image = np.asarray(handle.convert("RGB"))
            for name, severity in targets:
                _save(corrupted_output(image, name, severity, job.seed, relative), output_path(out_dir, name, severity, relative))
                written += 1
        except (OSError, ValueError) as exc:
            rejects.append({"key": relative, "source": str(in_dir / relative), "code": type(exc).__name__, "reason": str(exc)})
    return {"files": len(relatives), "written": written, "skipped": skipped, "rejects": rejects}


def corrupt_folder(job: CorruptionJob, workers: int | None = None, scheduler: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run the job on a Dask cluster; returns totals. Rejects go to OUT_DIR/rejects.jsonl."""
    from distributed import Client, as_completed
    from tqdm import tqdm

    from dataengine.engine import local_cluster, quiet_dask_logs

    files = list_images(Path(job.in_dir))
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) below {job.in_dir}")
    chunks = [files[i : i + FILES_PER_TASK] for i in range(0, len(files), FILES_PER_TASK)]
    quiet_dask_logs()
    cluster = None if scheduler else local_cluster(workers or os.cpu_count() or 1)
    client = Client(scheduler or cluster)
    totals = {"files": 0, "written": 0, "skipped": 0, "rejects": []}
    try:
        print(f"Dask dashboard: {client.dashboard_link}", file=sys.stderr)
        futures = client.map(corrupt_files, [job] * len(chunks), chunks, retries=2, pure=False)
        with tqdm(total=len(files), unit="image", disable=not progress, file=sys.stderr) as bar:
            for future in as_completed(futures):
                result = future.result()
                for key in ("files", "written", "skipped"):
                    totals[key] += result[key]
                totals["rejects"].extend(result["rejects"])
                bar.update(result["files"])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    totals["rejects"].sort(key=lambda r: r["key"])
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(job.out_dir) / "rejects.jsonl", "w") as handle:
        for reject in totals["rejects"]:
            handle.write(json.dumps(reject, sort_keys=True) + "\n")
    return totals
