"""The client side of a build: plan, run partitions on a Dask cluster, resume, and finalize.

Steps (what to build) stay apart from the executor (Dask): the builder plans partitions, the
engine only schedules `run_partition` calls and assembles what they wrote into a release.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from dataengine.core.builder import create_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.rejects import POLICIES, ErrorPolicy
from dataengine.core.schema import SampleSchema
from dataengine.io.atomic import PARTIAL_SUFFIX, write_json_atomic
from dataengine.run.executor import DaskExecutor, Executor, Progress, create_executor
from dataengine.run.finalize import SideFile, finalize_release
from dataengine.run.worker import DONE_DIR, PARTS_DIR, run_partition

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
    errors: ErrorPolicy = "skip",
    progress: bool = True,
    processes: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    side_files: Sequence[SideFile] = (),
) -> BuildResult:
    """Build `spec` into `out`, resuming whatever an interrupted build of the same spec finished.

    `workers` local worker processes (threads when `processes=False`, for builders defined in the
    calling process), or an existing cluster at `scheduler`.
    """
    if errors not in POLICIES:
        raise BuildError(f"errors={errors!r}: give one of {', '.join(POLICIES)}")
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
        echo(
            f"resuming: {len(partitions) - len(pending)} of {len(partitions)} partitions already done, {removed} stale temporary files removed"
        )

    failures: list[tuple[str, str]] = []
    run_seconds = 0.0
    if pending:
        t0 = time.perf_counter()
        try:
            executor = create_executor(workers, scheduler, processes)
        except (ConnectionError, ValueError) as exc:
            raise BuildError(str(exc)) from None
        try:
            failures = _run_partitions(spec, partitions, pending, work, executor, retries, progress, echo, errors)
        finally:
            executor.close()
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
    manifest = finalize_release(out, work, spec, builder, partitions, timings, started, side_files)
    return BuildResult(out, "built", manifest)


def _run_partitions(
    spec: BuildSpec,
    partitions: list[Partition],
    pending: list[Partition],
    work: Path,
    executor: Executor,
    retries: int,
    progress: bool,
    echo: Callable[[str], None],
    errors: ErrorPolicy,
) -> list[tuple[str, str]]:
    """Run the pending partitions on the executor; returns (partition id, error) of those that failed."""
    if isinstance(executor, DaskExecutor):
        echo(f"Dask dashboard: {executor.dashboard}")
    total = sum(len(p.items) for p in partitions)
    bar = Progress(total, "sample", initial=total - sum(len(p.items) for p in pending), enabled=progress)
    failures: list[tuple[str, str]] = []
    task = partial(run_partition, spec, work_dir=str(work), errors=errors)
    try:
        for outcome in executor.run(task, pending, name=lambda part: f"partition-{spec.sha256[:10]}-{part.id}", retries=retries):
            if outcome.error is not None:
                failures.append((outcome.task.id, outcome.error))
                bar.advance(len(outcome.task.items), failed=1)
            else:
                summary = outcome.result
                bar.advance(len(outcome.task.items), written=summary["samples"], rejected=summary["rejects"], shards=summary["shards"])
    finally:
        bar.close()
    return failures
