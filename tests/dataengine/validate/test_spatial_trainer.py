"""The spatial trainer on a small SSR-CoT scenes release: chosen by sample kind, the contract and the
controls in validation.json and the card, broken copies failing for the right reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dataengine.api import build
from dataengine.cli import cli
from dataengine.publish.report import write_report
from dataengine.release.reader import Release
from dataengine.validate.registry import trainer_class
from tests.dataengine.validate.test_depth_trainer import broken_copy

pytest.importorskip("timm")
pytest.importorskip("tokenizers")

RECIPE = {
    "epochs": 2,
    "input_size": [32, 32],
    "vision_kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 48, "num_heads": 2},
    "dim": 32,
    "layers": 2,
    "heads": 2,
    "vocab_size": 400,
    "max_rationale_tokens": 48,
    "workers": 0,
    "eval_batch": 128,
    "least_learnable": 3,
    "mod": True,
    "init": "critical",
}
KINDS = {"existence", "counting", "position", "depth_order", "distance", "size", "attribute"}


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("spatial")
    catalog = {
        "name": "small-ssr",
        "version": "0.0.1",
        "builder": "ssr_cot_scenes",
        "seed": 7,
        "params": {"width": 320, "height": 240, "objects": [2, 4], "questions_per_scene": 3},
        "splits": {"train": {"num_samples": 16}, "validation": {"num_samples": 10}},
        "shards": {"max_samples": 32, "max_bytes": "64MB"},
        "validate": {"recipe": RECIPE},
    }
    (directory / "small.yaml").write_text(yaml.safe_dump(catalog))
    result = build(directory / "small.yaml", directory / "good", workers=0, progress=False)
    assert result.status == "built"
    return result.out


def validate(release: Path, *args: str):
    result = CliRunner().invoke(cli, ["validate", str(release), "--no-progress", *args])
    document = json.loads((release / "validation.json").read_text()) if (release / "validation.json").exists() else None
    return result, document


def _records(release: Path) -> dict[str, list[dict]]:
    source = Release.open(release)
    return {split: [json.loads(s["json"]) for s in source.raw_samples(split)] for split in source.splits}


def _rewrite(release: Path, out: Path, field: str, values) -> Path:
    """A copy whose records' `field` is `values(split, records)[i]`."""
    records = _records(release)
    new = {split: values(split, rows) for split, rows in records.items()}

    def change(split, members, i):
        return {**members, "json": json.dumps({**records[split][i], field: new[split][i]}).encode()}

    return broken_copy(release, out, change)


def _permuted(split, rows, field):
    order = np.random.default_rng(5).permutation(len(rows))
    return [rows[j][field] for j in order]


def test_question_answer_releases_get_the_spatial_trainer_and_depth_still_accepts_them(good, tiny_release):
    manifest = Release.open(good).manifest
    assert trainer_class(None, manifest).name == "spatial"
    assert trainer_class("depth", manifest).name == "depth"  # --trainer depth on an SSR release
    assert trainer_class(None, Release.open(tiny_release).manifest).name == "depth"


def test_the_contract_the_controls_and_the_card(good):
    result, document = validate(good)
    assert result.exit_code in (0, 1), result.output
    assert document["trainer"] == "spatial" and document["verdict"] in ("pass", "fail")
    assert (document["verdict"] == "pass") == (document["reasons"] == []) == (result.exit_code == 0)
    metrics, prior = document["metrics"], document["prior"]
    kinds = {name.split("/")[1] for name in metrics if "/" in name}
    assert kinds and kinds <= KINDS
    for column in ("accuracy", "qra_accuracy", "no_depth_accuracy", "shuffled_images_accuracy", "question_only_accuracy"):
        assert 0 <= metrics[column] <= 1 and all(f"{column}/{kind}" in metrics for kind in kinds)
    assert prior["accuracy"] == max(metrics["question_only_accuracy"], metrics["majority_accuracy"])
    for kind in kinds:
        assert prior[f"accuracy/{kind}"] == max(metrics[f"question_only_accuracy/{kind}"], metrics[f"majority_accuracy/{kind}"])
    assert metrics["reference_rationale_facts"] == 1.0  # the builder's rationales state exactly the stored facts
    assert 0 <= metrics["rationale_facts"] <= 1
    assert set(document["variants"]) == {"qa", "question_only", "no_depth", "qra", "qa_mod"}
    probes = document["probes"]
    assert probes["criticality"]["init"] == "critical" and len(probes["criticality"]["mlp"]) == RECIPE["layers"]
    sparsity = probes["sparsity"]
    assert sparsity["p"] == 1.0 and len(sparsity["layers"]) == RECIPE["layers"] and 0 < sparsity["ratio"] <= 1
    if sparsity["bracketed"]:
        assert sparsity["ppl_ratio"] == pytest.approx(1.01, rel=1e-3)
    minicache = probes["minicache"]
    assert minicache["accuracy"] == metrics["accuracy"] and minicache["merged_accuracy"] == metrics["minicache_accuracy"]
    assert minicache["stored_elements"] <= minicache["dense_elements"] and minicache["merged_perplexity"] > 0
    mod = probes["mod"]
    assert mod["ratios"] == [1.0, 0.15]  # PRD for L = 2: cos(0) = 1 stays dense, cos(pi) = 0 is floored at 0.15
    assert mod["flops_ratio"] < 1 and mod["kv_cache_ratio"] < 1 and mod["accuracy"] == metrics["qa_mod_accuracy"]
    assert len(document["history"]) == RECIPE["epochs"] and document["timings"]["train_qa_tokens_per_s"] > 0
    assert len(document["least_learnable"]) == 3
    model = Path(document["checkpoint"])
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    card = (good / "README.md").read_text()
    assert "## Validation" in card and "| group | accuracy |" in card and "question_only_accuracy" in card
    assert any(line.startswith(f"| {kind} | ") for kind in kinds for line in card.splitlines())
    assert "### Probes" in card and "| Activation sparsity, PPL-p% (Sparsing Law) | layers |" in card
    page = write_report(good).read_text()
    assert "<h2>Probes</h2>" in page and "Mixture-of-depths over vision tokens" in page


@pytest.mark.parametrize(
    "name,field,values,reason",
    [
        ("answers_shuffled", "answer", lambda split, rows: _permuted(split, rows, "answer"), "learnability:"),
        ("rationales_swapped", "rationale", lambda split, rows: _permuted(split, rows, "rationale"), "limit: reference_rationale_facts"),
        ("constant_answer", "answer", lambda split, rows: ["yes"] * len(rows), "learnability:"),
    ],
)
def test_broken_copies_fail_with_the_right_reason(tmp_path, good, name, field, values, reason):
    copy = _rewrite(good, tmp_path / name, field, values)
    result, document = validate(copy)
    assert result.exit_code == 1, result.output
    assert any(r.startswith(reason) for r in document["reasons"]), document["reasons"]
    if name == "rationales_swapped":
        assert document["metrics"]["reference_rationale_facts"] < 0.5


def test_same_seed_same_metrics_and_a_finished_variant_is_not_trained_again(tmp_path, good):
    copy = tmp_path / "r"
    shutil.copytree(good, copy, ignore=shutil.ignore_patterns(".validate", "validation.json"))
    first = validate(copy, "--epochs", "1")[1]
    shutil.rmtree(copy / ".validate" / "spatial" / "qra")
    result, again = validate(copy, "--epochs", "1")
    assert again["metrics"] == first["metrics"] and again["histories"] == first["histories"]
    assert again["timings"]["train_qa_s"] < 1.0  # loaded from its checkpoint, not retrained
