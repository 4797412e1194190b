"""Shard writing throughput: dataengine's ShardWriter vs webdataset.ShardWriter on the same samples.

Ours adds a temporary name, fsync, a re-count from disk, an atomic rename and a sha256 computed
while writing. Both write the same already-encoded samples (rendered scenes) to the same disk.

    python -m benchmarks.bench_shard_writer [--samples 400] [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import webdataset as wds

from builders.scenes.builder import ScenesBuilder
from dataengine.core.builder import Context
from dataengine.core.catalog import load_catalog
from dataengine.core.fields import encode_json
from dataengine.core.resources import resolve_catalog
from dataengine.io.tar import ShardWriter


def encoded_samples(count: int) -> list[tuple[str, dict[str, bytes]]]:
    spec = load_catalog(resolve_catalog("scenes"), overrides=[f"splits.train.num_samples={count}", f"shards.max_samples={count}"])
    builder = ScenesBuilder()
    part = next(p for p in builder.plan(spec) if p.split == "train")
    samples = []
    for sample in builder.process(part, Context(spec, part)):
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        members["json"] = encode_json(members["json"])
        samples.append((sample["__key__"], members))
    return samples


def write_ours(samples, directory: Path, per_shard: int) -> None:
    for start in range(0, len(samples), per_shard):
        writer = ShardWriter(directory / f"ours-{start // per_shard:06d}.tar")
        for key, members in samples[start : start + per_shard]:
            writer.write(key, members)
        writer.close()


def write_webdataset(samples, directory: Path, per_shard: int) -> None:
    with wds.ShardWriter(str(directory / "wds-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for key, members in samples:
            sink.write({"__key__": key, **members})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--per-shard", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"rendering {args.samples} scenes at the scenes catalog's resolution...")
    samples = encoded_samples(args.samples)
    megabytes = sum(len(v) for _, m in samples for v in m.values()) / 1e6
    times: dict[str, list[float]] = {"dataengine": [], "webdataset": []}
    for _ in range(args.repeats):
        for name, write in (("dataengine", write_ours), ("webdataset", write_webdataset)):
            directory = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir="."))
            try:
                started = time.perf_counter()
                write(samples, directory, args.per_shard)
                times[name].append(time.perf_counter() - started)
            finally:
                shutil.rmtree(directory)
    print(f"{args.samples} samples, {megabytes:.1f} MB, {args.per_shard} per shard, median of {args.repeats}")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"  {name:<11} {args.samples / median:8.0f} samples/s  {megabytes / median:8.1f} MB/s")
    ratio = statistics.median(times["webdataset"]) / statistics.median(times["dataengine"])
    print(f"throughput ratio dataengine / webdataset.ShardWriter: {ratio:.2f}x (>= 0.9 required)")


if __name__ == "__main__":
    main()
