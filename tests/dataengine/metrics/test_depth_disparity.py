"""Disparity predictions scored as monodepth2's evaluate_depth.py scores them, to 1e-6 relative.

The oracle below is written from the published protocol with numpy and cv2 only: resize the
predicted disparity to the ground truth's size (bilinear), invert it, keep valid ground truth in
[1e-3, 80] m inside the Garg crop, scale by the ratio of medians, clamp to [1e-3, 80], average the
errors. It keeps float32 throughout, as monodepth2 does with its saved disparities.
"""

import cv2
import numpy as np
import pytest

from dataengine.metrics.depth import depth_metrics

METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


def monodepth2_protocol(gt: np.ndarray, disparity: np.ndarray) -> dict[str, float]:
    height, width = gt.shape
    full_disparity = cv2.resize(disparity, (width, height))
    with np.errstate(divide="ignore"):
        depth = 1 / full_disparity
    top, bottom = int(0.40810811 * height), int(0.99189189 * height)
    left, right = int(0.03594771 * width), int(0.96405229 * width)
    keep = np.zeros(gt.shape, dtype=bool)
    keep[top:bottom, left:right] = True
    keep &= (gt > 1e-3) & (gt < 80)
    truth, guess = gt[keep], depth[keep]
    guess = guess * (np.median(truth) / np.median(guess))
    guess[guess < 1e-3] = 1e-3
    guess[guess > 80] = 80
    ratio = np.maximum(truth / guess, guess / truth)
    return {
        "abs_rel": float(np.mean(np.abs(truth - guess) / truth)),
        "sq_rel": float(np.mean((truth - guess) ** 2 / truth)),
        "rmse": float(np.sqrt(np.mean((truth - guess) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(truth) - np.log(guess)) ** 2))),
        "a1": float(np.mean(ratio < 1.25)),
        "a2": float(np.mean(ratio < 1.25**2)),
        "a3": float(np.mean(ratio < 1.25**3)),
    }


def noisy_scene(seed: int, noise: float, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Sparse LiDAR-like ground truth at 1242x375 and a 640x192 disparity with noise, scattered
    zero pixels and a zero block (holes), at an arbitrary scale."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, 375)[:, None]
    cols = np.linspace(-1, 1, 1242)[None, :]
    scene = 4 + 70 * (1 - rows) ** 2 + 5 * np.sin(6 * cols) ** 2
    gt = np.where(rng.random(scene.shape) < 0.06, scene, 0).astype(np.float32)
    disparity = cv2.resize((1 / scene).astype(np.float32), (640, 192), interpolation=cv2.INTER_AREA)
    disparity = disparity * rng.lognormal(0, noise, disparity.shape).astype(np.float32) * 0.03
    disparity[rng.random(disparity.shape) < 0.05] = 0
    disparity[120:140, 100:160] = 0
    return gt, disparity.astype(dtype)


def relative_gaps(ours: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    return {name: abs(ours[name] - reference[name]) / abs(reference[name]) for name in METRICS}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_disparity_agrees_with_the_monodepth2_protocol_on_every_metric(dtype):
    worst = dict.fromkeys(METRICS, 0.0)
    for seed in range(4):
        for noise in (0.1, 0.4):
            gt, disparity = noisy_scene(seed, noise, dtype)
            gaps = relative_gaps(depth_metrics(gt, disparity, "kitti", disparity=True), monodepth2_protocol(gt, disparity))
            worst = {name: max(worst[name], gaps[name]) for name in METRICS}
    assert max(worst.values()) < 1e-6, worst


def test_inverting_before_the_resize_is_measurably_different():
    """The order matters: inverting first (the old behaviour) misses the protocol by far more than 1e-6."""
    gt, disparity = noisy_scene(0, 0.4)
    reference = monodepth2_protocol(gt, disparity)
    inverted_first = depth_metrics(gt, np.where(disparity > 0, 1 / np.maximum(disparity, 1e-12), 0.0), "kitti")
    assert relative_gaps(inverted_first, reference)["abs_rel"] > 1e-2


def test_zero_disparity_is_far_away_and_clamped():
    gt = np.full((375, 1242), 10.0)
    disparity = np.full((192, 640), 0.1)
    disparity[100:192, :] = 0  # the whole bottom: infinite depth, clamped to 80 m, after median scaling
    values = depth_metrics(gt, disparity, "kitti", disparity=True, median_scaling=False)
    assert values["a1"] < 0.5 and values["rmse"] > 0
    with pytest.raises(ValueError, match="positive, finite median"):
        depth_metrics(gt, np.zeros((192, 640)), "kitti", disparity=True)
    with pytest.raises(ValueError, match="negative disparity"):
        depth_metrics(gt, -np.ones((192, 640)), "kitti", disparity=True)
