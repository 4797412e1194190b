"""A build into an object store (`--out s3://bucket/releases/x`): the local build's guarantees, on objects.

A store has no rename and no folders, but a PUT is atomic, so the flow keeps its commit points:
workers upload each finished part shard whole, then the partition's done record (its commit);
a rerun lists the committed records and runs the rest; finalisation copies part shards to their
final names, writes the side files in a local staging folder, uploads them, and uploads
manifest.json last (the release's commit), then removes `.work/`. Shards are written by the same
`ShardWriter` as locally, so a release in a store is byte-identical to one in a folder.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from dataengine.core.builder import Builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.rejects import ErrorPolicy, Reject
from dataengine.io.store import Store, StoreError, redact
from dataengine.run.build import (
    RELEASE_ENTRIES,
    SPLIT_FILES,
    UNRECOGNISED,
    WORK_DIR,
    BuildError,
    BuildResult,
    check_marker,
    complete_record,
    executor_for,
    marker_sha,
    report_failures,
    run_partitions,
)
from dataengine.run.finalize import MANIFEST_FORMAT, FinalizeError, SideFile, finalize_release
from dataengine.run.worker import DONE_DIR, PARTS_DIR

log = logging.getLogger("dataengine")
BUILD_MARKER = f"{WORK_DIR}/build.json"


class StoreBuild:
    """One build of `spec` into the store at `url` (planning already done by `run.build.build`)."""

    def __init__(
        self,
        spec: BuildSpec,
        url: str,
        builder: Builder,
        partitions: list[Partition],
        collisions: list[Reject],
        echo: Callable[[str], None],
    ):
        self.spec, self.url, self.builder, self.partitions, self.collisions, self.echo = spec, url, builder, partitions, collisions, echo
        self.shown = redact(url)
        try:
            self.store = Store(url)
        except StoreError as exc:
            raise BuildError(f"--out {exc}") from None

    def run(
        self,
        *,
        workers: int | None,
        scheduler: str | None,
        processes: bool,
        force: bool,
        verify: bool,
        retries: int,
        errors: ErrorPolicy,
        progress: bool,
        side_files: Sequence[SideFile],
        timings: dict[str, float],
        started: float,
        items: int,
    ) -> BuildResult:
        """Check the store, resume or replace what it holds, run the pending partitions, finalise."""
        store, spec, echo = self.store, self.spec, self.echo
        try:
            store.probe()
            files = store.files()
        except StoreError as exc:
            raise BuildError(f"--out {exc}") from None
        replace = self.check_output(files, force)
        if not replace and "manifest.json" in files and self.release_sha(files) == spec.sha256:
            manifest = json.loads(store.read_bytes("manifest.json"))
            problems = self.damaged_shards(files, manifest, verify)
            if not problems:
                store.remove_tree(WORK_DIR)
                return BuildResult(self.url, "up-to-date", manifest, items=items)
            echo(f"the release in {self.shown} is damaged ({'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}); rebuilding it")
        rebuild = not replace and "manifest.json" in files
        done = {} if replace or rebuild else self.done_records(files)
        pending = [p for p in self.partitions if p.id not in done]
        executor = executor_for(pending, workers, scheduler, processes)
        failures: list[tuple[str, str]] = []
        try:
            if replace:
                log.warning("--force: removing the release in %s", self.shown)
                store.remove_tree()
            if rebuild:  # un-commit the damaged release; build.json keeps the prefix recognised until the new manifest
                store.remove_tree(WORK_DIR)
            if replace or rebuild or BUILD_MARKER not in files:
                marker = {"catalog_sha256": spec.sha256, "name": spec.name, "version": spec.version}
                store.put_bytes(BUILD_MARKER, json.dumps(marker, indent=1, sort_keys=True).encode("utf-8"))
            if rebuild:
                store.remove("manifest.json")
            removed = self.remove_uncommitted(files, done) if not (replace or rebuild) else 0
            if done:
                echo(f"resuming: {len(done)} of {len(self.partitions)} partitions already done, {removed} uncommitted part shards removed")
            planned_rejects = [*self.builder.planning_rejects(spec), *self.collisions]
            if executor is not None:
                t0 = time.perf_counter()
                finished = [done[p.id] for p in self.partitions if p.id in done]
                work = store.url_of(WORK_DIR)
                failures = run_partitions(
                    spec, self.partitions, finished, pending, work, executor, retries, progress, echo, errors, planned_rejects
                )
                timings["run"] = time.perf_counter() - t0
        finally:
            if executor is not None:
                executor.close()
        if failures:
            report_failures(failures, retries, echo)
            return BuildResult(self.url, "failed", failures=failures, items=items)
        committed = set(store.files(f"{WORK_DIR}/{DONE_DIR}"))
        unfinished = [p.id for p in self.partitions if f"{WORK_DIR}/{DONE_DIR}/{p.id}.json" not in committed]
        if unfinished:
            raise BuildError(
                f"{len(unfinished)} partition(s) have no result ({', '.join(unfinished[:5])}); rerun the same command to resume"
            )
        timings.setdefault("run", 0.0)
        manifest = self.finalize(timings, started, side_files, planned_rejects)
        return BuildResult(self.url, "built", manifest, items=items)

    def release_sha(self, files: dict[str, int]) -> str | None:
        """`run.build.existing_release_sha` for the store: the catalog hash its markers hold."""
        for marker, required in (("manifest.json", {"format": MANIFEST_FORMAT}), (BUILD_MARKER, {})):
            if marker in files:
                try:
                    return marker_sha(self.store.read_bytes(marker), required)
                except OSError:
                    return UNRECOGNISED
        return None

    def foreign_entries(self, files: dict[str, int]) -> list[str]:
        """Top-level names under the prefix that no dataengine release writes (`run.build.foreign_entries`)."""
        foreign = set()
        for name in files:
            top, _, rest = name.partition("/")
            if top in RELEASE_ENTRIES:
                continue
            if not rest or not any(PurePosixPath(rest).match(pattern) for pattern in SPLIT_FILES):
                foreign.add(top)
        return sorted(foreign)

    def check_output(self, files: dict[str, int], force: bool) -> bool:
        """`run.build.check_output` for the store: never mix two releases under one prefix, replace one
        only with `force`, and never replace what dataengine did not write."""
        if not files:
            return False
        out, spec = self.shown, self.spec
        existing = self.release_sha(files)
        check_marker(existing, spec, out, force, "prefix")
        if force:
            foreign = self.foreign_entries(files)
            if foreign:
                raise BuildError(
                    f"--force replaces only a dataengine release, and {out} also holds {', '.join(foreign[:5])}"
                    f"{' ...' if len(foreign) > 5 else ''}; move those away or choose another --out"
                )
        return force

    def damaged_shards(self, files: dict[str, int], manifest: dict[str, Any], verify: bool) -> list[str]:
        """`run.build.damaged_shards` for the store, from one listing (and a read of each shard with `verify`)."""
        problems = [f"{name} is missing" for name in ("rejects.jsonl", "schema.json", "_info.json", "stats.json") if name not in files]
        for split, entry in manifest.get("splits", {}).items():
            if f"{split}/sizes.json" not in files:
                problems.append(f"{split}/sizes.json is missing")
            for shard in entry.get("shards", []):
                size = files.get(shard["path"])
                if size is None:
                    problems.append(f"{shard['path']} is missing")
                elif size != shard["num_bytes"]:
                    problems.append(f"{shard['path']} has {size} bytes, the manifest says {shard['num_bytes']}")
                elif verify and self.store.sha256(shard["path"]) != shard["sha256"]:
                    problems.append(f"{shard['path']} differs from the manifest's sha256")
        return problems

    def done_records(self, files: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Partition id -> its committed done record; an unreadable one is removed, so that partition runs again."""
        prefix = f"{WORK_DIR}/{DONE_DIR}/"
        names = sorted(name for name in files if name.startswith(prefix) and name.endswith(".json") and "/" not in name[len(prefix) :])
        records = {}
        for name, raw in self.store.read_many(names).items():
            part_id = name[len(prefix) : -len(".json")]
            record = complete_record(raw)
            if record is None:
                self.echo(f"the done record of partition {part_id} is empty or unreadable; that partition is run again")
                self.store.remove(name)
            else:
                records[part_id] = record
        return records

    def remove_uncommitted(self, files: dict[str, int], done: dict[str, dict[str, Any]]) -> int:
        """Part shards of partitions without a done record (an interrupted run's): never complete."""
        prefix = f"{WORK_DIR}/{PARTS_DIR}/"
        stale = [name for name in files if name.startswith(prefix) and name[len(prefix) :].split(".")[0] not in done]
        for name in stale:
            self.store.remove(name)
        return len(stale)

    def place(self, files: dict[str, int]) -> Callable[[str, str, int, str], None]:
        """`finalize_release`'s shard mover: a part shard still in `.work/parts` is moved to its final name
        (copy, then delete: a rerun after a kill finishes it); one already moved is checked by size."""

        def move(file: str, relative: str, num_bytes: int, partition: str) -> None:
            part = f"{WORK_DIR}/{PARTS_DIR}/{file}"
            if part in files:
                self.store.move(part, relative)
            elif files.get(relative) != num_bytes:
                raise FinalizeError(f"shard {file} of partition {partition} is missing; rebuild with --force")

        return move

    def finalize(
        self, timings: dict[str, float], started: float, side_files: Sequence[SideFile], planned_rejects: list[Reject]
    ) -> dict[str, Any]:
        """`finalize_release` with the side files staged locally, then uploaded; manifest.json goes last."""
        store = self.store
        files = store.files()
        names = [f"{WORK_DIR}/{DONE_DIR}/{part.id}.json" for part in self.partitions]
        with tempfile.TemporaryDirectory(prefix="dataengine-finalize-") as folder:
            stage = Path(folder)
            (stage / WORK_DIR / DONE_DIR).mkdir(parents=True)
            for name, raw in store.read_many(names).items():
                (stage / name).write_bytes(raw)
            manifest = finalize_release(
                stage,
                stage / WORK_DIR,
                self.spec,
                self.builder,
                self.partitions,
                timings,
                started,
                side_files,
                planned_rejects,
                place=self.place(files),
                shards_at=self.url,
            )
            staged = sorted(path for path in stage.rglob("*") if path.is_file() and path != stage / "manifest.json")
            for path in staged:
                store.put_file(path, path.relative_to(stage).as_posix())
            store.put_file(stage / "manifest.json", "manifest.json")  # the commit point
        store.remove_tree(WORK_DIR)
        return manifest
