"""Trainers are chosen by what a release holds; user trainers plug in by name."""

import json

import pytest
from click.testing import CliRunner

from dataengine.cli import cli
from dataengine.release.reader import Release
from dataengine.validate.registry import Trainer, available_trainers, register_trainer, trainer_class


@register_trainer("constant_test")
class ConstantTrainer(Trainer):
    """Predicts nothing better than the prior: the gate must say so."""

    primary = "abs_rel"
    lower_is_better = {"abs_rel": True}

    @classmethod
    def accepts(cls, manifest):
        return manifest.sample_kind == "scene"

    def run(self, job):
        return {"metrics": {"abs_rel": 0.5}, "prior": {"abs_rel": 0.5}, "history": []}


def test_the_trainer_is_chosen_by_what_the_release_holds(tiny_release):
    manifest = Release.open(tiny_release).manifest
    assert {"depth", "constant_test"} <= set(available_trainers())
    assert trainer_class(None, manifest).name == "depth"
    with pytest.raises(KeyError, match="did you mean 'depth'"):
        trainer_class("detph", manifest)


def test_a_user_trainer_runs_through_the_same_gate(tmp_path, tiny_release):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(tiny_release, copy)
    result = CliRunner().invoke(cli, ["validate", str(copy), "--trainer", "constant_test", "--no-progress"])
    assert result.exit_code == 1, result.output
    document = json.loads((copy / "validation.json").read_text())
    assert document["trainer"] == "constant_test" and document["verdict"] == "fail"
    assert document["reasons"][0].startswith("learnability: the model's abs_rel 0.5000 does not beat the prior baseline's 0.5000 by 10%")
