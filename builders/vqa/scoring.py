"""`dataengine score-vqa`: score predictions on a knowledge-VQA release, per perspective and category.

Predictions: JSONL lines `{"id": "<question id in the release>", "prediction": "..."}`; for
A-OKVQA multiple choice add `"choice": "<text>"` or an index. Primary metric per source: OK-VQA
and A-OKVQA direct answers use the official VQA accuracy; InfoSeek its own accuracy, summarised as
the harmonic mean of the unseen-question and unseen-entity splits. The relaxed (substring)
accuracy is reported beside, by name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from dataengine.metrics.vqa import infoseek_accuracy, infoseek_score, mc_accuracy, relaxed_accuracy, vqa_accuracy
from dataengine.release.reader import Release


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
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


def score_question(record: dict[str, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    text = str(prediction.get("prediction", ""))
    row = {
        "id": record["id"],
        "source": record["source"],
        "perspective": record["perspective"],
        "category": record["category"],
        "source_split": record["source_split"],
    }
    if record["source"] == "infoseek":
        aliases = record["answer_aliases"] or []
        evals = [{"range": record["answer_range"]}] if record["answer_range"] else aliases
        row["accuracy"] = infoseek_accuracy(text, evals)
        row["relaxed_accuracy"] = relaxed_accuracy(text, aliases or record["answers"])
    else:
        row["accuracy"] = vqa_accuracy(text, record["answers"])
        row["relaxed_accuracy"] = relaxed_accuracy(text, record["answers"])
    if record["choices"] is not None and "choice" in prediction:
        row["mc_accuracy"] = mc_accuracy(prediction["choice"], record["choices"], record["correct_choice_idx"])
    return row


def score_release(release: str | Path, predictions_path: str | Path) -> dict[str, Any]:
    source = Release.open(release)
    if source.manifest.sample_kind != "vqa":
        raise ValueError(f"{release} is a '{source.manifest.sample_kind}' release, not knowledge VQA")
    predictions = read_predictions(predictions_path)
    rows, missing = [], []
    for record in source.records():
        if record["id"] in predictions:
            rows.append(score_question(record, predictions[record["id"]]))
        else:
            missing.append(record["id"])
    if not rows:
        raise ValueError(f"none of the {len(missing)} questions of {release} has a prediction in {predictions_path}")
    table = pl.DataFrame(rows, infer_schema_length=None)
    metrics = [c for c in ("accuracy", "relaxed_accuracy", "mc_accuracy") if c in table.columns]
    means = [pl.col(c).mean().alias(c) for c in metrics]
    per_perspective = table.group_by("perspective").agg(pl.len().alias("questions"), *means).sort("perspective")
    per_category = table.group_by("perspective", "category").agg(pl.len().alias("questions"), *means).sort("perspective", "category")
    result: dict[str, Any] = {
        "questions": table.height,
        "missing_predictions": len(missing),
        "overall": table.select(*means).to_dicts()[0],
        "per_perspective": per_perspective.to_dicts(),
        "per_category": per_category.to_dicts(),
        "metric_names": {
            "accuracy": "official VQA accuracy (OK-VQA, A-OKVQA); InfoSeek accuracy (InfoSeek)",
            "relaxed_accuracy": "gold answer is a substring of the lower-cased prediction",
        },
    }
    infoseek = table.filter(pl.col("source") == "infoseek").group_by("source_split").agg(pl.col("accuracy").mean())
    by_split = dict(infoseek.iter_rows())
    if {"val_unseen_question", "val_unseen_entity"} <= set(by_split):
        result["infoseek_harmonic_mean"] = infoseek_score(by_split["val_unseen_question"], by_split["val_unseen_entity"])
    return result
