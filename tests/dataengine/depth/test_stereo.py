"""The stereo depth source on a synthetic rectified pair with known disparity, and on Middlebury."""

import numpy as np
import pytest
from skimage import data

from dataengine.depth.stereo import StereoDepth
from dataengine.metrics.depth import compute_errors


def test_synthetic_pair_with_known_disparity():
    rng = np.random.default_rng(0)
    texture = (rng.random((240, 400)) * 255).astype(np.uint8)
    texture = np.kron(texture, np.ones((1, 1), np.uint8))
    disparity = np.full((240, 320), 16, dtype=np.int64)
    disparity[80:160, 100:220] = 32  # a nearer block
    left = np.zeros((240, 320), np.uint8)
    right = np.zeros((240, 320), np.uint8)
    for v in range(240):
        for u in range(320):
            left[v, u] = texture[v, u + 40]
            right_u = u - disparity[v, u]
            if 0 <= right_u:
                right[v, right_u] = texture[v, u + 40]
    # background right image: fill holes with the background shift
    holes = right == 0
    right[holes] = texture[:, 56:376][holes]
    source = StereoDepth(focal_px=400.0, baseline_m=0.2, max_disparity=64)
    depth = source.depth(left, right)
    inner = depth[100:140, 130:190]
    assert np.median(inner[inner > 0]) == pytest.approx(400 * 0.2 / 32, rel=0.02)
    background = depth[20:60, 250:300]
    assert np.median(background[background > 0]) == pytest.approx(400 * 0.2 / 16, rel=0.02)


def test_middlebury_motorcycle_against_ground_truth():
    left, right, disparity = data.stereo_motorcycle()
    # Middlebury 2014 Motorcycle calibration, scaled to scikit-image's quarter-resolution copy
    focal, baseline, doffs = 3979.911 / 4, 0.193001, 124.343 / 4
    source = StereoDepth(focal_px=focal, baseline_m=baseline, doffs=doffs, max_disparity=96)
    depth = source.depth(left, right)
    gt = np.where(np.isfinite(disparity), focal * baseline / (disparity + doffs), 0)
    valid = (gt > 0) & (depth > 0)
    assert valid.mean() > 0.6
    errors = compute_errors(gt[valid], depth[valid])
    assert errors["abs_rel"] < 0.1 and errors["a1"] > 0.85
