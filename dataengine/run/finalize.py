"""Assembling a release folder from finished partitions: final shard names and the side files.

Layout: `<split>/<name>-<NNNNNN>.tar` (a split may be `<config>/<split>`), `<split>/sizes.json`
(open_clip), `manifest.json`,
`_info.json` (timm `wds/`), `rejects.jsonl`, `stats.json`, `schema.json`, `README.md` (card).
`manifest.json` is written last: a folder without it is an unfinished build.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from dataengine.core.builder import Builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.rejects import Reject
from dataengine.core.schema import SampleSchema
from dataengine.io.atomic import fsync_dir, write_json_atomic, write_jsonl_atomic, write_text_atomic
from dataengine.run.worker import DONE_DIR, PARTS_DIR

MANIFEST_FORMAT = "dataengine-release/1"
RECORDED_PACKAGES = ("dataengine", "numpy", "pillow", "dask", "distributed", "webdataset", "datasets", "polars", "jsonschema", "zlib-ng")


class FinalizeError(RuntimeError):
    """Finished partitions do not add up to a valid release."""


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def shard_name(spec: BuildSpec, split: str, number: int) -> str:
    return f"{split}/{spec.name}-{number:06d}.tar"


# (out, manifest, schema, summary, builder); a store build adds `shards_at=`, the URL its shards are
# read from (`out` is then a local staging folder for the side files).
SideFile = Callable[..., None]
# (part shard file, final path relative to the release, its bytes, partition id): a store build's
# way of moving a part shard to its final name; raises FinalizeError when neither exists.
PlaceShard = Callable[[str, str, int, str], None]


def finalize_release(
    out: Path,
    work: Path,
    spec: BuildSpec,
    builder: Builder,
    partitions: list[Partition],
    timings: dict[str, float],
    started: float,
    side_files: Sequence[SideFile] = (),
    planned_rejects: Sequence[Reject] | None = None,
    place: PlaceShard | None = None,
    shards_at: str | None = None,
) -> dict[str, Any]:
    """Move part shards to their final names (idempotent) and write every side file.

    `side_files` write what upper layers add (the dataset card) before the manifest commits the release;
    `planned_rejects` are the builder's planning rejects when the caller already has them. A store
    build passes `place` (shards stay in the store) and `shards_at`, the URL side files read shards from.
    """
    t0 = time.perf_counter()
    records = [json.loads((work / DONE_DIR / f"{part.id}.json").read_text()) for part in partitions]
    _check_unique_keys(records)

    splits: dict[str, dict[str, Any]] = {split: {"num_samples": 0, "num_bytes": 0, "shards": []} for split in builder.output_splits(spec)}
    numbers: Counter = Counter()
    for record in records:
        split = record["split"]
        if split not in splits:
            raise FinalizeError(f"partition {record['partition']} wrote split '{split}', which the builder does not declare")
        (out / split).mkdir(parents=True, exist_ok=True)
        for shard in record["shards"]:
            relative = shard_name(spec, split, numbers[split])
            numbers[split] += 1
            source, target = work / PARTS_DIR / shard["file"], out / relative
            if place is not None:
                place(shard["file"], relative, shard["num_bytes"], record["partition"])
            elif source.exists():
                os.replace(source, target)
            elif not target.exists() or target.stat().st_size != shard["num_bytes"]:
                raise FinalizeError(f"shard {shard['file']} of partition {record['partition']} is missing; rebuild with --force")
            entry = {"path": relative, "num_samples": shard["num_samples"], "num_bytes": shard["num_bytes"], "sha256": shard["sha256"]}
            splits[split]["shards"].append(entry)
            splits[split]["num_samples"] += shard["num_samples"]
            splits[split]["num_bytes"] += shard["num_bytes"]
    for split in splits:
        (out / split).mkdir(parents=True, exist_ok=True)
        fsync_dir(out / split)

    planned = builder.planning_rejects(spec) if planned_rejects is None else planned_rejects
    rejects = [r.as_dict() for r in planned] + [reject for record in records for reject in record["rejects"]]
    write_jsonl_atomic(out / "rejects.jsonl", rejects)

    fields = builder.fields(spec)
    schema = SampleSchema.load(builder.sample_kind)
    write_text_atomic(out / "schema.json", json.dumps(schema.document, indent=2) + "\n")
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": spec.name,
        "version": spec.version,
        "description": spec.description,
        "license": spec.license,
        "builder": spec.builder,
        "sample_kind": builder.sample_kind,
        "seed": spec.seed,
        "catalog_sha256": spec.sha256,
        "catalog": spec.resolved,
        "overrides": list(spec.overrides),
        "limit": spec.limit,
        "packages": package_versions(),
        "fields": fields,
        "depth_source": builder.describe_depth(spec),
        "splits": splits,
        "rejects": {"total": len(rejects), "by_reason": dict(sorted(Counter(r["code"] for r in rejects).items()))},
    }
    _write_consumer_indexes(out, spec, splits)
    summary = builder.summary(spec)
    for side_file in side_files:
        side_file(out, manifest, schema, summary, builder, **({"shards_at": shards_at} if shards_at else {}))
    stats = _stats(records, builder, timings, time.perf_counter() - t0, started)
    if summary:
        stats["dataset"] = summary
    write_text_atomic(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")
    write_json_atomic(out / "manifest.json", manifest, sort_keys=False)  # splits keep the builder's order
    fsync_dir(out)
    shutil.rmtree(work, ignore_errors=True)
    return manifest


def _check_unique_keys(records: list[dict[str, Any]]) -> None:
    owner: dict[str, str] = {}
    for record in records:
        for key in record["keys"]:
            if key in owner:
                raise FinalizeError(
                    f"sample key {key!r} is produced by partitions {owner[key]} and {record['partition']}; keys must be unique across the release"
                )
            owner[key] = record["partition"]


def _write_consumer_indexes(out: Path, spec: BuildSpec, splits: dict[str, dict[str, Any]]) -> None:
    """`sizes.json` per split folder (open_clip) and `_info.json` at the root (timm `wds/` reader)."""
    info: dict[str, Any] = {"name": spec.name, "version": spec.version, "splits": {}}
    for split, entry in splits.items():
        sizes = {Path(s["path"]).name: s["num_samples"] for s in entry["shards"]}
        write_text_atomic(out / split / "sizes.json", json.dumps(sizes, indent=1) + "\n")
        info["splits"][split] = {
            "name": split,
            "num_samples": entry["num_samples"],
            "filenames": [s["path"] for s in entry["shards"]],
            "shard_lengths": [s["num_samples"] for s in entry["shards"]],
        }
    write_text_atomic(out / "_info.json", json.dumps(info, indent=1) + "\n")


def _stats(
    records: list[dict[str, Any]], builder: Builder, timings: dict[str, float], finalize_seconds: float, started: float
) -> dict[str, Any]:
    counters: Counter = Counter()
    worker_seconds: defaultdict = defaultdict(float)
    for record in records:
        counters.update(record["counters"])
        for stage, seconds in record["timings"].items():
            worker_seconds[stage] += seconds
    return {
        "partitions": len(records),
        "counts": dict(sorted(counters.items())),
        **builder.statistics(counters),
        "worker_seconds": {stage: round(s, 3) for stage, s in sorted(worker_seconds.items())},
        "client_seconds": {**{k: round(v, 3) for k, v in timings.items()}, "finalize": round(finalize_seconds, 3)},
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
