"""Knowledge-VQA: readers on official-format fixtures, polars curation, the release, score-vqa."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from click.testing import CliRunner

import dataengine
from builders.fixtures import OKVQA_CATEGORIES, write_vqa_sources
from builders.vqa.builder import VqaKnowledge
from builders.vqa.scoring import infoseek_summary, is_difficult
from builders.vqa.sources import read_aokvqa, read_infoseek, read_okvqa
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.catalog import load_catalog
from dataengine.release.reader import Release
from dataengine.release.verify import verify_release


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return write_vqa_sources(tmp_path_factory.mktemp("vqa"))


def catalog(directory: Path, sources, seed: int = 3, **params) -> Path:
    document = {
        "name": "vqa",
        "version": "0.1.0",
        "builder": "vqa_knowledge",
        "seed": seed,
        "params": {"cap_commonsense": 2, "cap_world_knowledge": 2, **params},
        "sources": {k: str(v) for k, v in sources.__dict__.items()},
        "splits": {"eval": {}},
        "shards": {"max_samples": 8},
    }
    path = directory / f"vqa-{seed}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_okvqa_reader(sources):
    rows, rejects = (f.collect() for f in read_okvqa(sources.okvqa_questions, sources.okvqa_annotations, sources.coco_root))
    reasons = dict(zip(rejects["key"], rejects["reason"]))
    assert reasons["okvqa-2971505"] == "expected 10 answers"
    assert reasons["okvqa-2971515"] == "unknown question_type code"
    assert reasons["okvqa-2971525"].startswith("no annotation for this question")
    assert rows.height == 35 - 3
    assert set(rows["category"]) == set(OKVQA_CATEGORIES.values())
    assert (rows["answers"].list.len() == 10).all()
    first = rows.row(0, named=True)
    assert first["image_path"] == f"{sources.coco_root}/val2014/COCO_val2014_000000000139.jpg" and first["image_id"] == "coco:139"


def test_aokvqa_reader(sources):
    rows, rejects = (f.collect() for f in read_aokvqa(sources.aokvqa, sources.coco_root))
    assert dict(zip(rejects["key"], rejects["reason"])) == {
        "aokvqa-22jbM6gDxdaMaunuzgrsBB02": "expected 4 choices",
        "aokvqa-22jbM6gDxdaMaunuzgrsBB03": "correct_choice_idx not in 0..3",
    }
    assert rows.height == 11 and (rows["rationales"].list.len() == 3).all() and (rows["choices"].list.len() == 4).all()
    assert rows.row(0, named=True)["image_path"].endswith("val2017/000000000872.jpg")
    difficult = rows.filter(pl.col("difficult_direct_answer"))["id"].to_list()
    assert difficult == ["aokvqa-22jbM6gDxdaMaunuzgrsBB05", "aokvqa-22jbM6gDxdaMaunuzgrsBB09"]


def test_aokvqa_without_the_difficult_flag_is_malformed(tmp_path, sources):
    records = json.loads(sources.aokvqa.read_text())
    del records[0]["difficult_direct_answer"]
    records[1]["difficult_direct_answer"] = None
    path = tmp_path / "aokvqa_v1p0_val.json"
    path.write_text(json.dumps(records))
    rows, rejects = (f.collect() for f in read_aokvqa(path, sources.coco_root))
    reasons = dict(zip(rejects["key"], rejects["reason"]))
    assert (
        reasons["aokvqa-22jbM6gDxdaMaunuzgrsBB00"]
        == reasons["aokvqa-22jbM6gDxdaMaunuzgrsBB01"]
        == ("difficult_direct_answer missing or not a boolean")
    )
    assert rows.height == 9


def test_infoseek_reader(sources):
    rows, rejects = (
        f.collect() for f in read_infoseek(sources.infoseek, sources.infoseek_qtype, sources.infoseek_categories, sources.oven_root)
    )
    reasons = dict(zip(rejects["key"], rejects["reason"]))
    assert reasons["infoseek-infoseek_val_00068870"] == "answer_eval missing or malformed"
    assert reasons["infoseek_val.jsonl:8"].startswith("line 8 is not valid JSON")
    assert rows.height == 18
    numeric = rows.filter(pl.col("question_type") == "Numerical").row(0, named=True)
    assert numeric["answer_range"] == [234.0, 286.0] and numeric["answer_aliases"] == []
    string = rows.filter(pl.col("question_type") == "String").row(0, named=True)
    assert string["answer_aliases"] == ["Eiffel Tower", "Tour Eiffel"] and string["answer_range"] is None
    assert set(rows["category"]) == {"building", "animal", "food", "vehicle"}
    assert set(rows["source_split"]) == {"val_unseen_question", "val_unseen_entity"}
    assert rows["difficult_direct_answer"].is_null().all()  # A-OKVQA's flag: null elsewhere


def test_curation_rules(tmp_path, sources):
    spec = load_catalog(catalog(tmp_path, sources))
    table, removed = VqaKnowledge().curated(spec)
    # no image in two splits
    owners = table.group_by("image_id").agg(pl.col("perspective").n_unique().alias("n"))
    assert owners["n"].max() == 1
    # duplicate across sources: OK-VQA's copy of the A-OKVQA question is removed, naming the one kept
    duplicate = removed.filter(pl.col("code") == "duplicate").row(0, named=True)
    assert duplicate["key"] == "okvqa-3999991" and "aokvqa-dupOfOkvqa0000000000001" in duplicate["reason"]
    assert removed.filter(pl.col("code") == "image_in_other_split").height == 4  # OK-VQA questions on the A-OKVQA image
    # caps per category; A-OKVQA uncapped
    counts = table.group_by("perspective", "category").len()
    assert counts.filter(pl.col("perspective") != "rationale")["len"].max() <= 2
    assert table.filter(pl.col("perspective") == "rationale").height == 11
    # normalised answers follow the official rules
    row = table.filter(pl.col("id") == "aokvqa-22jbM6gDxdaMaunuzgrsBB00").row(0, named=True)
    assert row["answers_normalized"] == ["eat", "eating", "food", "lunch", "work"]


def test_sampling_is_deterministic(tmp_path, sources):
    first = VqaKnowledge().curated(load_catalog(catalog(tmp_path, sources)))[0]["id"].to_list()
    again = VqaKnowledge().curated(load_catalog(catalog(tmp_path, sources)))[0]["id"].to_list()
    other = VqaKnowledge().curated(load_catalog(catalog(tmp_path, sources, seed=4)))[0]["id"].to_list()
    assert first == again and first != other


@pytest.fixture(scope="module")
def release(tmp_path_factory, sources):
    directory = tmp_path_factory.mktemp("vqa-release")
    spec = load_catalog(catalog(directory, sources, cap_commonsense=None, cap_world_knowledge=None))
    result = build(spec, directory / "release", workers=1, progress=False)
    assert result.status == "built"
    return directory / "release"


def test_release_rejects_stats_and_loading(release):
    import datasets

    assert verify_release(release) == []
    manifest = json.loads((release / "manifest.json").read_text())
    assert list(manifest["splits"]) == ["rationale", "world_knowledge", "commonsense"]
    assert manifest["rejects"]["by_reason"] == {"duplicate": 1, "error.FileNotFoundError": 1, "image_in_other_split": 4, "malformed": 7}
    rejects = [json.loads(line) for line in (release / "rejects.jsonl").read_text().splitlines()]
    missing = next(r for r in rejects if r["code"] == "error.FileNotFoundError")
    assert missing["key"] == "okvqa-3999990" and "COCO_val2014_000000999999.jpg" in missing["reason"]
    stats = json.loads((release / "stats.json").read_text())["dataset"]["categories"]
    assert stats["world_knowledge"]["food"]["questions"] == 5
    assert "## Statistics" in (release / "README.md").read_text()
    hf = datasets.load_dataset(str(release), split="rationale")
    assert hf.num_rows == 11 and hf[0]["json"]["choices"] is not None
    assert sum(row["json"]["difficult_direct_answer"] for row in hf) == 2
    sample = next(iter(dataengine.load(release, split="world_knowledge")))
    assert sample["image.jpg"].shape == (240, 320, 3)


def test_score_vqa(tmp_path, release):
    predictions = tmp_path / "preds.jsonl"
    rows = [
        {"id": "okvqa-2971475", "prediction": "Two"},  # gold normalised: 7 x "2": accuracy 1
        {"id": "okvqa-2971625", "prediction": "bus"},  # "bus" x2 + "the bus" (article dropped): (7 x 1 + 3 x 2/3) / 10
        {"id": "aokvqa-22jbM6gDxdaMaunuzgrsBB01", "prediction": "eat", "choice": "to work"},  # 4 x "eat": min(1, 4/3)
        {"id": "aokvqa-22jbM6gDxdaMaunuzgrsBB05", "prediction": "nonsense", "choice": 1},  # difficult: left out of direct
        {"id": "infoseek-infoseek_val_00068862", "prediction": "about 250"},
        {"id": "infoseek-infoseek_val_00068863", "prediction": "1889"},
    ]
    predictions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(
        cli, ["score-vqa", "--release", str(release), "--predictions", str(predictions), "-o", str(out), "--partial"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads(out.read_text())
    per = {row["perspective"]: row for row in scores["per_perspective"]}
    assert per["commonsense"]["accuracy"] == pytest.approx((1.0 + 0.9) / 2)
    assert per["rationale"]["questions"] == 2 and per["rationale"]["accuracy"] == 1.0 and per["rationale"]["relaxed_accuracy"] == 1.0
    assert per["rationale"]["mc_accuracy"] == 0.5  # the index 1 is not the choice's text: 0, as officially
    assert scores["aokvqa_difficult_left_out"] == 1 and scores["mc_choices_not_text"] == 1
    assert "1 A-OKVQA questions marked difficult_direct_answer are left out" in result.output
    assert per["world_knowledge"]["accuracy"] == 1.0 and scores["infoseek"]["final_score"] == 100.0
    assert scores["questions"] == 6


def test_score_vqa_infoseek_headline_is_the_official_final_score(tmp_path, release):
    """Per split, accuracy pooled over question types, 0-100 rounded; final_score their rounded harmonic mean."""
    rows = [
        {"id": "infoseek-infoseek_val_00068862", "prediction": "about 250"},  # unseen question, Numerical: right
        {"id": "infoseek-infoseek_val_00068864", "prediction": "Eiffel-Tower"},  # unseen question, String: wrong
        {"id": "infoseek-infoseek_val_00068866", "prediction": "1889"},  # unseen question, Time: right
        {"id": "infoseek-infoseek_val_00068863", "prediction": "1889"},  # unseen entity, Time: right
        {"id": "infoseek-infoseek_val_00068865", "prediction": "1990-2000"},  # unseen entity, Numerical: wrong
    ]
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = CliRunner().invoke(
        cli, ["score-vqa", "--release", str(release), "--predictions", str(predictions), "-o", str(tmp_path / "s.json"), "--partial"]
    )
    assert result.exit_code == 0, result.output
    infoseek = json.loads((tmp_path / "s.json").read_text())["infoseek"]
    question, entity = round(100 * 2 / 3, 2), round(100 * 1 / 2, 2)
    assert (infoseek["unseen_question_score"], infoseek["unseen_entity_score"]) == (question, entity)
    assert infoseek["final_score"] == round(2 / (1 / question + 1 / entity), 2) == 57.14
    assert "InfoSeek final_score" in result.output and "57.14" in result.output


def test_score_vqa_needs_every_question_unless_partial(tmp_path, release):
    """Predictions for part of the release: exit 1 saying how many are missing, unless --partial."""
    ids = [record["id"] for record in Release.open(release).records()]
    predictions = tmp_path / "preds.jsonl"
    predictions.write_text("".join(json.dumps({"id": key, "prediction": "x"}) + "\n" for key in ids[:-3]))
    args = ["score-vqa", "--release", str(release), "--predictions", str(predictions)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert f"error: 3 of the {len(ids)} questions of {release} have no prediction ({', '.join(ids[-3:])})" in result.output
    assert "pass --partial to score only the predicted ones" in result.output
    partial = CliRunner().invoke(cli, [*args, "--partial"])
    assert partial.exit_code == 0, partial.output
    assert f"--partial: 3 of the {len(ids)} questions have no prediction and are not scored" in partial.output
    predictions.write_text("".join(json.dumps({"id": key, "prediction": "x"}) + "\n" for key in ids))
    assert CliRunner().invoke(cli, args).exit_code == 0


def test_score_vqa_refuses_predictions_for_unknown_ids(tmp_path, release):
    """An id that is not a question of the release (here one the build rejected) is an error, even with --partial."""
    ids = [record["id"] for record in Release.open(release).records()]
    predictions = tmp_path / "preds.jsonl"
    rows = [{"id": key, "prediction": "x"} for key in ids] + [
        {"id": "okvqa-2971505", "prediction": "x"},
        {"id": "nope-1", "prediction": "x"},
    ]
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = CliRunner().invoke(cli, ["score-vqa", "--release", str(release), "--predictions", str(predictions), "--partial"])
    assert result.exit_code == 1
    assert f"2 of the {len(rows)} predictions in {predictions} name ids that are not questions of {release}" in result.output
    assert "(1 of them rejected while building: see rejects.jsonl): okvqa-2971505, nope-1" in result.output


def test_infoseek_headline_without_one_split_is_zero():
    table = pl.DataFrame({"source": ["infoseek"] * 2, "source_split": ["val_unseen_question"] * 2, "accuracy": [1.0, 0.0]})
    summary = infoseek_summary(table)
    assert summary["final_score"] == 0.0 and summary["unseen_question_score"] == 50.0 and summary["unseen_entity_questions"] == 0


def test_difficulty_needs_the_flag():
    assert is_difficult({"id": "a", "source": "aokvqa", "difficult_direct_answer": True})
    assert not is_difficult({"id": "a", "source": "aokvqa", "difficult_direct_answer": False})
    assert not is_difficult({"id": "o", "source": "okvqa", "difficult_direct_answer": None})
    with pytest.raises(ValueError, match="rebuild"):
        is_difficult({"id": "a", "source": "aokvqa"})


def test_report_shows_categories_and_rejects(tmp_path, release):
    import shutil

    from dataengine.publish.report import write_report

    copy = tmp_path / "r"
    shutil.copytree(release, copy)
    html = write_report(copy).read_text()
    assert 'src="report/categories.png"' in html and 'src="report/rejects.png"' in html


def test_malformed_infoseek_companion_lines_are_rejects(tmp_path, sources):
    """A broken line of the qtype or the entity-category file is a reject naming its file and line."""
    qtype = tmp_path / "qtype.jsonl"
    qtype.write_text(sources.infoseek_qtype.read_text() + "{broken\n")
    categories = tmp_path / "categories.jsonl"
    categories.write_text("[1, 2]\n" + sources.infoseek_categories.read_text())
    rows, rejects = (f.collect() for f in read_infoseek(sources.infoseek, qtype, categories, sources.oven_root))
    reasons = dict(zip(rejects["key"], rejects["reason"]))
    lines = len(sources.infoseek_qtype.read_text().splitlines())
    assert reasons[f"qtype.jsonl:{lines + 1}"].startswith(f"line {lines + 1} is not valid JSON")
    assert reasons["categories.jsonl:1"].startswith("line 1 is not valid JSON: not a JSON object")
    assert rows.height == 18


def test_mistyped_outside_and_escaping_records_are_rejects_that_reconcile(tmp_path, sources):
    """One mistyped field, a record outside the evaluation subset or an image id that climbs out of its
    root is a reject with its reason; the rest is built, and inputs = written + rejected."""
    import dataclasses

    from PIL import Image

    from dataengine.run.build import BuildError

    questions = json.loads(sources.okvqa_questions.read_text())
    questions["questions"][0]["image_id"] = "abc"
    questions["questions"][1]["question"] = {}
    aokvqa = json.loads(sources.aokvqa.read_text())
    aokvqa.append({**aokvqa[0], "question_id": "trainRecord", "split": "train", "question": "A train question?"})
    aokvqa.append({**aokvqa[0], "question_id": "badImage", "image_id": "abc"})
    lines = [json.loads(line) for line in sources.infoseek.read_text().splitlines() if line.startswith("{") and line.endswith("}")]
    template = lines[0]
    lines.append({**template, "data_id": "infoseek_train_1", "data_split": "train", "question": "A train question?"})
    lines.append({**template, "data_id": "escape", "image_id": "../../outside/secret", "question": "Escape?"})
    lines.append({**template, "data_id": "dict_question", "question": {}})
    oven = tmp_path / "oven"
    shutil.copytree(sources.oven_root, oven)
    rotated = oven / f"{template['image_id']}.jpg"
    upright = np.asarray(Image.open(rotated))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    Image.fromarray(upright).save(rotated, quality=95, exif=exif)
    files = {"okvqa_questions": questions, "aokvqa": aokvqa}
    changed = {name: tmp_path / Path(getattr(sources, name)).name for name in files}
    for name, document in files.items():
        changed[name].write_text(json.dumps(document))
    changed["infoseek"] = tmp_path / "infoseek_val.jsonl"
    changed["infoseek"].write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    bad = dataclasses.replace(sources, oven_root=oven, **changed)
    spec = load_catalog(catalog(tmp_path, bad, cap_commonsense=None, cap_world_knowledge=None))
    result = build(spec, tmp_path / "release", workers=0, progress=False)
    assert result.status == "built"
    rejects = {r["key"]: r for r in map(json.loads, (tmp_path / "release" / "rejects.jsonl").read_text().splitlines())}
    assert rejects["okvqa-2971475"]["reason"] == 'image_id is str "abc", expected an integer'
    assert rejects["okvqa-2971485"]["reason"] == "question is dict {}, expected a string"
    assert (
        rejects["aokvqa-trainRecord"]["code"] == "not_evaluation_subset"
        and "split 'train' is not val" in rejects["aokvqa-trainRecord"]["reason"]
    )
    assert rejects["aokvqa-badImage"]["reason"] == 'image_id is str "abc", expected an integer'
    assert rejects["infoseek-infoseek_train_1"]["code"] == "not_evaluation_subset"
    assert "would leave the image root" in rejects["infoseek-escape"]["reason"]
    assert rejects["infoseek-dict_question"]["reason"] == "question is dict {}, expected a string"
    written = {s["__key__"]: s for split in result.manifest["splits"] for s in dataengine.load(tmp_path / "release", split=split)}
    inputs = len(questions["questions"]) + len(aokvqa) + len(lines)
    assert len(written) + result.manifest["rejects"]["total"] == inputs
    # the EXIF rotation is applied to the stored pixels, so every reader sees the same upright image
    shown = [s for s in written.values() if s["json"]["image_file"] == rotated.name]
    assert shown and all(s["image.jpg"].shape == (upright.shape[1], upright.shape[0], 3) for s in shown)

    listed = tmp_path / "questions-list.json"
    listed.write_text("[]")
    spec = load_catalog(catalog(tmp_path, dataclasses.replace(sources, okvqa_questions=listed)))
    with pytest.raises(BuildError, match="must be a JSON object with a 'questions' list"):
        build(spec, tmp_path / "never", workers=0, progress=False)
