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
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from dataengine.core.builder import Builder, Context, create_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.rejects import POLICIES, ErrorPolicy, Reject
from dataengine.core.schema import SampleSchema
from dataengine.io.atomic import PARTIAL_SUFFIX, fsync_dir, write_json_atomic
from dataengine.io.store import local_or_url
from dataengine.io.tar import sha256_file
from dataengine.run.executor import DaskExecutor, Executor, Progress, create_executor
from dataengine.run.finalize import MANIFEST_FORMAT, SideFile, finalize_release
from dataengine.run.hub_models import check_hub_model
from dataengine.run.worker import DONE_DIR, PARTS_DIR, run_partition

WORK_DIR = ".work"
log = logging.getLogger("dataengine")


class BuildError(RuntimeError):
    """The build cannot start or cannot finish; the message says what to do."""


class PartitionsFailed(BuildError):
    """Some partitions failed after their retries; the others are kept and a rerun resumes."""

    def __init__(self, out: Path, failures: list[tuple[str, str]]):
        super().__init__(f"{len(failures)} partition(s) failed (the others are kept in {out}); fix the cause and rerun to resume")
        self.out, self.failures = out, failures


@dataclass
class BuildResult:
    out: Path | str  # a local folder, or the URL of a release in an object store
    status: str  # "built" | "up-to-date" | "failed"
    manifest: dict[str, Any] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    items: int = 0  # planned items (after --limit); a builder may write more or fewer samples than items


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


UNRECOGNISED = "unrecognised"
# What a release folder holds besides its split folders: the build's side files, and what later
# commands add (card thumbnails, report, validate, the Hub upload's cache).
RELEASE_ENTRIES = frozenset(
    {"manifest.json", "_info.json", "schema.json", "rejects.jsonl", "stats.json", "README.md", "validation.json", "report.html"}
    | {"thumbnails", "report", WORK_DIR, ".validate", ".cache"}
)
SPLIT_FILES = ("*.tar", "sizes.json", f".*{PARTIAL_SUFFIX}")


def existing_release_sha(out: Path) -> str | None:
    """The catalog hash of the dataengine release (finished or in progress) in `out`; None when there is
    no marker, UNRECOGNISED when a marker is not one dataengine wrote (or cannot be read)."""
    for marker, required in ((out / "manifest.json", {"format": MANIFEST_FORMAT}), (out / WORK_DIR / "build.json", {})):
        if marker.exists():
            try:
                return marker_sha(marker.read_bytes(), required)
            except OSError:
                return UNRECOGNISED
    return None


def marker_sha(raw: bytes, required: dict[str, Any]) -> str:
    """The catalog hash a release marker (manifest.json, .work/build.json) holds, or UNRECOGNISED."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return UNRECOGNISED
    if not isinstance(document, dict) or not isinstance(document.get("catalog_sha256"), str):
        return UNRECOGNISED
    if any(document.get(name) != value for name, value in required.items()):
        return UNRECOGNISED
    return document["catalog_sha256"]


def foreign_entries(out: Path) -> list[str]:
    """Top-level entries of `out` that no dataengine release writes: anything but its side files and
    split folders holding only shards and `sizes.json` (a config's splits nest one level deeper)."""

    def split_folder(folder: Path) -> bool:
        return all(
            split_folder(path) if path.is_dir() and not path.is_symlink() else path.is_file() and any(path.match(p) for p in SPLIT_FILES)
            for path in folder.iterdir()
        )

    return sorted(
        path.name
        for path in out.iterdir()
        if path.name not in RELEASE_ENTRIES and not (path.is_dir() and not path.is_symlink() and split_folder(path))
    )


def check_writable(out: Path) -> None:
    """Refuse an `--out` that cannot be written: under a file, or in a folder this process may not
    write (read-only, no permission, a pseudo filesystem). Probes with an empty folder it removes."""
    folder = next((path for path in (out, *out.parents) if path.exists()), None)
    if folder is None or not folder.is_dir():
        raise BuildError(f"--out {out}: {folder or out} is not a folder, so nothing can be created under it; choose another --out")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".dataengine-write-check-", dir=folder))
    except OSError as exc:
        raise BuildError(f"--out {out}: cannot write in {folder} ({exc.strerror}); choose a folder you can write to") from None


