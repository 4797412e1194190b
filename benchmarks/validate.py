"""The depth reference trainer (`dataengine validate`): training samples/s through dataengine.load with
0 and 2 DataLoader workers vs the same loop fed from in-memory tensors, and the demo contract.

    python -m benchmarks.validate [--samples 96] [--epochs 3] [--device cpu|cuda] [--skip-demo] [--keep]

Training: one small scenes release (160x120, --samples train / 16 validation) validated with the
default recipe (resnet18, batch 8, input 96x128) for --epochs epochs, once with 0 and once with 2
workers; samples/s is over all epochs (worker start-up included, as a user sees it) and the data
wait share is validation.json's `timings.data_wait_share`. The alternative: the train split decoded
and resized into tensors first, then the same model, optimizer, schedule and loss with no loader (an
upper bound on what any loader can give). Demo: `dataengine build demo`, `dataengine validate` it
with its default recipe (the contract: pass in under 3 minutes on 2 CPU cores), then the same
release with its depth maps permuted across each split, which must fail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from builders.fixtures import broken_copy
from dataengine.api import build
from dataengine.core.builder import create_builder
from dataengine.core.catalog import load_catalog
from dataengine.core.resources import resolve_catalog
from dataengine.metrics.depth import protocol
from dataengine.release.load import load
from dataengine.release.reader import Release
from dataengine.release.verify import verify_release
from dataengine.validate.checkpoints import lr_schedule
from dataengine.validate.config import resolve_config
from dataengine.validate.depth import RECIPE_SCHEMA, DepthTrainer, _members, train_step
from dataengine.validate.run import VALIDATION, WORKDIR

CONTRACT_S = 180


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def small_release(work: Path, samples: int) -> Path:
    spec = load_catalog(
        resolve_catalog("scenes"),
        overrides=[
            "params.width=160",
            "params.height=120",
            f"splits.train.num_samples={samples}",
            "splits.validation.num_samples=16",
            "splits.test.num_samples=0",
            "shards.max_samples=16",
        ],
    )
    result = build(spec, work / "scenes", workers=2, progress=False, echo=lambda message: None)
    assert result.status == "built", result.status
    return result.out


def rate(history: list[dict[str, Any]], n_train: int) -> float:
    """Samples/s over all epochs: total samples over the summed epoch times."""
    return len(history) * n_train / sum(n_train / row["samples_per_s"] for row in history)


def with_loader(release: Path, workers: int, epochs: int, device: str) -> dict[str, Any]:
    """`dataengine validate` in its own process, as a user runs it (no state left over from another run)."""
    shutil.rmtree(release / WORKDIR, ignore_errors=True)
    (release / VALIDATION).unlink(missing_ok=True)
    _, wall, _ = dataengine_cli(
        "validate",
        str(release),
        "--no-progress",
        "--device",
        device,
        "--epochs",
        str(epochs),
        "--set",
        f"validate.recipe.workers={workers}",
    )
    document = json.loads((release / VALIDATION).read_text())
    return {
        "samples_s": rate(document["history"], document["train_samples"]),
        "wait": document["timings"]["data_wait_share"],
        "train_s": document["timings"]["train_s"],
        "total_s": wall,
        "verdict": document["verdict"],
        "recipe": document["recipe"],
    }


def in_memory_in_fresh_process(release: Path, epochs: int, device: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.validate", "--in-memory-of", str(release), "--epochs", str(epochs), "--device", device]
    started = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {**json.loads(output.strip().splitlines()[-1]), "total_s": time.perf_counter() - started}


def in_memory(release: Path, epochs: int, device: str) -> dict[str, Any]:
    """The alternative: the whole train split decoded and resized into tensors first, then the trainer's
    own model, AdamW, warm-up + cosine schedule and SI log loss over shuffled index batches."""
    import cv2
    import torch

    recipe = resolve_config(None, [f"validate.recipe.epochs={epochs}"], RECIPE_SCHEMA, trainer="depth").recipe
    source = Release.open(release)
    image_member, depth_member = _members(source.manifest)
    height, width = recipe["input_size"]
    started = time.perf_counter()
    images, depths = [], []
    for sample in load(release, "train"):
        images.append(cv2.resize(sample[image_member], (width, height), interpolation=cv2.INTER_AREA))
        depths.append(cv2.resize(sample[depth_member], (width, height), interpolation=cv2.INTER_NEAREST))
    cuda = device.startswith("cuda")
    all_images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous().to(device)
    all_depths = torch.from_numpy(np.stack(depths))[:, None].to(device)
    preload = time.perf_counter() - started
    n_train = len(images)

    torch.manual_seed(recipe["seed"])
    proto = protocol(create_builder(source.manifest.builder).depth_protocol)
    model, config = DepthTrainer._model(recipe, proto, device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)
    batch = recipe["batch_size"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(epochs * math.ceil(n_train / batch), recipe["warmup"]))
    generator = torch.Generator().manual_seed(recipe["seed"])
    wait = compute = 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=generator)
        fetched = time.perf_counter()
        for first in range(0, n_train, batch):
            index = order[first : first + batch].to(device)
            images_b, target = all_images[index], all_depths[index]
            t0 = time.perf_counter()
            wait += t0 - fetched
            train_step(model, optimizer, scheduler, images_b, target, mean, std, recipe["si_lambda"], cuda)  # the trainer's own step
            fetched = time.perf_counter()
            compute += fetched - t0
    steps = wait + compute
    return {"samples_s": epochs * n_train / steps, "wait": wait / steps, "train_s": steps, "preload_s": preload}


def dataengine_cli(*args: str) -> tuple[int, float, str]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dataengine.cli", *args], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"dataengine {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.returncode, seconds, done.stdout


def permuted_depth_copy(release: Path, out: Path, seed: int = 5) -> Path:
    """A copy of `release` whose depth maps are permuted across each split (shards and manifest valid)."""
    source = Release.open(release)
    depth_members = source.manifest.members("depth")
    depths = {split: [{m: s[m] for m in depth_members} for s in source.raw_samples(split)] for split in source.splits}
    order = {split: np.random.default_rng(seed).permutation(len(values)) for split, values in depths.items()}
    copy = broken_copy(release, out, lambda split, members, i: {**members, **depths[split][order[split][i]]})
    problems = verify_release(copy)
    assert problems == [], problems
    return copy


def metrics_line(document: dict[str, Any]) -> str:
    ours, prior = document["metrics"], document["prior"]
    return f"abs_rel {ours['abs_rel']:.3f} (prior {prior['abs_rel']:.3f}), a1 {ours['a1']:.3f} (prior {prior['a1']:.3f})"


def demo(work: Path, device: str) -> None:
    rc, build_s, _ = dataengine_cli("build", "demo", "--out", str(work / "demo"), "--no-progress")
    assert rc == 0
    release = work / "demo"
    rc, good_s, _ = dataengine_cli("validate", str(release), "--device", device, "--no-progress")
    good = json.loads((release / VALIDATION).read_text())
    broken = permuted_depth_copy(release, work / "demo-permuted")
    rc_broken, broken_s, _ = dataengine_cli("validate", str(broken), "--device", device, "--no-progress")
    bad = json.loads((broken / VALIDATION).read_text())
    recipe = good["recipe"]
    splits = Release.open(release).manifest.splits
    print(
        f"\ndemo release ({', '.join(f'{s} {e.num_samples}' for s, e in splits.items())}), default recipe "
        f"({recipe['epochs']} epochs, input {recipe['input_size'][0]}x{recipe['input_size'][1]}, {recipe['workers']} workers), "
        f"{device}, {cores()} cores; build {build_s:.1f} s"
    )
    print(f"  {'':16} {'wall s':>7}  {'train s':>7}  {'wait':>5}  verdict")
    contract = "within" if good["verdict"] == "pass" and good_s < CONTRACT_S else "MISSES"
    print(
        f"  {'demo':16} {good_s:7.1f}  {good['timings']['train_s']:7.1f}  {good['timings']['data_wait_share']:5.0%}  "
        f"{good['verdict']} (exit {rc}): {metrics_line(good)}"
    )
    print(
        f"  {'permuted depth':16} {broken_s:7.1f}  {bad['timings']['train_s']:7.1f}  {bad['timings']['data_wait_share']:5.0%}  "
        f"{bad['verdict']} (exit {rc_broken}): {metrics_line(bad)}"
    )
    for reason in bad["reasons"]:
        print(f"    {reason}")
    broken_ok = "fails" if bad["verdict"] == "fail" else "DOES NOT FAIL"
    print(f"contract (demo passes in < {CONTRACT_S} s on 2 CPU cores; permuted copy fails): {contract}; permuted copy {broken_ok}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=96, help="train samples of the small scenes release (16 validation)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda[:N])")
    parser.add_argument("--skip-demo", action="store_true", help="skip the demo release's validate and its permuted copy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--in-memory-of", type=Path, help=argparse.SUPPRESS)  # one in-memory run in this process: prints JSON
    args = parser.parse_args()
    if args.in_memory_of is not None:
        print(json.dumps(in_memory(args.in_memory_of, args.epochs, args.device)))
        return
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-validate-", dir=".")).resolve()
    try:
        release = small_release(work, args.samples)
        zero = with_loader(release, 0, args.epochs, args.device)
        two = with_loader(release, 2, args.epochs, args.device)
        memory = in_memory_in_fresh_process(release, args.epochs, args.device)
        recipe = two["recipe"]
        print(
            f"depth trainer, scenes 160x120 ({args.samples} train / 16 validation), {args.epochs} epochs, batch {recipe['batch_size']}, "
            f"input {recipe['input_size'][0]}x{recipe['input_size'][1]}, {recipe['backbone']}, {args.device}, {cores()} cores"
        )
        print(f"  {'':34} {'samples/s':>9}  {'data wait':>9}  {'train s':>7}  {'total s':>7}")
        for name, row in (
            ("dataengine.load, 0 workers", zero),
            ("dataengine.load, 2 workers", two),
            ("in-memory tensors, no loader", memory),
        ):
            print(f"  {name:34} {row['samples_s']:9.1f}  {row['wait']:9.1%}  {row['train_s']:7.1f}  {row['total_s']:7.1f}")
        print(
            f"  (each in a fresh process; total: wall time of `dataengine validate` (prior, training, evaluation, least-learnable "
            f"scan, checkpoints) or of the in-memory run ({memory['preload_s']:.1f} s preload); samples/s over all epochs)"
        )
        print(f"2 workers vs 0 workers: {two['samples_s'] / zero['samples_s']:.2f}x samples/s")
        print(
            f"ours vs in-memory upper bound: 2 workers {two['samples_s'] / memory['samples_s']:.2f}x, "
            f"0 workers {zero['samples_s'] / memory['samples_s']:.2f}x"
        )
        if not args.skip_demo:
            demo(work, args.device)
        print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
