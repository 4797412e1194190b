"""SSR-CoT: records/s over rendered scenes with ground-truth vs learned depth on 1 and 2 workers, fact
agreement with the scene truth per depth source, and stereo depth error on Middlebury Motorcycle
(our SGBM source vs OpenCV's block matcher, the quick alternative).

    python -m benchmarks.ssr_cot [--scenes 24] [--backbone resnet18]

The learned source is a timm backbone + decoder checkpoint with random weights (no weights can be
downloaded here): its speed is real, its agreement rates are those of an untrained model.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dataengine.api import build
from dataengine.core.catalog import load_catalog
from dataengine.core.resources import resolve_catalog
from dataengine.depth.stereo import StereoDepth
from dataengine.metrics.depth import compute_errors


def scenes_build(scenes: int, depth_source: str, workers: int, out: Path) -> tuple[float, int, dict]:
    spec = load_catalog(
        resolve_catalog("ssr-cot-scenes"),
        overrides=[
            "params.width=320",
            "params.height=240",
            f"params.depth_source={depth_source}",
            "params.tolerance=0.1",
            f"splits.train.num_samples={scenes}",
            "splits.validation.num_samples=0",
            "shards.max_samples=8",
        ],
    )
    started = time.perf_counter()
    result = build(spec, out, workers=workers, progress=False, force=True)
    seconds = time.perf_counter() - started
    stats = json.loads((out / "stats.json").read_text())
    return seconds, sum(s["num_samples"] for s in result.manifest["splits"].values()), stats.get("agreement", {})


def stereo_errors() -> dict[str, dict[str, float]]:
    from skimage import data

    left, right, disparity = data.stereo_motorcycle()
    focal, baseline, doffs = 3979.911 / 4, 0.193001, 124.343 / 4
    gt = np.where(np.isfinite(disparity), focal * baseline / (disparity + doffs), 0)
    out = {}
    sgbm = StereoDepth(focal, baseline, doffs, max_disparity=96)
    started = time.perf_counter()
    ours = sgbm.depth(left, right)
    out["sgbm (ours)"] = (ours, time.perf_counter() - started)
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right)]
    started = time.perf_counter()
    bm = cv2.StereoBM_create(numDisparities=96, blockSize=15).compute(*grey).astype(np.float32) / 16
    with np.errstate(divide="ignore", invalid="ignore"):
        bm_depth = np.where(bm > 0, focal * baseline / (bm + doffs), 0)
    out["opencv StereoBM"] = (bm_depth, time.perf_counter() - started)
    report = {}
    for name, (depth, seconds) in out.items():
        valid = (gt > 0) & (depth > 0)
        errors = compute_errors(gt[valid], depth[valid])
        report[name] = {
            "abs_rel": round(float(errors["abs_rel"]), 4),
            "a1": round(float(errors["a1"]), 4),
            "coverage": round(float(valid.mean() / (gt > 0).mean()), 3),
            "seconds": round(seconds, 3),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        import torch

        from dataengine.depth.learned import build_model, model_config, save_depth_model

        torch.manual_seed(0)
        config = model_config(args.backbone, input_size=[240, 320], max_depth=40.0)
        checkpoint = save_depth_model(build_model(config), config, tmp / f"{args.backbone}-depth")
        print(f"scenes 320x240, {args.scenes} scenes x 2 questions; learned = {args.backbone} + decoder, random weights, CPU")
        rates = {}
        for source in ("gt", f"model:{checkpoint}"):
            label = "gt" if source == "gt" else f"model:{args.backbone}"
            for workers in (1, 2):
                seconds, records, agreement = scenes_build(args.scenes, source, workers, tmp / f"r-{workers}-{label.replace(':', '_')}")
                rates[(label, workers)] = records / seconds
                print(f"  {label:>16}  workers={workers}  {records} records in {seconds:6.1f} s = {records / seconds:6.2f} records/s")
            print(
                f"  {label:>16}  2 vs 1 workers: {rates[(label, 2)] / rates[(label, 1)]:.2f}x; agreement with truth (tolerance 10% on sizes): "
                + ", ".join(f"{k} {v:.1%}" for k, v in sorted(agreement.items()))
            )
        print(f"  gt vs learned depth on 1 worker: {rates[('gt', 1)] / rates[(f'model:{args.backbone}', 1)]:.2f}x")
    print("stereo on Middlebury Motorcycle (quarter size) against its ground truth:")
    report = stereo_errors()
    for name, row in report.items():
        print(f"  {name:>16}  abs_rel {row['abs_rel']:.4f}  a1 {row['a1']:.4f}  coverage {row['coverage']:.1%}  {row['seconds']:.3f} s")
    ours, theirs = report["sgbm (ours)"], report["opencv StereoBM"]
    print(
        f"  abs_rel ratio StereoBM / ours: {theirs['abs_rel'] / ours['abs_rel']:.2f}x; time ratio ours / StereoBM: {ours['seconds'] / theirs['seconds']:.2f}x"
    )


if __name__ == "__main__":
    main()
