"""score-depth equals the field's own code: monodepth2's disparity protocol and RoboDepth's rounding.

RoboDepth's KITTI-C scripts (`evaluate_kittic.py`, `utils_kittic.py` in its model zoo) round each
split's mean metrics with `round(x, 3)`, average the rounded abs_rel and a1 over the severities with
`sum(...) / n`, round every DEE to 3 decimals (clean: from its rounded metrics), and compute CE, RCE
and RR from those DEE values without further rounding. The re-computations here follow that text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from builders.fixtures import write_kitti_tree
from builders.robustness.scoring import score_release
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.catalog import load_catalog
from dataengine.metrics.depth import baseline_table, robodepth_dee, robustness_scores
from tests.builders.robustness.conftest import kitti_c_catalog
from tests.dataengine.metrics.test_depth_disparity import METRICS, monodepth2_protocol

CORRUPTIONS = ["brightness", "contrast", "pixelate"]
SEVERITIES = [1, 2, 3]
BASELINE = baseline_table("monodepth2")["dee2"]


def robodepth_recomputation(per_split: dict[str, dict[str, float]], exact: bool = False) -> dict[str, float]:
    """mCE, RmCE and mRR (x100) from per-split metrics, as RoboDepth's scripts compute them (or exactly)."""
    keep = (lambda value: value) if exact else (lambda value: round(value, 3))

    def dee2(levels: list[dict[str, float]]) -> float:
        abs_rel = sum([keep(level["abs_rel"]) for level in levels]) / len(levels)
        a1 = sum([keep(level["a1"]) for level in levels]) / len(levels)
        return keep((abs_rel - a1 + 1) / 2)

    clean = dee2([per_split["clean/test"]])
    names = sorted({split.split("/")[0] for split in per_split} - {"clean"})
    levels = {name: sorted(int(split.rsplit("_", 1)[1]) for split in per_split if split.startswith(f"{name}/")) for name in names}
    model = {name: dee2([per_split[f"{name}/severity_{level}"] for level in levels[name]]) for name in names}
    ce = [model[name] / BASELINE[name] for name in names]
    rce = [(clean - model[name]) / (BASELINE["clean"] - BASELINE[name]) for name in names]
    rr = [(1 - model[name]) / (1 - clean) for name in names]
    return {"mCE": 100 * float(np.mean(ce)), "RmCE": 100 * float(np.mean(rce)), "mRR": 100 * float(np.mean(rr))}


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return write_kitti_tree(tmp_path_factory.mktemp("kitti"), frames_per_drive=2, drives=2)


@pytest.fixture(scope="module")
def release(tmp_path_factory, kitti):
    directory = tmp_path_factory.mktemp("kitti-c")
    sources = {"root": kitti.root, "split_file": kitti.split_file, "gt_root": kitti.gt_root}
    result = build(
        load_catalog(kitti_c_catalog(directory, sources, CORRUPTIONS, SEVERITIES)), directory / "release", workers=0, progress=False
    )
    assert result.status == "built"
    return directory / "release"


