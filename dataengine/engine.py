"""The client side of a build: plan, run partitions on a Dask cluster, resume, and finalize.

Steps (what to build) stay apart from the executor (Dask): the builder plans partitions, the
engine only schedules `run_partition` calls and assembles what they wrote into a release.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from dataengine.builder import create_builder
from dataengine.catalog import BuildSpec, Partition
from dataengine.partition_runner import DONE_DIR, PARTS_DIR, run_partition, write_json_atomic
from dataengine.release import finalize_release
from dataengine.schema import SampleSchema
from dataengine.shards import PARTIAL_SUFFIX

WORK_DIR = ".work"
log = logging.getLogger("dataengine")


class BuildError(RuntimeError):
    """The build cannot start or cannot finish; the message says what to do."""


@dataclass
class BuildResult:
    out: Path
    status: str  # "built" | "up-to-date" | "failed"
    manifest: dict[str, Any] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)


def apply_limit(partitions: Iterable[Partition], limit: int | None) -> list[Partition]:
    """Keep only the first `limit` planned items of each split (partitions stay in plan order)."""
    if limit is None:
        return list(partitions)
    kept: list[Partition] = []
    taken: dict[str, int] = {}
    for part in partitions:
        room = limit - taken.get(part.split, 0)
        if room <= 0:
            continue
        items = part.items[:room]
        taken[part.split] = taken.get(part.split, 0) + len(items)
        kept.append(Partition(part.split, part.index, items))
    return kept


def existing_release_sha(out: Path) -> str | None:
    """The catalog hash of the release (finished or in progress) in `out`, if any."""
    for marker in (out / "manifest.json", out / WORK_DIR / "build.json"):
        if marker.exists():
            try:
                return json.loads(marker.read_text())["catalog_sha256"]
            except (ValueError, KeyError):
                return "unreadable"
    return None


def prepare_output(out: Path, spec: BuildSpec, force: bool) -> None:
    """Refuse to mix two releases in one folder; with `force`, replace the old release."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file; give a folder")
    if not out.exists() or not any(out.iterdir()):
        return
    existing = existing_release_sha(out)
    if existing is None:
        raise BuildError(f"--out {out} is not empty and holds no dataengine release; choose a new or empty folder")
    if existing != spec.sha256 or force:
        if not force:
            raise BuildError(
                f"--out {out} holds a different release (catalog sha256 {existing[:12]}, this one {spec.sha256[:12]}); "
                "pass --force to replace it, or choose another --out"
            )
        log.warning("--force: removing the release in %s", out)
        shutil.rmtree(out)


