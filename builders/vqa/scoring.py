"""`dataengine score-vqa`: score predictions on a knowledge-VQA release, per perspective and category.

Predictions: JSONL lines `{"id": "<question id in the release>", "prediction": "..."}`; for
A-OKVQA multiple choice add `"choice": "<the choice's text>"` (an index scores 0, as in the
official script). `accuracy` is each benchmark's official score: the VQA accuracy for OK-VQA,
`eval_aokvqa`'s direct-answer accuracy for A-OKVQA (questions flagged `difficult_direct_answer`
left out, and counted), InfoSeek's accuracy for InfoSeek with its headline `final_score`. The
relaxed (substring) accuracy is reported beside, by name, over the same questions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from dataengine.metrics.vqa import (
    aokvqa_direct_accuracy,
    infoseek_accuracy,
    infoseek_final_score,
    mc_accuracy,
    relaxed_accuracy,
    vqa_accuracy,
)
from dataengine.release.reader import Release

INFOSEEK_SPLITS = ("unseen_question", "unseen_entity")
METRICS = ("accuracy", "relaxed_accuracy", "mc_accuracy")


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """Predictions by question id; a line without an id, or a second line for one id, is an error."""
    predictions: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            key = str(row["id"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: expected a JSON object with 'id' and 'prediction'") from None
        if key in predictions:
            raise ValueError(f"{path}:{number}: a second prediction for {key}")
        predictions[key] = row
    return predictions


def is_difficult(record: dict[str, Any]) -> bool:
    """An A-OKVQA question the official script leaves out of the direct-answer score (any flag but False)."""
    if record["source"] != "aokvqa":
        return False
    if "difficult_direct_answer" not in record:
        raise ValueError(f"{record['id']} has no difficult_direct_answer: the release predates it, rebuild it to score A-OKVQA")
    return record["difficult_direct_answer"] is not False


def direct_scores(record: dict[str, Any], text: str) -> tuple[float, float]:
    """(official accuracy, relaxed accuracy) of a direct answer, by the record's benchmark."""
    if record["source"] == "infoseek":
        aliases = record["answer_aliases"] or []
        answer_eval = [*aliases, *([{"range": record["answer_range"]}] if record["answer_range"] else [])]
        return infoseek_accuracy(text, answer_eval, record["question_type"]), relaxed_accuracy(text, aliases or record["answers"])
    if record["source"] == "aokvqa":
        return aokvqa_direct_accuracy(text, record["answers"]), relaxed_accuracy(text, record["answers"])
    return vqa_accuracy(text, record["answers"]), relaxed_accuracy(text, record["answers"])


