"""Loader throughput (samples/s, decoding included): dataengine.load vs plain webdataset and
HF datasets streaming, on the same release, with 0 and 2 DataLoader workers; then batched (32 per
batch, stacked arrays and records as lists): `dataengine.load(batch_size=32)` vs webdataset's
`.batched(32)`.

    python -m benchmarks.loader [--samples 400] [--repeats 3]

Every reader decodes every member a training loop uses (images, depth in metres, mask, the JSON
record); rates are the best of `--repeats` runs, ours and theirs alternating.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dataengine.api import build
from dataengine.core.catalog import load_catalog
from dataengine.core.depth_png import decode_depth_png
from dataengine.core.resources import resolve_catalog
from dataengine.release.load import ReleaseDataset


def plain_webdataset(release: Path):
    import webdataset as wds

    urls = sorted(str(p) for p in (release / "train").glob("*.tar"))

    def decode(sample):
        return {
            "__key__": sample["__key__"],
            "rgb.png": np.asarray(Image.open(io.BytesIO(sample["rgb.png"])).convert("RGB")),
            "depth.png": decode_depth_png(sample["depth.png"]),
            "mask.png": np.asarray(Image.open(io.BytesIO(sample["mask.png"]))),
            "json": json.loads(sample["json"]),
        }

    return wds.WebDataset(
        urls, shardshuffle=False, empty_check=False, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker
    ).map(decode)


def hf_streaming(release: Path):
    import datasets

    stream = datasets.load_dataset(str(release), split="train", streaming=True)

    def decode(row):
        return {"rgb.png": np.asarray(row["rgb.png"]), "depth.png": np.asarray(row["depth.png"]), "mask.png": np.asarray(row["mask.png"])}

    return stream.map(decode)


def _keep(batch):
    return batch


def rate(dataset, workers: int, expected: int, batch: int | None = None) -> float:
    """Samples/s through a DataLoader (batches already made by the dataset when `batch`)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers, collate_fn=_keep)
    started = time.perf_counter()
    count = sum(len(item["__key__"]) if batch else 1 for item in loader)
    seconds = time.perf_counter() - started
    assert count == expected, (count, expected)
    return count / seconds


def plain_batched(release: Path, batch: int):
    """webdataset's own batching: `.batched(n)` stacks arrays and keeps the rest as lists."""
    return plain_webdataset(release).batched(batch, partial=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-loader-", dir=".")).resolve()
    try:
        spec = load_catalog(
            resolve_catalog("scenes"),
            overrides=[
                f"splits.train.num_samples={args.samples}",
                "splits.validation.num_samples=0",
                "splits.test.num_samples=0",
                "shards.max_samples=50",
            ],
        )
        build(spec, work / "release", progress=False, echo=lambda m: None)
        release = work / "release"
        print(f"{args.samples} scenes at 640x480 (rgb, depth, mask, json), {args.samples // 50} shards; samples/s, decoding included")
        for workers in (0, 2):
            ours, plain = 0.0, 0.0
            for _ in range(args.repeats):  # alternating, so drift on the machine hits both alike
                ours = max(ours, rate(ReleaseDataset(release, "train"), workers, args.samples))
                plain = max(plain, rate(plain_webdataset(release), workers, args.samples))
            hf = rate(hf_streaming(release), workers, args.samples)
            print(
                f"  {workers} workers: dataengine {ours:7.1f}   webdataset {plain:7.1f}   datasets streaming {hf:7.1f}   ours/webdataset {ours / plain:.2f}x"
            )
        print("batched, 32 per batch (samples/s):")
        for workers in (0, 2):
            ours, plain = 0.0, 0.0
            for _ in range(args.repeats):
                ours = max(ours, rate(ReleaseDataset(release, "train", batch_size=32), workers, args.samples, batch=32))
                plain = max(plain, rate(plain_batched(release, 32), workers, args.samples, batch=32))
            print(f"  {workers} workers: dataengine {ours:7.1f}   webdataset {plain:7.1f}   ours/webdataset {ours / plain:.2f}x")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