def remove_stale_temporaries(work: Path) -> int:
    """Partial files of an interrupted run: never complete, always safe to delete."""
    stale = [*(work / PARTS_DIR).glob(f".*{PARTIAL_SUFFIX}"), *(work / DONE_DIR).glob(f".*{PARTIAL_SUFFIX}")]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def build(
    spec: BuildSpec,
    out: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    force: bool = False,
    retries: int = 2,
    progress: bool = True,
    processes: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> BuildResult:
    """Build `spec` into `out`, resuming whatever an interrupted build of the same spec finished.

    `workers` local worker processes (threads when `processes=False`, for builders defined in the
    calling process), or an existing cluster at `scheduler`.
    """
    started = time.perf_counter()
    out = Path(out).resolve()
    builder = create_builder(spec.builder)
    t0 = time.perf_counter()
    try:
        SampleSchema.load(builder.sample_kind).check_fields(builder.fields(spec))
        partitions = apply_limit(builder.plan(spec), spec.limit)
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot plan the build: {exc}") from exc
    plan_seconds = time.perf_counter() - t0
    ids = [p.id for p in partitions]
    if len(set(ids)) != len(ids):
        raise BuildError(f"builder '{spec.builder}' planned duplicate partition ids")

    prepare_output(out, spec, force)
    if (out / "manifest.json").exists() and existing_release_sha(out) == spec.sha256:
        shutil.rmtree(out / WORK_DIR, ignore_errors=True)
        return BuildResult(out, "up-to-date", json.loads((out / "manifest.json").read_text()))

    work = out / WORK_DIR
    (work / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    (work / DONE_DIR).mkdir(parents=True, exist_ok=True)
    if not (work / "build.json").exists():
        write_json_atomic(work / "build.json", {"catalog_sha256": spec.sha256, "name": spec.name, "version": spec.version})
    removed = remove_stale_temporaries(work)
    done = {path.stem for path in (work / DONE_DIR).glob("*.json")}
    pending = [p for p in partitions if p.id not in done]
    if done:
        echo(f"resuming: {len(partitions) - len(pending)} of {len(partitions)} partitions already done, {removed} stale temporary files removed")

    failures: list[tuple[str, str]] = []
    run_seconds = 0.0
    if pending:
        t0 = time.perf_counter()
        failures = _run_on_dask(spec, partitions, pending, work, workers, scheduler, retries, progress, processes, echo)
        run_seconds = time.perf_counter() - t0
    if failures:
        for part_id, error in failures:
            echo(f"partition {part_id} failed after {retries} retries: {error}")
        echo(f"{len(failures)} partition(s) failed; the others are kept. Fix the cause and rerun the same command to resume.")
        return BuildResult(out, "failed", failures=failures)

    unfinished = [p.id for p in partitions if not (work / DONE_DIR / f"{p.id}.json").exists()]
    if unfinished:
        raise BuildError(f"{len(unfinished)} partition(s) have no result ({', '.join(unfinished[:5])}); rerun the same command to resume")
    timings = {"plan": plan_seconds, "run": run_seconds}
    manifest = finalize_release(out, work, spec, builder, partitions, timings, started)
    return BuildResult(out, "built", manifest)


# Dask's default MALLOC_TRIM_THRESHOLD_=64KiB turns every large numpy temporary into an mmap/munmap
# pair with fresh page faults (2x slower rendering here). Large thresholds keep arrays in the heap,
# and one worker thread per process keeps BLAS/OpenMP from oversubscribing the cores.
WORKER_ENVIRON = {
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def quiet_dask_logs() -> None:
    """Unless INFO logging was asked for, keep Dask's start-up and shut-down chatter off the terminal.

    `distributed` sets its loggers' levels when imported, so this runs after that import.
    """
    import distributed  # noqa: F401

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.ERROR)
        logging.getLogger("distributed.batched").setLevel(logging.CRITICAL)


def local_cluster(workers: int, processes: bool = True) -> Any:
    """A local Dask cluster of single-threaded workers with the environment above."""
    import dask
    from distributed import LocalCluster

    quiet_dask_logs()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}):
        return LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=logging.ERROR
        )


def _run_on_dask(
    spec: BuildSpec,
    partitions: list[Partition],
    pending: list[Partition],
    work: Path,
    workers: int | None,
    scheduler: str | None,
    retries: int,
    progress: bool,
    processes: bool,
    echo: Callable[[str], None],
) -> list[tuple[str, str]]:
    from distributed import Client, as_completed
    from tqdm import tqdm

    cluster = None
    quiet_dask_logs()
    if scheduler:
        client = Client(scheduler)
    else:
        workers = workers or os.cpu_count() or 1
        cluster = local_cluster(workers, processes)
        client = Client(cluster)
    failures: list[tuple[str, str]] = []
    try:
        echo(f"Dask dashboard: {client.dashboard_link}")
        n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
        total = sum(len(p.items) for p in partitions)
        done_items = total - sum(len(p.items) for p in pending)
        bar = tqdm(total=total, initial=done_items, unit="sample", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        written = rejected = shards = 0
        queue = iter(pending)
        window = 4 * n_workers  # bounded in-flight work keeps client and scheduler memory flat
        owner: dict[Any, Partition] = {}

        def submit(part: Partition) -> Any:
            future = client.submit(
                run_partition, spec, part, str(work), key=f"partition-{spec.sha256[:10]}-{part.id}", retries=retries, pure=False
            )
            owner[future] = part
            return future

        running = as_completed([submit(part) for part in islice(queue, window)])
        for future in running:
            part = owner.pop(future)
            if future.status == "error":
                error = future.exception()
                failures.append((part.id, f"{type(error).__name__}: {error}"))
            else:
                summary = future.result()
                written += summary["samples"]
                rejected += summary["rejects"]
                shards += summary["shards"]
            bar.update(len(part.items))
            bar.set_postfix(written=written, rejected=rejected, shards=shards, failed=len(failures), refresh=False)
            following = next(queue, None)
            if following is not None:
                running.add(submit(following))
        bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return failures