def disparity_guess(seed: int, noise: float) -> np.ndarray:
    """A 640x192 float32 disparity at an arbitrary scale, noisy, with scattered and block holes."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, 192)[:, None]
    disparity = np.repeat(1 / (5 + 40 * (1 - rows) ** 2), 640, axis=1) * 0.07
    disparity = disparity * rng.lognormal(0, noise, disparity.shape)
    disparity[rng.random(disparity.shape) < 0.04] = 0
    disparity[150:170, 300:380] = 0
    return disparity.astype(np.float32)


@pytest.fixture(scope="module")
def disparities(tmp_path_factory, kitti):
    """Per-frame disparity files in the export layout, noisier with the severity."""
    root = tmp_path_factory.mktemp("preds")
    folders = ["clean"] + [f"{name}/{level}" for name in CORRUPTIONS for level in SEVERITIES]
    for index, folder in enumerate(folders):
        for number, frame in enumerate(kitti.lines):
            target = root / folder / Path(frame).with_suffix(".npy")
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, disparity_guess(100 * index + number, 0.05 + 0.1 * (index % 4)))
    return root


def protocol_means(kitti, predictions: Path, folder: str) -> dict[str, float]:
    rows = []
    for frame in kitti.lines:
        gt = np.asarray(Image.open(kitti.gt_root / frame)).astype(np.float32) / np.float32(256)
        rows.append(monodepth2_protocol(gt, np.load(predictions / folder / Path(frame).with_suffix(".npy"))))
    return {name: float(np.mean([row[name] for row in rows])) for name in METRICS}


def test_score_depth_disparity_matches_monodepth2_on_every_metric(tmp_path, release, kitti, disparities):
    out = tmp_path / "scores.json"
    command = ["score-depth", "--release", str(release), "--predictions", str(disparities), "--disparity", "--exact", "-o", str(out)]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    per_split = json.loads(out.read_text())["per_split"]
    assert len(per_split) == 1 + len(CORRUPTIONS) * len(SEVERITIES)
    worst = dict.fromkeys(METRICS, 0.0)
    for split, ours in per_split.items():
        folder = "clean" if split == "clean/test" else split.replace("severity_", "")
        reference = protocol_means(kitti, disparities, folder)
        worst = {name: max(worst[name], abs(ours[name] - reference[name]) / abs(reference[name])) for name in METRICS}
    assert max(worst.values()) < 1e-6, worst


def test_scores_follow_robodepth_rounding_by_default_and_exact_on_request(tmp_path, release, disparities):
    rounded = score_release(release, disparities, disparity=True)
    exact = score_release(release, disparities, disparity=True, exact=True)
    assert rounded.per_split == exact.per_split  # rounding is part of the scores, not of the measurement
    for scores, is_exact in ((rounded, False), (exact, True)):
        expected = robodepth_recomputation(scores.per_split, exact=is_exact)
        assert {key: scores.robustness[key] for key in expected} == pytest.approx(expected, rel=1e-12)
    assert all(value["dee2"] == round(value["dee2"], 3) for value in rounded.dee.values())
    assert any(rounded.robustness["RCE"][name] != pytest.approx(exact.robustness["RCE"][name], abs=1e-6) for name in CORRUPTIONS)
    out = tmp_path / "exact.json"
    result = CliRunner().invoke(
        cli, ["score-depth", "--release", str(release), "--predictions", str(disparities), "--disparity", "--exact", "-o", str(out)]
    )
    assert result.exit_code == 0 and "exact" in result.output
    assert json.loads(out.read_text())["RmCE"] == pytest.approx(exact.robustness["RmCE"], rel=1e-12)
    result = CliRunner().invoke(cli, ["score-depth", "--release", str(release), "--predictions", str(disparities), "--disparity"])
    assert f"RmCE {rounded.robustness['RmCE']:.2f}" in result.output and "RoboDepth rounding" in result.output


def made_up_model() -> dict[str, list[dict[str, float]]]:
    """Per-split abs_rel and a1 of a made-up model on all 18 KITTI-C corruptions x 5 severities,
    close to the baseline and given to 4 decimals, so 3-decimal rounding moves the scores."""
    rng = np.random.default_rng(7)
    model = {"clean": [{"abs_rel": 0.1154, "a1": 0.8766}]}
    for name, baseline in BASELINE.items():
        if name == "clean":
            continue
        rows = []
        for level in range(5):
            a1 = float(np.clip(1 - 1.6 * baseline + 0.02 * (level - 2) + rng.normal(0, 0.004), 0.05, 0.99))
            abs_rel = 2 * baseline - 1 + a1 + rng.normal(0, 0.002)
            rows.append({"abs_rel": round(abs_rel, 4), "a1": round(a1, 4)})
        model[name] = rows
    return model


def test_robodepth_rounding_on_a_made_up_model():
    model = made_up_model()
    per_split = {"clean/test": model["clean"][0]}
    per_split.update(
        {f"{name}/severity_{level + 1}": row for name, rows in model.items() if name != "clean" for level, row in enumerate(rows)}
    )

    scores = {}
    for exact in (False, True):
        dee2 = {name: values["dee2"] for name, values in robodepth_dee(model, exact=exact).items()}
        ours = robustness_scores(dee2, "monodepth2")
        scores[exact] = {"mCE": ours.mce, "RmCE": ours.rmce, "mRR": ours.mrr}
        assert scores[exact] == pytest.approx(robodepth_recomputation(per_split, exact=exact), rel=1e-12)
    assert abs(scores[False]["RmCE"] - scores[True]["RmCE"]) > 0.5, scores
    assert abs(scores[False]["mCE"] - scores[True]["mCE"]) > 0.01, scores


def test_the_published_dark_row_is_reproduced_only_with_robodepth_rounding():
    """MonoDepth2's published "dark" DEE2 is 0.280; the exact average of its five rows gives 0.2805."""
    levels = [{"abs_rel": r, "a1": a} for r, a in [(0.149, 0.806), (0.164, 0.771), (0.194, 0.700), (0.249, 0.569), (0.323, 0.428)]]
    assert robodepth_dee({"dark": levels})["dark"]["dee2"] == BASELINE["dark"] == 0.280
    assert robodepth_dee({"dark": levels}, exact=True)["dark"]["dee2"] == pytest.approx(0.2805)