def check_marker(existing: str | None, spec: BuildSpec, shown: str, force: bool, place: str) -> None:
    """Refuse a non-empty `--out` (a folder or a store prefix) that holds no release, one dataengine
    did not write, or a different release without `force`."""
    if existing is None:
        raise BuildError(f"--out {shown} is not empty and holds no dataengine release; choose a new or empty {place}")
    if existing == UNRECOGNISED:
        raise BuildError(
            f"--out {shown} holds a manifest.json (or .work/build.json) that dataengine did not write or cannot read; "
            f"it is never replaced, even with --force: choose a new or empty {place}"
        )
    if existing != spec.sha256 and not force:
        raise BuildError(
            f"--out {shown} holds a different release (catalog sha256 {existing[:12]}, this one {spec.sha256[:12]}); "
            "pass --force to replace it, or choose another --out"
        )


def executor_for(pending: list[Partition], workers: int | None, scheduler: str | None, processes: bool) -> Executor | None:
    """The executor for the partitions left to run (none when all are done); a scheduler that cannot
    be reached, or a bad worker count, is a BuildError before any file is touched."""
    if not pending:
        return None
    try:
        return create_executor(workers, scheduler, processes)
    except (ConnectionError, ValueError) as exc:
        raise BuildError(str(exc)) from None


def report_failures(failures: list[tuple[str, str]], retries: int, echo: Callable[[str], None]) -> None:
    for part_id, error in failures:
        echo(f"partition {part_id} failed after {retries} retries: {error}")
    echo(f"{len(failures)} partition(s) failed; the others are kept. Fix the cause and rerun the same command to resume.")


def check_output(out: Path, spec: BuildSpec, force: bool) -> bool:
    """Refuse an unwritable folder, and to mix two releases in one folder (leaving nothing behind);
    True when `force` will replace the release there, which it only does for a folder holding a
    dataengine release and nothing else."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file; give a folder")
    check_writable(out)
    if not out.exists() or not any(out.iterdir()):
        return False
    check_marker(existing_release_sha(out), spec, str(out), force, "folder")
    if force:
        foreign = foreign_entries(out)
        if foreign:
            raise BuildError(
                f"--force replaces only a dataengine release, and {out} also holds {', '.join(foreign[:5])}"
                f"{' ...' if len(foreign) > 5 else ''}; move those away or choose another --out"
            )
    return force


def damaged_shards(out: Path, manifest: dict[str, Any], verify: bool = False) -> list[str]:
    """What is wrong with a finished release's shards and side files: missing or of the wrong size
    (and, with `verify`, a sha256 that differs from the manifest's). Empty when it is intact."""
    problems = []
    for name in ("rejects.jsonl", "schema.json", "_info.json", "stats.json"):
        if not (out / name).is_file():
            problems.append(f"{name} is missing")
    for name in ("schema.json", "_info.json", "stats.json", "README.md"):  # never empty when written whole (no card without api)
        if (out / name).is_file() and (out / name).stat().st_size == 0:
            problems.append(f"{name} is empty")
    for split, entry in manifest.get("splits", {}).items():
        if not (out / split / "sizes.json").is_file():
            problems.append(f"{split}/sizes.json is missing")
        for shard in entry.get("shards", []):
            path = out / shard["path"]
            if not path.is_file() or path.is_symlink():
                problems.append(f"{shard['path']} is missing")
            elif path.stat().st_size != shard["num_bytes"]:
                problems.append(f"{shard['path']} has {path.stat().st_size} bytes, the manifest says {shard['num_bytes']}")
            elif verify and sha256_file(path) != shard["sha256"]:
                problems.append(f"{shard['path']} differs from the manifest's sha256")
    return problems


def drop_key_collisions(builder: Builder, spec: BuildSpec, partitions: list[Partition]) -> tuple[list[Partition], list[Reject]]:
    """Planned items whose sample key an earlier item already has (keys are unique across a release):
    each later one is left out of its partition and rejected with the reason; the first is kept."""
    first: dict[str, str] = {}
    kept: list[Partition] = []
    rejects: list[Reject] = []
    for part in partitions:
        ctx = Context(spec, part)
        items = []
        for item in part.items:
            try:
                key, source = builder.item_key(item, ctx), builder.item_source(item, ctx)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError):
                items.append(item)  # an item too broken to name: processing rejects it with its reason
                continue
            if key in first:
                reason = (
                    f"sample key {key!r} is also the key of {first[key]} (planned earlier and kept); keys must be unique across a release"
                )
                rejects.append(Reject(key=key, source=source, code="duplicate_key", reason=reason))
            else:
                first[key] = source
                items.append(item)
        kept.append(part if len(items) == len(part.items) else Partition(part.split, part.index, tuple(items)))
    return kept, rejects


