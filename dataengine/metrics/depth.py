"""Monocular depth metrics and the RoboDepth robustness scores (DEE, CE/mCE, RCE/RmCE, RR/mRR).

Protocols follow the published evaluation code: KITTI Eigen split (depth in [1e-3, 80] m, Garg
crop, per-image median scaling for monocular models, predictions clamped to the depth range) and
NYU Depth v2 (depth in [1e-3, 10] m, Eigen crop, metric predictions). Disparity predictions are
resized before they are inverted, as monodepth2 does. Robustness scores follow RoboDepth's scripts,
which round each split's metrics and each DEE to 3 decimals (`robodepth_dee`; `exact=True` does not).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class Protocol:
    """How predictions are compared with ground truth."""

    name: str
    min_depth: float
    max_depth: float
    crop: tuple[float, float, float, float] | None  # (top, bottom, left, right) as fractions of H, W
    median_scaling: bool


# Garg crop: rows [0.40810811 H, 0.99189189 H), columns [0.03594771 W, 0.96405229 W).
KITTI = Protocol("kitti", 1e-3, 80.0, (0.40810811, 0.99189189, 0.03594771, 0.96405229), median_scaling=True)
# Eigen crop of NYU at 480x640: rows 45:471, columns 41:601.
NYU = Protocol("nyu", 1e-3, 10.0, (45 / 480, 471 / 480, 41 / 640, 601 / 640), median_scaling=False)
# Metric depth without a crop (rendered scenes, any source with dense metric ground truth).
METRIC = Protocol("metric", 1e-3, 80.0, None, median_scaling=False)
PROTOCOLS = {"kitti": KITTI, "nyu": NYU, "metric": METRIC}


def protocol(name: str | Protocol) -> Protocol:
    if isinstance(name, Protocol):
        return name
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}'; choose one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def evaluation_mask(gt: np.ndarray, proto: Protocol) -> np.ndarray:
    """Valid ground truth inside the depth range and the protocol's crop."""
    mask = np.isfinite(gt) & (gt > proto.min_depth) & (gt < proto.max_depth)
    if proto.crop is not None:
        h, w = gt.shape
        top, bottom, left, right = proto.crop
        crop = np.zeros_like(mask)
        crop[int(top * h) : int(bottom * h), int(left * w) : int(right * w)] = True
        mask &= crop
    return mask


def compute_errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """The standard metrics on matched 1-D arrays of positive depths."""
    thresh = np.maximum(gt / pred, pred / gt)
    log_diff = np.log(pred) - np.log(gt)
    return {
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "rmse": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        "silog": float(np.sqrt(max(np.mean(log_diff**2) - np.mean(log_diff) ** 2, 0.0)) * 100),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25**2)),
        "a3": float(np.mean(thresh < 1.25**3)),
    }


def _resized(pred: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`pred` resized bilinearly to `shape` (H, W), as the reference evaluations do with `cv2.resize`."""
    if pred.shape == shape:
        return pred
    return cv2.resize(pred, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _depth_from_disparity(disparity: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Depth from a disparity map the way monodepth2 evaluates one: resize the disparity (in its own
    float precision) to the ground truth's size, then invert; a zero disparity is an infinite depth,
    which the protocol later clamps to its maximum."""
    if disparity.dtype not in (np.float32, np.float64):
        disparity = disparity.astype(np.float64)
    resized = _resized(disparity, shape).astype(np.float64)
    with np.errstate(divide="ignore"):
        return 1.0 / resized


def depth_metrics(
    gt: np.ndarray, pred: np.ndarray, proto: str | Protocol = "kitti", median_scaling: bool | None = None, disparity: bool = False
) -> dict[str, float]:
    """Metrics of one image. `pred` is depth in metres or, with `disparity`, a disparity map (any scale
    when median scaling is on). Either is resized to the ground truth's size first; a disparity is
    inverted only after the resize, as monodepth2's `evaluate_depth.py` does."""
    proto = protocol(proto)
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred)
    if gt.ndim != 2 or pred.ndim != 2:
        raise ValueError(f"ground truth and prediction must be HxW maps, got {gt.shape} and {pred.shape}")
    if not np.isfinite(pred).all() or (pred < 0).any():
        kind = "disparity" if disparity else "depth"
        raise ValueError(f"prediction holds NaN, infinite or negative {kind}; give values >= 0")
    if disparity:
        pred = _depth_from_disparity(pred, gt.shape)
    else:
        pred = _resized(pred.astype(np.float64), gt.shape)
    mask = evaluation_mask(gt, proto)
    if not mask.any():
        raise ValueError(f"no valid ground-truth pixel inside the {proto.name} crop and depth range")
    gt_valid, pred_valid = gt[mask], pred[mask]
    scale_by_median = proto.median_scaling if median_scaling is None else median_scaling
    if scale_by_median:
        median = np.median(pred_valid)
        if not 0 < median < np.inf:
            raise ValueError(f"median scaling needs a positive, finite median prediction, got {median} (mostly zero disparity?)")
        pred_valid = pred_valid * (np.median(gt_valid) / median)
    pred_valid = np.clip(pred_valid, proto.min_depth, proto.max_depth)
    return compute_errors(gt_valid, pred_valid)


