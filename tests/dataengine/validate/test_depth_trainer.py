"""The depth reference trainer and its gate: a good release passes; broken copies fail for the right reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from builders.fixtures import broken_copy as write_broken_copy
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.depth_png import decode_depth_png, encode_depth_png
from dataengine.core.fields import encode_image
from dataengine.release.reader import Release
from dataengine.release.verify import verify_release

pytest.importorskip("timm")

RECIPE = {"epochs": 16, "input_size": [48, 64], "workers": 0, "batch_size": 8, "least_learnable": 4}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("validate")
    catalog = {
        "name": "small",
        "version": "0.0.1",
        "builder": "scenes",
        "seed": 11,
        "params": {"width": 128, "height": 96, "objects": [2, 4]},
        "splits": {"train": {"num_samples": 64}, "validation": {"num_samples": 16}},
        "shards": {"max_samples": 16, "max_bytes": "64MB"},
        "validate": {"recipe": RECIPE},
    }
    (directory / "small.yaml").write_text(yaml.safe_dump(catalog))
    result = build(directory / "small.yaml", directory / "good", workers=2, progress=False)
    assert result.status == "built"
    return result.out


def broken_copy(release: Path, out: Path, change: Callable[[str, dict[str, bytes], int], dict[str, bytes]]) -> Path:
    copy = write_broken_copy(release, out, change)
    assert verify_release(copy) == []
    return copy


def _depth(members: dict[str, bytes]) -> np.ndarray:
    return decode_depth_png(members["depth.png"])


def shuffled(release: Path) -> Callable:
    depths = {
        split: [m["depth.png"] for m in (dict(s) for s in Release.open(release).raw_samples(split))] for split in ("train", "validation")
    }
    order = {split: np.random.default_rng(5).permutation(len(values)) for split, values in depths.items()}
    return lambda split, members, i: {**members, "depth.png": depths[split][order[split][i]]}


def upside_down(split, members, i):
    return {**members, "depth.png": encode_depth_png(_depth(members)[::-1].copy())[0]}


def centimetres(split, members, i):
    return {**members, "depth.png": encode_depth_png(_depth(members) / 10)[0]}  # cm values declared as mm


def noise_images(split, members, i):
    image = np.random.default_rng(i).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    return {**members, "rgb.png": encode_image(image)}


def validate(release: Path, *args: str):
    result = CliRunner().invoke(cli, ["validate", str(release), "--no-progress", *args])
    document = json.loads((release / "validation.json").read_text()) if (release / "validation.json").exists() else None
    return result, document


def test_the_good_release_passes_and_writes_the_contract(good):
    result, document = validate(good)
    assert result.exit_code == 0, result.output
    assert document["verdict"] == "pass" and document["reasons"] == [] and document["trainer"] == "depth"
    assert document["metrics"]["abs_rel"] <= 0.9 * document["prior"]["abs_rel"]
    assert len(document["history"]) == RECIPE["epochs"] and document["history"][-1]["loss"] < document["history"][0]["loss"]
    assert [row["loss"] for row in document["least_learnable"]] == sorted((r["loss"] for r in document["least_learnable"]), reverse=True)
    assert len(document["least_learnable"]) == 4 and all(r["key"].startswith("scene-train-") for r in document["least_learnable"])
    assert document["recipe"]["seed"] == 0 and document["packages"]["torch"] and document["timings"]["total_s"] > 0
    assert verify_release(good) == []  # validation.json and .validate/ are side files
    card = (good / "README.md").read_text()
    assert "## Validation" in card and "**pass**" in card
    from dataengine.depth.sources import load_monocular

    model = load_monocular(f"model:{good / '.validate' / 'depth' / 'model'}")  # the checkpoint is a depth source
    assert model.predict([np.zeros((96, 128, 3), np.uint8)])[0].depth.shape == (96, 128)


@pytest.mark.parametrize(
    "name,change,reason",
    [
        ("shuffled", "shuffled", "learnability"),
        ("noise", noise_images, "learnability"),
        ("upside_down", upside_down, "truth"),
        ("centimetres", centimetres, "truth"),
    ],
)
def test_broken_copies_fail_with_the_right_reason(tmp_path, good, name, change, reason):
    copy = broken_copy(good, tmp_path / name, shuffled(good) if change == "shuffled" else change)
    result, document = validate(copy, "--reference", str(good))
    assert result.exit_code == 1, result.output
    assert document["verdict"] == "fail"
    assert any(r.startswith(f"{reason}:") for r in document["reasons"]), document["reasons"]
    assert f"FAIL {reason}:" in result.output


def test_regression_against_a_previous_validation(tmp_path, good):
    previous = tmp_path / "previous.json"
    document = json.loads((good / "validation.json").read_text()) if (good / "validation.json").exists() else validate(good)[1]
    previous.write_text(json.dumps({**document, "metrics": {**document["metrics"], "abs_rel": document["metrics"]["abs_rel"] / 2}}))
    result, after = validate(good, "--against", str(previous))
    assert result.exit_code == 1
    assert [r.split(":")[0] for r in after["reasons"]] == ["regression"] and "abs_rel" in after["reasons"][0]


def test_same_seed_same_metrics_and_an_interrupted_run_resumes_to_the_same_result(tmp_path, good, monkeypatch):
    from dataengine.validate.checkpoints import EpochCheckpoints

    copy = tmp_path / "r"
    shutil.copytree(good, copy, ignore=shutil.ignore_patterns(".validate", "validation.json"))
    first = validate(copy, "--epochs", "3")[1]
    shutil.rmtree(copy / ".validate")
    again = validate(copy, "--epochs", "3")[1]
    assert again["metrics"] == first["metrics"]
    assert [row["loss"] for row in again["history"]] == [row["loss"] for row in first["history"]]

    shutil.rmtree(copy / ".validate")
    save = EpochCheckpoints.save

    def interrupted(self, model, optimizer, scheduler, epoch, history):
        save(self, model, optimizer, scheduler, epoch, history)
        if epoch == 1:
            raise KeyboardInterrupt  # Ctrl-C right after the first epoch's checkpoint

    monkeypatch.setattr(EpochCheckpoints, "save", interrupted)
    result, _ = validate(copy, "--epochs", "3")
    assert result.exit_code == 130 and "rerun the same command to resume" in result.output
    monkeypatch.setattr(EpochCheckpoints, "save", save)
    result, resumed = validate(copy, "--epochs", "3")
    assert "resuming from epoch 1" in result.output and resumed["verdict"] == first["verdict"]
    assert resumed["metrics"] == first["metrics"]
    assert [row["loss"] for row in resumed["history"]] == [row["loss"] for row in first["history"]]


def test_usage_errors_exit_2(good):
    assert CliRunner().invoke(cli, ["validate", str(good), "--trainer", "dpeth"]).exit_code == 2
    result = CliRunner().invoke(cli, ["validate", str(good), "--set", "validate.recipe.epoks=3"])
    assert result.exit_code == 2 and "did you mean 'epochs'" in result.output


def test_a_robustness_release_trains_on_clean_frames_and_scores_every_corruption(tmp_path, good):
    catalog = {
        "name": "small-c",
        "version": "0.0.1",
        "builder": "depth_c",
        "seed": 3,
        "params": {"corruptions": ["fog", "gaussian_noise"], "severities": [1, 3], "source_split": "train"},
        "sources": {"release": str(good)},
        "splits": {"test": {}},
        "shards": {"max_samples": 64},
        "validate": {"recipe": {**RECIPE, "epochs": 2}},
    }
    (tmp_path / "small-c.yaml").write_text(yaml.safe_dump(catalog))
    release = build(tmp_path / "small-c.yaml", tmp_path / "small-c", workers=0, progress=False).out
    result, document = validate(release)
    assert result.exit_code in (0, 1), result.output
    assert document["train_split"] == document["eval_split"] == "clean/test"
    assert 40 <= document["train_samples"] < 64  # the seeded hold-out frames are never trained on
    assert set(document["splits"]) == {
        "clean/test",
        "fog/severity_1",
        "fog/severity_3",
        "gaussian_noise/severity_1",
        "gaussian_noise/severity_3",
    }
    robustness = document["robustness"]
    assert set(robustness["dee2"]) == {"fog", "gaussian_noise"} and robustness["mRR"] > 0 and robustness["mCE"] > 0
    clean = document["splits"]["clean/test"]
    assert robustness["clean_dee2"] == round(round((round(clean["abs_rel"], 3) - round(clean["a1"], 3) + 1) / 2, 3), 3)