def done_partitions(work: Path, echo: Callable[[str], None]) -> set[str]:
    """Ids of the partitions whose done record is complete. A record that is empty or unreadable (a
    kill at the wrong moment, a full disk) is removed, so that partition is simply run again."""
    done = set()
    for path in sorted((work / DONE_DIR).glob("*.json")):
        try:
            complete = complete_record(path.read_bytes()) is not None
        except OSError:
            complete = False
        if complete:
            done.add(path.stem)
        else:
            echo(f"the done record of partition {path.stem} is empty or unreadable; that partition is run again")
            path.unlink(missing_ok=True)
    return done


def complete_record(raw: bytes) -> dict[str, Any] | None:
    """A partition's done record, or None when it is empty, unreadable or incomplete."""
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    complete = isinstance(record, dict) and all(isinstance(record.get(k), list) for k in ("shards", "keys", "rejects"))
    return record if complete else None


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
    verify: bool = False,
    retries: int = 2,
    errors: ErrorPolicy = "skip",
    progress: bool = True,
    processes: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    side_files: Sequence[SideFile] = (),
) -> BuildResult:
    """Build `spec` into `out`, resuming whatever an interrupted build of the same spec finished.

    `workers` local worker processes (threads when `processes=False`, for builders defined in the
    calling process), or an existing cluster at `scheduler`. A finished release in `out` is checked
    first (shard sizes; sha256 too with `verify`) and rebuilt when damaged. `out` may be an object
    store URL (`s3://bucket/releases/x`; `run.remote`), so workers on many machines need no shared folder.
    """
    if errors not in POLICIES:
        raise BuildError(f"errors={errors!r}: give one of {', '.join(POLICIES)}")
    started = time.perf_counter()
    location = local_or_url(out)
    builder = create_builder(spec.builder)
    t0 = time.perf_counter()
    try:
        SampleSchema.load(builder.sample_kind).check_fields(builder.fields(spec))
        partitions, collisions = drop_key_collisions(builder, spec, apply_limit(builder.plan(spec), spec.limit))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot plan the build: {exc}") from exc
    depth_source = spec.params.get("depth_source")
    if isinstance(depth_source, str) and depth_source.startswith("model:"):  # the catalogs' one depth spec (dataengine.depth)
        try:
            check_hub_model(depth_source)
        except (ConnectionError, ValueError) as exc:
            raise BuildError(f"params.depth_source: {exc}") from None
    plan_seconds = time.perf_counter() - t0
    ids = [p.id for p in partitions]
    if len(set(ids)) != len(ids):
        raise BuildError(f"builder '{spec.builder}' planned duplicate partition ids")
    items = sum(len(p.items) for p in partitions)
    if isinstance(location, str):
        from dataengine.run.remote import StoreBuild  # imported here: it builds on this module

        store_build = StoreBuild(spec, location, builder, partitions, collisions, echo)
        return store_build.run(
            workers=workers,
            scheduler=scheduler,
            processes=processes,
            force=force,
            verify=verify,
            retries=retries,
            errors=errors,
            progress=progress,
            side_files=side_files,
            timings={"plan": plan_seconds},
            started=started,
            items=items,
        )
    out = location.resolve()

    # Checks first, then the executor (a scheduler that cannot be reached is reported before any
    # file is touched), then the folder is prepared.
    replace = check_output(out, spec, force)
    work = out / WORK_DIR
    if not replace and (out / "manifest.json").exists() and existing_release_sha(out) == spec.sha256:
        manifest = json.loads((out / "manifest.json").read_text())
        problems = damaged_shards(out, manifest, verify)
        if not problems:
            shutil.rmtree(work, ignore_errors=True)
            return BuildResult(out, "up-to-date", manifest, items=items)
        echo(f"the release in {out} is damaged ({'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}); rebuilding it")
    rebuild = not replace and (out / "manifest.json").exists()
    done = set() if replace or rebuild else done_partitions(work, echo)
    pending = [p for p in partitions if p.id not in done]
    executor = executor_for(pending, workers, scheduler, processes)
    try:
        if replace:
            log.warning("--force: removing the release in %s", out)
            shutil.rmtree(out)
        if rebuild:  # un-commit the damaged release: build.json keeps the folder recognised as it until the new manifest
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            write_json_atomic(work / "build.json", {"catalog_sha256": spec.sha256, "name": spec.name, "version": spec.version})
            (out / "manifest.json").unlink()
            fsync_dir(out)
        (work / PARTS_DIR).mkdir(parents=True, exist_ok=True)
        (work / DONE_DIR).mkdir(parents=True, exist_ok=True)
        if not (work / "build.json").exists():
            write_json_atomic(work / "build.json", {"catalog_sha256": spec.sha256, "name": spec.name, "version": spec.version})
        removed = remove_stale_temporaries(work)
        if done:
            echo(
                f"resuming: {len(partitions) - len(pending)} of {len(partitions)} partitions already done, "
                f"{removed} stale temporary files removed"
            )
        planned_rejects = [*builder.planning_rejects(spec), *collisions]
        failures: list[tuple[str, str]] = []
        run_seconds = 0.0
        if executor is not None:
            t0 = time.perf_counter()
            finished = [json.loads((work / DONE_DIR / f"{p.id}.json").read_text()) for p in partitions if p.id in done]
            failures = run_partitions(
                spec, partitions, finished, pending, str(work), executor, retries, progress, echo, errors, planned_rejects
            )
            run_seconds = time.perf_counter() - t0
    finally:
        if executor is not None:
            executor.close()
    if failures:
        report_failures(failures, retries, echo)
        return BuildResult(out, "failed", failures=failures, items=items)

    unfinished = [p.id for p in partitions if not (work / DONE_DIR / f"{p.id}.json").exists()]
    if unfinished:
        raise BuildError(f"{len(unfinished)} partition(s) have no result ({', '.join(unfinished[:5])}); rerun the same command to resume")
    timings = {"plan": plan_seconds, "run": run_seconds}
    try:
        manifest = finalize_release(out, work, spec, builder, partitions, timings, started, side_files, planned_rejects)
    except OSError as exc:  # a full disk, a folder gone read-only: the partitions are kept, the manifest not written
        raise BuildError(
            f"cannot finish the release in {out}: {exc.strerror or exc}"
            f"{f' ({exc.filename})' if exc.filename else ''}; fix that and rerun the same command to finish it"
        ) from None
    return BuildResult(out, "built", manifest, items=items)


