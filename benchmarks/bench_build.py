"""Build scaling and memory: scenes with 1 vs 2 workers, and peak RSS of a 10x larger build.

    python -m benchmarks.bench_build scaling [--samples 160]
    python -m benchmarks.bench_build memory [--samples 150]

Scaling compares the same build (same bytes) on 1 and 2 local Dask workers; the ratio is the
speed-up. Memory sums the RSS of the client and every worker process, sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.tree_rss import PeakTreeRSS
from dataengine.api import build
from dataengine.core.catalog import load_catalog
from dataengine.core.resources import resolve_catalog


def spec_for(samples: int, width: int, height: int, per_shard: int):
    return load_catalog(
        resolve_catalog("scenes"),
        overrides=[
            f"params.width={width}",
            f"params.height={height}",
            f"splits.train.num_samples={samples}",
            "splits.validation.num_samples=0",
            "splits.test.num_samples=0",
            f"shards.max_samples={per_shard}",
        ],
    )


def timed_build(spec, workers: int) -> tuple[float, int]:
    out = Path(tempfile.mkdtemp(prefix="bench-build-", dir="."))
    try:
        with PeakTreeRSS() as rss:
            started = time.perf_counter()
            result = build(spec, out / "release", workers=workers, progress=False, echo=lambda message: None)
            seconds = time.perf_counter() - started
        assert result.status == "built"
        return seconds, rss.peak
    finally:
        shutil.rmtree(out)


def scaling(samples: int) -> None:
    spec = spec_for(samples, 640, 480, 10)
    one, _ = timed_build(spec, 1)
    two, _ = timed_build(spec, 2)
    print(f"scenes 640x480, {samples} samples: 1 worker {one:.1f} s ({samples / one:.1f}/s), 2 workers {two:.1f} s ({samples / two:.1f}/s)")
    print(f"speed-up 2 vs 1 workers: {one / two:.2f}x (aim >= 1.7x on 2 cores)")


def measure_in_fresh_process(samples: int) -> tuple[float, int]:
    """Each build in its own interpreter, so one build's leftovers cannot inflate the other's peak."""
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_build", "one", "--samples", str(samples)], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(output[-2]), int(output[-1])


def memory(samples: int) -> None:
    small, small_rss = measure_in_fresh_process(samples)
    large, large_rss = measure_in_fresh_process(10 * samples)
    print(f"{samples} samples: {small:.1f} s, peak RSS {small_rss / 2**20:.0f} MiB")
    print(f"{10 * samples} samples: {large:.1f} s, peak RSS {large_rss / 2**20:.0f} MiB")
    print(f"peak RSS ratio 10x build / 1x build: {large_rss / small_rss:.2f} (must be <= 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["scaling", "memory", "one"])
    parser.add_argument("--samples", type=int)
    args = parser.parse_args()
    if args.what == "scaling":
        scaling(args.samples or 160)
    elif args.what == "memory":
        memory(args.samples or 150)
    else:
        seconds, peak = timed_build(spec_for(args.samples, 320, 240, 25), 2)
        print(seconds, peak)


if __name__ == "__main__":
    main()
