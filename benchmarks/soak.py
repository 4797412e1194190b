"""Soak: a 100,000-sample scenes build (small images) with bounded memory and steady throughput.

Every second a sampler thread records the summed RSS of this process and its Dask workers (and of
this process, the client, alone) and how many samples the finished partitions hold (their `done`
records). The build is cut into tenths by samples done; for each tenth it prints the throughput
and the peak RSS. Steady means the last
tenths run as fast as the first ones and memory does not grow with the number of samples written:
the ratios last / first are printed.

    python -m benchmarks.soak [--samples 100000] [--size 64x48] [--per-shard 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.bench_build import spec_for
from benchmarks.tree_rss import PeakTreeRSS
from dataengine.api import build
from dataengine.run.build import WORK_DIR
from dataengine.run.worker import DONE_DIR


class Sampler(threading.Thread):
    """(seconds, samples done, tree RSS) every `interval` seconds while the build runs."""

    def __init__(self, done_dir: Path, interval: float = 1.0):
        super().__init__(daemon=True)
        self.done_dir, self.interval = done_dir, interval
        self.rows: list[tuple[float, int, int, int]] = []  # seconds, samples done, tree RSS, this process's RSS
        self.stop = threading.Event()
        self.rss = PeakTreeRSS()
        self.counted: dict[str, int] = {}

    def samples_done(self) -> int:
        for path in self.done_dir.glob("*.json") if self.done_dir.is_dir() else []:
            if path.name not in self.counted:
                try:
                    self.counted[path.name] = len(json.loads(path.read_bytes())["keys"])
                except (OSError, ValueError, KeyError):
                    continue
        return sum(self.counted.values())

    def run(self) -> None:
        started = time.perf_counter()
        while not self.stop.is_set():
            self.rows.append((time.perf_counter() - started, self.samples_done(), self.rss._sample(), psutil.Process().memory_info().rss))
            self.stop.wait(self.interval)


def tenths(rows: list[tuple[float, int, int, int]], total: int) -> list[tuple[float, int, int]]:
    """(samples/s, peak tree RSS, peak RSS of this process) in each tenth of the samples."""
    out = []
    for tenth in range(10):
        low, high = total * tenth // 10, total * (tenth + 1) // 10
        inside = [r for r in rows if low <= r[1] <= high]
        before = [r for r in rows if r[1] <= low]
        after = [r for r in rows if r[1] >= high]
        if not before or not after or not inside:
            out.append((float("nan"), 0, 0))
            continue
        start, end = before[-1], after[0]
        rate = (end[1] - start[1]) / max(end[0] - start[0], 1e-9)
        out.append((rate, max(r[2] for r in inside), max(r[3] for r in inside)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--size", default="64x48")
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    spec = spec_for(args.samples, width, height, args.per_shard)
    work = Path(tempfile.mkdtemp(prefix="bench-soak-", dir="."))
    out = work / "release"
    sampler = Sampler(out / WORK_DIR / DONE_DIR)
    try:
        sampler.start()
        started = time.perf_counter()
        result = build(spec, out, workers=args.workers, progress=False, echo=lambda message: None)
        seconds = time.perf_counter() - started
        sampler.stop.set()
        sampler.join()
        assert result.status == "built" and result.manifest is not None
        written = sum(entry["num_samples"] for entry in result.manifest["splits"].values())
        print(
            f"scenes {width}x{height}, {args.samples} samples on {args.workers} workers: {seconds:.1f} s, {written / seconds:.0f} samples/s"
        )
        print(f"{'tenth':>5} {'samples/s':>10} {'peak RSS MiB':>13} {'of it client':>13}")
        rows = tenths(sampler.rows, written)
        for index, (rate, rss, client) in enumerate(rows, 1):
            print(f"{index:>5} {rate:10.0f} {rss / 2**20:13.0f} {client / 2**20:13.0f}")
        print(f"throughput last / first tenth: {rows[-1][0] / rows[0][0]:.2f} (steady: about 1)")
        print(f"peak RSS last / first tenth: {rows[-1][1] / max(rows[0][1], 1):.2f} (bounded: about 1)")
    finally:
        sampler.stop.set()
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