def score_question(record: dict[str, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    """One scored row: the direct-answer scores (None where left out as difficult) and, given a choice, MC."""
    text = str(prediction.get("prediction", ""))
    difficult = is_difficult(record)
    accuracy, relaxed = (None, None) if difficult else direct_scores(record, text)
    row = {
        "id": record["id"],
        "source": record["source"],
        "perspective": record["perspective"],
        "category": record["category"],
        "source_split": record["source_split"],
        "difficult_left_out": difficult,
        "accuracy": accuracy,
        "relaxed_accuracy": relaxed,
    }
    if record["choices"] is not None and "choice" in prediction:
        row["mc_accuracy"] = mc_accuracy(prediction["choice"], record["choices"], record["correct_choice_idx"])
        row["mc_choice_not_text"] = not isinstance(prediction["choice"], str)
    return row


def infoseek_summary(table: pl.DataFrame) -> dict[str, Any] | None:
    """InfoSeek's headline as `infoseek_eval.py` computes it: per split (unseen question / unseen
    entity), the accuracy pooled over all question types, in 0-100 rounded to 2 decimals (0 for a
    split without predictions); `final_score` is their harmonic mean, rounded to 2 decimals."""
    infoseek = table.filter(pl.col("source") == "infoseek")
    if infoseek.is_empty():
        return None
    split = (
        pl.when(pl.col("source_split").str.ends_with("unseen_question"))
        .then(pl.lit(INFOSEEK_SPLITS[0]))
        .otherwise(pl.lit(INFOSEEK_SPLITS[1]))
    )
    by_split = {
        name: (accuracy, questions)
        for name, accuracy, questions in infoseek.group_by(split.alias("split")).agg(pl.col("accuracy").mean(), pl.len()).iter_rows()
    }
    accuracies = {name: by_split.get(name, (0.0, 0))[0] for name in INFOSEEK_SPLITS}
    summary: dict[str, Any] = {"final_score": infoseek_final_score(*(accuracies[name] for name in INFOSEEK_SPLITS))}
    for name in INFOSEEK_SPLITS:
        summary[f"{name}_score"] = round(100 * accuracies[name], 2)
        summary[f"{name}_questions"] = by_split.get(name, (0.0, 0))[1]
    return summary


class PredictionsError(ValueError):
    """The predictions do not match the release's questions; the message says how."""


def _examples(ids: list[str], count: int = 3) -> str:
    return ", ".join(ids[:count]) + (", ..." if len(ids) > count else "")


def score_release(release: str | Path, predictions_path: str | Path, partial: bool = False) -> dict[str, Any]:
    """Scores of the predictions on a release: overall, per perspective and category, InfoSeek's headline.

    Every question needs a prediction unless `partial` (then the others are left out, and counted); a
    prediction whose id is not a question of the release is always an error.
    """
    source = Release.open(release)
    if source.manifest.sample_kind != "vqa":
        raise ValueError(f"{release} is a '{source.manifest.sample_kind}' release, not knowledge VQA")
    predictions = read_predictions(predictions_path)
    rows, missing, known = [], [], set()
    for record in source.records():
        known.add(record["id"])
        if record["id"] in predictions:
            rows.append(score_question(record, predictions[record["id"]]))
        else:
            missing.append(record["id"])
    unknown = [key for key in predictions if key not in known]
    if unknown:
        rejected = _rejected_keys(source, unknown)
        note = f" ({len(rejected)} of them rejected while building: see rejects.jsonl)" if rejected else ""
        raise PredictionsError(
            f"{len(unknown)} of the {len(predictions)} predictions in {predictions_path} name ids that are not questions of {release}"
            f"{note}: {_examples(unknown)}; predict the release's questions (the `id` of each record)"
        )
    if not rows:
        raise PredictionsError(f"none of the {len(missing)} questions of {release} has a prediction in {predictions_path}")
    if missing and not partial:
        raise PredictionsError(
            f"{len(missing)} of the {len(known)} questions of {release} have no prediction ({_examples(missing)}); "
            "predict them all, or pass --partial to score only the predicted ones"
        )
    table = pl.DataFrame(rows, infer_schema_length=None)
    metrics = [c for c in METRICS if c in table.columns]
    means = [pl.col(c).mean().alias(c) for c in metrics]
    per_perspective = table.group_by("perspective").agg(pl.len().alias("questions"), *means).sort("perspective")
    per_category = table.group_by("perspective", "category").agg(pl.len().alias("questions"), *means).sort("perspective", "category")
    result: dict[str, Any] = {
        "questions": table.height,
        "missing_predictions": len(missing),
        "partial": bool(missing),
        "aokvqa_difficult_left_out": int(table["difficult_left_out"].sum()),
        "mc_choices_not_text": int(table["mc_choice_not_text"].sum()) if "mc_choice_not_text" in table.columns else 0,
        "overall": table.select(*means).to_dicts()[0],
        "per_perspective": per_perspective.to_dicts(),
        "per_category": per_category.to_dicts(),
        "metric_names": {
            "accuracy": (
                "official accuracy per benchmark: VQA accuracy (OK-VQA, vqaEval.py); direct-answer accuracy (A-OKVQA, eval_aokvqa, "
                "difficult_direct_answer questions left out); InfoSeek accuracy (InfoSeek, infoseek_eval.py)"
            ),
            "relaxed_accuracy": "not official: a gold answer is a substring of the lower-cased prediction (same questions as accuracy)",
            "mc_accuracy": "A-OKVQA multiple choice (eval_aokvqa): the choice is the correct choice's text, exactly",
        },
    }
    infoseek = infoseek_summary(table)
    if infoseek is not None:
        result["infoseek"] = infoseek
    return result


def _rejected_keys(source: Release, ids: list[str]) -> list[str]:
    """Those of `ids` that the release's rejects.jsonl names (questions refused while building)."""
    try:
        text = (source.path / "rejects.jsonl").read_text()
    except (OSError, ValueError):
        return []
    keys = {json.loads(line).get("key") for line in text.splitlines() if line.strip()}
    return [key for key in ids if key in keys]
