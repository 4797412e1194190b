"""Depth metrics against closed forms and hand-made cases; robustness scores against published rows."""

import math

import numpy as np
import pytest

from dataengine.metrics.depth import KITTI, NYU, baseline_table, corruption_dee, dee, depth_metrics, mean_metrics, robustness_scores


def kitti_gt(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(2, 70, size=(375, 1242))


def test_perfect_prediction():
    gt = kitti_gt()
    for proto in ("kitti", "nyu"):
        values = depth_metrics(np.clip(gt, 0, 9.5) if proto == "nyu" else gt, np.clip(gt, 0, 9.5) if proto == "nyu" else gt, proto)
        assert values["abs_rel"] == 0 and values["rmse"] == 0 and values["a1"] == 1 and values["a3"] == 1


def test_constant_ratio_closed_forms():
    gt = kitti_gt()
    values = depth_metrics(gt, gt * 1.1, "kitti", median_scaling=False)
    mask = np.zeros_like(gt, dtype=bool)
    mask[int(0.40810811 * 375) : int(0.99189189 * 375), int(0.03594771 * 1242) : int(0.96405229 * 1242)] = True
    g = gt[mask]
    assert values["abs_rel"] == pytest.approx(0.1)
    assert values["sq_rel"] == pytest.approx(np.mean(0.01 * g))
    assert values["rmse"] == pytest.approx(0.1 * math.sqrt(np.mean(g**2)))
    assert values["rmse_log"] == pytest.approx(math.log(1.1))
    assert values["log10"] == pytest.approx(math.log10(1.1))
    assert values["silog"] == pytest.approx(0.0, abs=1e-6)
    assert values["a1"] == 1.0


def test_median_scaling_makes_a_scaled_prediction_score_like_the_unscaled_one():
    gt = kitti_gt(1)
    pred = gt * np.random.default_rng(2).uniform(0.9, 1.1, gt.shape)
    assert depth_metrics(gt, 3.7 * pred, "kitti") == pytest.approx(depth_metrics(gt, pred, "kitti"))
    near = np.clip(gt, 2, 20)  # 3.7 x 20 m stays below the 80 m clamp
    assert depth_metrics(near, 3.7 * near, "kitti", median_scaling=False)["abs_rel"] == pytest.approx(2.7)
    assert depth_metrics(gt, 3.7 * gt, "kitti", median_scaling=False)["abs_rel"] < 2.7  # clamped at 80 m


def test_threshold_accuracy_hand_made():
    gt = np.full((480, 640), 4.0)
    pred = gt.copy()
    pred[:, ::2] = 4.0 * 1.3  # half the pixels off by 1.3 (> 1.25, < 1.25^2)
    values = depth_metrics(gt, pred, "nyu")
    assert values["a1"] == pytest.approx(0.5) and values["a2"] == 1.0


def test_crop_and_depth_range_exclude_pixels():
    gt = kitti_gt()
    pred = gt.copy()
    pred[:100, :] = 1.0  # above the Garg crop
    gt_far = gt.copy()
    gt_far[300:310, 100:200] = 120.0  # beyond 80 m: not evaluated
    pred[300:310, 100:200] = 1.0
    assert depth_metrics(gt_far, pred, "kitti")["abs_rel"] == pytest.approx(0.0, abs=1e-12)


def test_prediction_is_resized_to_the_ground_truth():
    gt = np.full((375, 1242), 10.0)
    values = depth_metrics(gt, np.full((192, 640), 10.0), "kitti")
    assert values["abs_rel"] == pytest.approx(0.0) and values["a1"] == 1.0


def test_bad_predictions_are_refused():
    gt = kitti_gt()
    with pytest.raises(ValueError, match="NaN, infinite or negative"):
        depth_metrics(gt, np.full_like(gt, np.nan))
    with pytest.raises(ValueError, match="NaN, infinite or negative"):
        depth_metrics(gt, -gt)
    with pytest.raises(ValueError, match="no valid ground-truth pixel"):
        depth_metrics(np.zeros_like(gt), gt)
    with pytest.raises(ValueError, match="unknown protocol"):
        depth_metrics(gt, gt, "eth3d")


def test_dee_closed_forms_and_the_published_dark_example():
    assert dee(0.1, 0.9) == pytest.approx({"dee1": 0.2, "dee2": 0.1, "dee3": 0.1 / 0.9})
    by_severity = [{"abs_rel": r, "a1": a} for r, a in [(0.149, 0.806), (0.164, 0.771), (0.194, 0.700), (0.249, 0.569), (0.323, 0.428)]]
    assert corruption_dee(by_severity)["dee2"] == pytest.approx(0.2805, abs=1e-4)
    assert mean_metrics([{"a1": 1.0}, {"a1": 0.5}]) == {"a1": 0.75}


@pytest.mark.parametrize("baseline,mrr", [("monodepth2", 84.46), ("adabins", 85.83)])
def test_published_baseline_rows(baseline, mrr):
    table = baseline_table(baseline)["dee2"]
    scores = robustness_scores(table, baseline)
    assert round(scores.mce, 2) == 100.00 and round(scores.mrr, 2) == mrr and round(scores.rmce, 2) == 100.00
    assert len(scores.ce) == (18 if baseline == "monodepth2" else 15)


def test_scores_of_a_better_model():
    base = baseline_table("monodepth2")["dee2"]
    model = {name: value / 2 for name, value in base.items()}
    scores = robustness_scores(model)
    assert scores.mce == pytest.approx(50.0)
    assert scores.rr["fog"] == pytest.approx((1 - base["fog"] / 2) / (1 - base["clean"] / 2))
    assert scores.rce["snow"] == pytest.approx(0.5)


def test_scores_refuse_incomplete_input():
    with pytest.raises(ValueError, match='"clean"'):
        robustness_scores({"fog": 0.2})
    with pytest.raises(ValueError, match="no DEE2 for rain"):
        robustness_scores({"clean": 0.1, "rain": 0.2})
    with pytest.raises(ValueError, match="unknown baseline"):
        robustness_scores({"clean": 0.1, "fog": 0.2}, "dpt")
    assert robustness_scores({"clean": 0.1, "fog": 0.2}, {"clean": 0.1, "fog": 0.4}).mce == pytest.approx(50.0)


def test_protocol_constants():
    assert KITTI.max_depth == 80 and KITTI.median_scaling and NYU.max_depth == 10 and not NYU.median_scaling
