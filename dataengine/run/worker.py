"""The worker side of a build: run one partition through its builder, check, and write its shards.

Runs inside a Dask worker process. Its output is a set of part shards and a `done` record, both
published atomically, so a partition is either completely done or not at all. For a build into an
object store (`work_dir` a URL) the shards are written to a local temporary folder and each finished
one is uploaded as a whole object; the done record, uploaded after them, commits the partition.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from dataengine.core.builder import Builder, Context, create_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.fields import encode_json
from dataengine.core.rejects import ErrorPolicy, RejectSink
from dataengine.core.schema import SampleSchema, SchemaError
from dataengine.io.atomic import PARTIAL_SUFFIX, write_json_atomic
from dataengine.io.store import Store, is_store_url
from dataengine.io.tar import ShardError, ShardWriter, check_key
from dataengine.run.executor import report_progress

PARTS_DIR = "parts"
DONE_DIR = "done"
PROGRESS_INTERVAL_S = 0.25


@lru_cache(maxsize=8)
def cached_builder(name: str) -> Builder:
    """One builder instance per worker process, so heavy resources load once."""
    return create_builder(name)


@lru_cache(maxsize=8)
def cached_schema(kind: str) -> SampleSchema:
    return SampleSchema.load(kind)


def clear_partition(work: Path, part_id: str) -> None:
    """Remove what an earlier, failed attempt at this partition left behind."""
    parts = work / PARTS_DIR
    for stale in [*parts.glob(f"{part_id}.*.tar"), *parts.glob(f".{part_id}.*{PARTIAL_SUFFIX}")]:
        stale.unlink(missing_ok=True)


def prepare_sample(sample: dict[str, Any], fields: dict[str, str], schema: SampleSchema, seen: set[str]) -> tuple[str, dict[str, bytes]]:
    """Check one sample against the key rules, the builder's fields and the schema; encode its JSON."""
    key = sample.get("__key__")
    check_key(key)
    if key in seen:
        raise ShardError(f"duplicate sample key {key!r} in this partition")
    members = {name: value for name, value in sample.items() if not name.startswith("__")}
    if set(members) != set(fields):
        raise SchemaError(f"members {sorted(members)} differ from the release's fields {sorted(fields)}")
    schema.check(key, members, members.get("json"))
    for name, kind in fields.items():
        if kind == "json":
            members[name] = encode_json(members[name])
    return key, members


def run_partition(spec: BuildSpec, part: Partition, work_dir: str, errors: ErrorPolicy = "skip") -> dict[str, Any]:
    """Process and write one partition; returns a small summary for the client's progress bar.

    `errors="raise"` lets the first bad item or sample fail the partition with its traceback
    (debugging a builder); the default records it in rejects.jsonl and goes on.
    """
    started = time.perf_counter()
    store = Store(work_dir) if is_store_url(work_dir) else None
    if store is not None:  # what an earlier attempt uploaded is overwritten, or never named by a done record
        work = Path(tempfile.mkdtemp(prefix=f"dataengine-{part.id}-"))
    else:
        work = Path(work_dir)
        clear_partition(work, part.id)
    try:
        return _run_partition(spec, part, work, store, errors, started)
    finally:
        if store is not None:
            shutil.rmtree(work, ignore_errors=True)


def _run_partition(
    spec: BuildSpec, part: Partition, work: Path, store: Store | None, errors: ErrorPolicy, started: float
) -> dict[str, Any]:
    builder = cached_builder(spec.builder)
    schema = cached_schema(builder.sample_kind)
    fields = builder.fields(spec)
    ctx = Context(spec, part, sink=RejectSink(policy=errors))
    shards: list[dict[str, Any]] = []
    keys: list[str] = []
    seen: set[str] = set()
    writer: ShardWriter | None = None
    last_report = [time.monotonic()]

    # Reported at most every PROGRESS_INTERVAL_S: items done, samples written, rejects so far. A builder
    # that counts its items (`ctx.item_done`, as `Builder.process` does) reports when an item is done,
    # with its samples written; one that does not reports as samples are written.
    counts_items = type(builder).process is Builder.process

    def progress() -> None:
        now = time.monotonic()
        if now - last_report[0] >= PROGRESS_INTERVAL_S:
            last_report[0] = now
            report_progress(items=min(ctx.items_done, len(part.items)), written=len(keys), rejected=len(ctx.rejects))

    ctx.on_progress = progress
    try:
        for sample in builder.process(part, ctx):
            if not (counts_items or ctx.items_done):
                progress()
            t0 = time.perf_counter()
            try:
                key, members = prepare_sample(sample, fields, schema, seen)
            except (SchemaError, ShardError, TypeError, ValueError) as exc:
                if errors == "raise":
                    raise
                ctx.reject(key=str(sample.get("__key__")), source=str(sample.get("__source__", "")), code="schema", reason=str(exc))
                ctx.timings["validate"] += time.perf_counter() - t0
                continue
            t1 = time.perf_counter()
            if writer is None:
                writer = ShardWriter(work / PARTS_DIR / f"{part.id}.{len(shards):03d}.tar")
            writer.write(key, members)
            seen.add(key)
            keys.append(key)
            if writer.num_samples >= spec.shards.max_samples or writer.num_bytes >= spec.shards.max_bytes:
                shards.append(_finish(writer, store))
                writer = None
            ctx.timings["validate"] += t1 - t0
            ctx.timings["write"] += time.perf_counter() - t1
        if writer is not None:
            t1 = time.perf_counter()
            shards.append(_finish(writer, store))
            ctx.timings["write"] += time.perf_counter() - t1
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    for code, count in ctx.sink.counts.items():
        ctx.counters[f"rejected.{code}"] += count
    ctx.counters["samples_written"] += len(keys)
    ctx.counters["items"] += len(part.items)
    ctx.timings["partition_wall"] += time.perf_counter() - started
    record = {
        "partition": part.id,
        "split": part.split,
        "shards": shards,
        "keys": keys,
        "rejects": [r.as_dict() for r in ctx.rejects],
        "counters": dict(ctx.counters),
        "timings": dict(ctx.timings),
    }
    if store is None:
        write_json_atomic(work / DONE_DIR / f"{part.id}.json", record)
    else:  # after every shard: the record's PUT commits the partition
        store.put_bytes(f"{DONE_DIR}/{part.id}.json", json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return {"partition": part.id, "items": len(part.items), "samples": len(keys), "rejects": len(ctx.rejects), "shards": len(shards)}


def _finish(writer: ShardWriter, store: Store | None = None) -> dict[str, Any]:
    shard = writer.close()
    if store is not None:  # upload the finished part shard whole, then free the local disk
        store.put_file(shard.path, f"{PARTS_DIR}/{Path(shard.path).name}")
        Path(shard.path).unlink()
    return {"file": Path(shard.path).name, "num_samples": shard.num_samples, "num_bytes": shard.num_bytes, "sha256": shard.sha256}
