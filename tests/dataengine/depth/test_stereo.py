"""The stereo depth source on a synthetic rectified pair with known disparity, and on Middlebury."""

import numpy as np
import pytest
from skimage import data

from dataengine.depth.stereo import StereoDepth, read_middlebury_calib
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


MOTORCYCLE_CALIB = """cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
doffs=124.343
baseline=193.001
width=2964
height=1988
ndisp=270
"""


def test_reads_middlebury_2014_calib_txt(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(MOTORCYCLE_CALIB)
    calib = read_middlebury_calib(path)
    assert calib == {"focal_px": 3979.911, "cx": 1244.772, "cy": 1019.507, "baseline_m": pytest.approx(0.193001), "doffs": 124.343}


@pytest.mark.parametrize(
    "text, message",
    [
        ("baseline=193\n", "no cam0= line"),
        ("cam0=[3979.9 0 1244.7; 0 3979.9 1019.5; 0 0 1]\n", "no baseline= line"),
        ("cam0=[1 2]\nbaseline=193\n", "cam0 has 2 numbers, not 9"),
        ("cam0=[3979.9 0 1244.7; 0 3979.9 1019.5; 0 0 1]\nbaseline=abc\n", "could not convert"),
        ("cam0=[3979.9 0 1244.7; 0 3979.9 1019.5; 0 0 1]\nbaseline=0\n", "finite positive focal length and baseline"),
        ("cam0=[-5 0 1244.7; 0 -5 1019.5; 0 0 1]\nbaseline=193\n", "finite positive focal length and baseline"),
        ("cam0=[3979.9 0 1244.7; 0 3979.9 1019.5; 0 0 1]\nbaseline=193\ndoffs=nan\n", "finite positive focal length and baseline"),
    ],
)
def test_a_malformed_calibration_says_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "calib.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as caught:
        read_middlebury_calib(path)
    assert str(path) in str(caught.value)