def mean_metrics(per_image: Iterable[Mapping[str, float]]) -> dict[str, float]:
    rows = list(per_image)
    if not rows:
        raise ValueError("no images to average")
    return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}


def dee(abs_rel: float, a1: float) -> dict[str, float]:
    """Depth estimation errors: DEE1 = abs_rel - a1 + 1, DEE2 = DEE1 / 2, DEE3 = abs_rel / a1."""
    return {"dee1": abs_rel - a1 + 1, "dee2": (abs_rel - a1 + 1) / 2, "dee3": abs_rel / a1 if a1 > 0 else float("inf")}


def corruption_dee(by_severity: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """DEE of one corruption: abs_rel and a1 averaged over its severities first."""
    rows = list(by_severity)
    return dee(float(np.mean([r["abs_rel"] for r in rows])), float(np.mean([r["a1"] for r in rows])))


def robodepth_round(value: float) -> float:
    """RoboDepth's evaluation scripts keep three decimals with Python's `round(value, 3)`."""
    return round(float(value), 3)


def robodepth_dee(by_corruption: Mapping[str, Sequence[Mapping[str, float]]], exact: bool = False) -> dict[str, dict[str, float]]:
    """DEE1-3 of "clean" and of each corruption from its per-split (per-severity) mean metrics.

    By default this is RoboDepth's procedure, so that scores equal the numbers its scripts print:
    each split's abs_rel and a1 are rounded to 3 decimals, the rounded values are averaged over the
    severities, and each DEE is rounded to 3 decimals (clean: from its rounded metrics). With
    `exact`, nothing is rounded: the plain definitions on full-precision means.
    """
    result = {}
    for name, rows in by_corruption.items():
        rows = list(rows)
        if not rows:
            raise ValueError(f"no per-split metrics for '{name}'")
        if exact:
            result[name] = corruption_dee(rows)
            continue
        abs_rel = sum(robodepth_round(row["abs_rel"]) for row in rows) / len(rows)
        a1 = sum(robodepth_round(row["a1"]) for row in rows) / len(rows)
        result[name] = {key: robodepth_round(value) for key, value in dee(abs_rel, a1).items()}
    return result


def baseline_table(name: str) -> dict[str, Any]:
    """A shipped baseline: `monodepth2` (KITTI-C) or `adabins` (NYUDepth2-C)."""
    files_by_name = {"monodepth2": "monodepth2_kitti_c.json", "adabins": "adabins_nyu_c.json"}
    if name not in files_by_name:
        raise ValueError(f"unknown baseline '{name}'; shipped: {', '.join(files_by_name)}, or pass a mapping of DEE2 values")
    return json.loads(files("dataengine.metrics").joinpath("baselines", files_by_name[name]).read_text())


@dataclass(frozen=True)
class RobustnessScores:
    """mCE, RmCE and mRR (x100, as published) and the per-corruption values behind them."""

    mce: float
    rmce: float
    mrr: float
    ce: dict[str, float] = field(default_factory=dict)
    rce: dict[str, float] = field(default_factory=dict)
    rr: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"mCE": self.mce, "RmCE": self.rmce, "mRR": self.mrr, "CE": self.ce, "RCE": self.rce, "RR": self.rr}


def resilience_rates(dee2: Mapping[str, float]) -> dict[str, float]:
    """RR per corruption: (1 - DEE_i) / (1 - DEE_clean); needs no baseline."""
    if "clean" not in dee2:
        raise ValueError('give a "clean" DEE2 entry')
    return {name: (1 - value) / (1 - dee2["clean"]) for name, value in dee2.items() if name != "clean"}


def robustness_scores(dee2: Mapping[str, float], baseline: str | Mapping[str, float] = "monodepth2") -> RobustnessScores:
    """Scores of a model from its DEE2 per corruption plus "clean", against a baseline's DEE2."""
    reference = dict(baseline_table(baseline)["dee2"] if isinstance(baseline, str) else baseline)
    if "clean" not in dee2 or "clean" not in reference:
        raise ValueError('both the model and the baseline need a "clean" DEE2 entry')
    corruptions = [name for name in dee2 if name != "clean"]
    missing = [name for name in corruptions if name not in reference]
    if missing:
        raise ValueError(f"the baseline has no DEE2 for {', '.join(missing)}")
    if not corruptions:
        raise ValueError("give DEE2 for at least one corruption besides clean")
    clean, base_clean = dee2["clean"], reference["clean"]
    ce = {name: dee2[name] / reference[name] for name in corruptions}
    rce = {name: (clean - dee2[name]) / (base_clean - reference[name]) for name in corruptions}
    rr = resilience_rates(dee2)
    return RobustnessScores(
        mce=100 * float(np.mean(list(ce.values()))),
        rmce=100 * float(np.mean(list(rce.values()))),
        mrr=100 * float(np.mean(list(rr.values()))),
        ce=ce,
        rce=rce,
        rr=rr,
    )