def run_partitions(
    spec: BuildSpec,
    partitions: list[Partition],
    finished: list[dict[str, Any]],
    pending: list[Partition],
    work: str,
    executor: Executor,
    retries: int,
    progress: bool,
    echo: Callable[[str], None],
    errors: ErrorPolicy,
    planned_rejects: Sequence[Any] = (),
) -> list[tuple[str, str]]:
    """Run the pending partitions on the executor; returns (partition id, error) of those that failed.
    `finished` are the done records of the partitions a resumed build already holds; `work` is the
    work folder (or its store URL) the workers write to.

    The bar counts planned items as each worker gets through them; its counters start from what a
    resumed build already holds and the rejects made while planning, so they end at the summary's numbers.
    """
    if isinstance(executor, DaskExecutor):
        echo(f"Dask dashboard: {executor.dashboard}")
    counters = {"written": 0, "rejected": len(planned_rejects), "shards": 0}
    for record in finished:
        counters["written"] += len(record["keys"])
        counters["rejected"] += len(record["rejects"])
        counters["shards"] += len(record["shards"])
    total = sum(len(p.items) for p in partitions)
    done = {record["partition"] for record in finished}
    bar = Progress(total, "item", initial=sum(len(p.items) for p in partitions if p.id in done), enabled=progress, counters=counters)
    failures: list[tuple[str, str]] = []
    task = partial(run_partition, spec, work_dir=work, errors=errors)

    def running(part: Partition, counts: dict[str, int]) -> None:
        bar.report(part.id, counts.get("items", 0), written=counts.get("written", 0), rejected=counts.get("rejected", 0))

    try:
        for outcome in executor.run(
            task, pending, name=lambda part: f"partition-{spec.sha256[:10]}-{part.id}", retries=retries, progress=running
        ):
            part = outcome.task
            if outcome.error is not None:
                failures.append((part.id, outcome.error))
                bar.report(part.id, len(part.items), final=True, written=0, rejected=0, failed=1)
            else:
                summary = outcome.result
                bar.report(
                    part.id, len(part.items), final=True, written=summary["samples"], rejected=summary["rejects"], shards=summary["shards"]
                )
    finally:
        bar.close()
    return failures
