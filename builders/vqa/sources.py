"""Readers for the official knowledge-VQA files, as distributed, into one polars table.

Each reader returns (rows, rejects): `rows` a LazyFrame with the unified columns below, `rejects`
a LazyFrame of (key, source, code, reason) for malformed records. Files are parsed as JSON once;
checks, joins and mapping are polars expressions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

STR_LIST = pl.List(pl.String)
COLUMNS: dict[str, pl.DataType] = {
    "id": pl.String,
    "source": pl.String,
    "perspective": pl.String,
    "category": pl.String,
    "question": pl.String,
    "answers": STR_LIST,
    "choices": STR_LIST,
    "correct_choice_idx": pl.Int64,
    "rationales": STR_LIST,
    "image_id": pl.String,
    "image_path": pl.String,
    "answer_aliases": STR_LIST,
    "answer_range": pl.List(pl.Float64),
    "difficult_direct_answer": pl.Boolean,
    "source_split": pl.String,
    "question_type": pl.String,
    "entity_id": pl.String,
}
REJECT_COLUMNS = {"key": pl.String, "source": pl.String, "code": pl.String, "reason": pl.String}


def empty_rejects() -> pl.LazyFrame:
    return pl.LazyFrame(schema=REJECT_COLUMNS)


def _unified(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(
        [
            (pl.col(name) if name in frame.collect_schema().names() else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in COLUMNS.items()
        ]
    )


def _split_malformed(frame: pl.LazyFrame, checks: dict[str, pl.Expr], key: pl.Expr, source: str) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Rows failing any check become rejects naming every failed check."""
    reason = pl.concat_str([pl.when(~ok).then(pl.lit(f"{what}; ")).otherwise(pl.lit("")) for what, ok in checks.items()])
    flagged = frame.with_columns(reason.str.strip_chars("; ").alias("__reason"))
    rejects = flagged.filter(pl.col("__reason") != "").select(
        key.cast(pl.String).alias("key"),
        pl.lit(source).alias("source"),
        pl.lit("malformed").alias("code"),
        pl.col("__reason").alias("reason"),
    )
    return flagged.filter(pl.col("__reason") == "").drop("__reason"), rejects


def _image_path(root: Path | None, relative: pl.Expr) -> pl.Expr:
    """The image file under its root (COCO or OVEN), or the relative name when no root is given."""
    return (pl.lit(f"{root}/") + relative if root else relative).alias("image_path")


def _load_json(path: Path, source: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{source}: cannot read {path}: {exc}") from None


def read_okvqa(
    questions_path: Path, annotations_path: Path, coco_root: Path | None, split: str = "val"
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """OK-VQA: `OpenEnded_mscoco_{split}2014_questions.json` + `mscoco_{split}2014_annotations.json`."""
    questions = _load_json(questions_path, "okvqa")
    annotations = _load_json(annotations_path, "okvqa")
    codes: dict[str, str] = annotations.get("question_types", {})
    q = pl.from_dicts(
        questions.get("questions", []), schema={"image_id": pl.Int64, "question": pl.String, "question_id": pl.Int64}, strict=False
    ).lazy()
    answer = pl.Struct({"answer_id": pl.Int64, "raw_answer": pl.String, "answer_confidence": pl.String, "answer": pl.String})
    a = pl.from_dicts(
        annotations.get("annotations", []),
        schema={"image_id": pl.Int64, "question_id": pl.Int64, "question_type": pl.String, "answers": pl.List(answer)},
        strict=False,
    ).lazy()
    joined = q.join(a.rename({"image_id": "annotation_image_id"}), on="question_id", how="left", maintain_order="left")
    answers = pl.col("answers").list.eval(pl.element().struct.field("answer"))
    checks = {
        "question_id missing": pl.col("question_id").is_not_null(),
        "image_id missing or not an integer": pl.col("image_id").is_not_null(),
        "question missing": pl.col("question").is_not_null() & (pl.col("question").str.strip_chars() != ""),
        "no annotation for this question": pl.col("annotation_image_id").is_not_null(),
        "annotation image_id differs": pl.col("annotation_image_id").is_null() | (pl.col("annotation_image_id") == pl.col("image_id")),
        "expected 10 answers": pl.col("answers").list.len().fill_null(0) == 10,
        "answers hold empty strings": answers.list.eval(pl.element().is_null() | (pl.element() == "")).list.any().not_().fill_null(False),
        "unknown question_type code": pl.col("question_type").is_in(list(codes)).fill_null(False),
    }
    kept, rejects = _split_malformed(joined, checks, pl.format("okvqa-{}", pl.col("question_id").fill_null(-1)), "okvqa")
    image_file = pl.format(f"{split}2014/COCO_{split}2014_{{}}.jpg", pl.col("image_id").cast(pl.String).str.zfill(12))
    rows = kept.with_columns(
        pl.format("okvqa-{}", pl.col("question_id")).alias("id"),
        pl.lit("okvqa").alias("source"),
        pl.lit("commonsense").alias("perspective"),
        pl.col("question_type").replace_strict(codes, default=None).alias("category"),
        answers.alias("answers"),
        pl.format("coco:{}", pl.col("image_id")).alias("image_id"),
        _image_path(coco_root, image_file),
        pl.lit(f"{split}2014").alias("source_split"),
        pl.col("question_type").alias("question_type"),
    )
    return _unified(rows), rejects


def read_aokvqa(path: Path, coco_root: Path | None) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """A-OKVQA v1.0: `aokvqa_v1p0_{split}.json`, a list of question records.

    `difficult_direct_answer` is kept: the official evaluation leaves those questions out of the
    direct-answer score. OK-VQA and InfoSeek rows carry null there (the flag is A-OKVQA's)."""
    records = _load_json(path, "aokvqa")
    if not isinstance(records, list):
        raise ValueError(f"aokvqa: {path} must hold a JSON list of questions")
    schema = {
        "question_id": pl.String,
        "image_id": pl.Int64,
        "split": pl.String,
        "question": pl.String,
        "choices": STR_LIST,
        "correct_choice_idx": pl.Int64,
        "direct_answers": STR_LIST,
        "difficult_direct_answer": pl.Boolean,
        "rationales": STR_LIST,
    }
    frame = pl.from_dicts(records, schema=schema, strict=False).lazy()
    checks = {
        "question_id missing": pl.col("question_id").is_not_null(),
        "image_id missing or not an integer": pl.col("image_id").is_not_null(),
        "question missing": pl.col("question").is_not_null() & (pl.col("question").str.strip_chars() != ""),
        "expected 4 choices": pl.col("choices").list.len().fill_null(0) == 4,
        "correct_choice_idx not in 0..3": pl.col("correct_choice_idx").is_between(0, 3).fill_null(False),
        "expected 10 direct answers": pl.col("direct_answers").list.len().fill_null(0) == 10,
        "expected 3 rationales": pl.col("rationales").list.len().fill_null(0) == 3,
        "difficult_direct_answer missing or not a boolean": pl.col("difficult_direct_answer").is_not_null(),
    }
    kept, rejects = _split_malformed(frame, checks, pl.format("aokvqa-{}", pl.col("question_id").fill_null("?")), "aokvqa")
    image_file = pl.format("{}2017/{}.jpg", pl.col("split"), pl.col("image_id").cast(pl.String).str.zfill(12))
    rows = kept.with_columns(
        pl.format("aokvqa-{}", pl.col("question_id")).alias("id"),
        pl.lit("aokvqa").alias("source"),
        pl.lit("rationale").alias("perspective"),
        pl.lit("general").alias("category"),
        pl.col("direct_answers").alias("answers"),
        pl.format("coco:{}", pl.col("image_id")).alias("image_id"),
        _image_path(coco_root, image_file),
        pl.col("split").alias("source_split"),
    )
    return _unified(rows), rejects


def _read_jsonl(path: Path, source: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    records, rejects = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
            records.append(record)
        except ValueError as exc:
            rejects.append(
                {
                    "key": f"{Path(path).name}:{number}",
                    "source": source,
                    "code": "malformed",
                    "reason": f"line {number} is not valid JSON: {exc}",
                }
            )
    return records, rejects


def read_infoseek(
    path: Path, qtype_path: Path | None, categories_path: Path | None, oven_root: Path | None
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """InfoSeek: `infoseek_{split}.jsonl`, its `_qtype.jsonl` companion, optional entity categories."""
    records, line_rejects = _read_jsonl(path, "infoseek")
    for record in records:
        # answer_eval mixes strings (aliases) and {"wikidata", "range"} objects: split it per kind.
        evals = record.get("answer_eval")
        evals = evals if isinstance(evals, list) else []
        record["answer_aliases"] = [str(a) for a in evals if isinstance(a, (str, int, float)) and not isinstance(a, bool)]
        ranges = [a.get("range") for a in evals if isinstance(a, dict)]
        record["answer_range"] = ranges[0] if ranges and isinstance(ranges[0], list) else None
        record["has_eval"] = bool(record["answer_aliases"] or record["answer_range"])
    schema = {
        "data_id": pl.String,
        "image_id": pl.String,
        "question": pl.String,
        "answer": STR_LIST,
        "data_split": pl.String,
        "entity_id": pl.String,
        "answer_aliases": STR_LIST,
        "answer_range": pl.List(pl.Float64),
        "has_eval": pl.Boolean,
    }
    frame = pl.from_dicts(records, schema=schema, strict=False).lazy() if records else pl.LazyFrame(schema=schema)
    if qtype_path is not None:
        qtypes, bad = _read_jsonl(qtype_path, "infoseek")
        line_rejects += bad
        qtype = (
            pl.from_dicts(qtypes, schema={"data_id": pl.String, "question_type": pl.String}, strict=False).lazy()
            if qtypes
            else pl.LazyFrame(schema={"data_id": pl.String, "question_type": pl.String})
        )
        frame = frame.join(qtype.unique("data_id", keep="first"), on="data_id", how="left", maintain_order="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("question_type"))
    if categories_path is not None:
        cats, bad = _read_jsonl(categories_path, "infoseek")
        line_rejects += bad
        categories = pl.from_dicts(cats, schema={"entity_id": pl.String, "category": pl.String}, strict=False).lazy()
        frame = frame.join(categories.unique("entity_id", keep="first"), on="entity_id", how="left", maintain_order="left").with_columns(
            pl.col("category").fill_null("others")
        )
    else:
        frame = frame.with_columns(pl.lit("others").alias("category"))
    checks = {
        "data_id missing": pl.col("data_id").is_not_null(),
        "image_id missing": pl.col("image_id").is_not_null(),
        "question missing": pl.col("question").is_not_null() & (pl.col("question").str.strip_chars() != ""),
        "answer missing": pl.col("answer").list.len().fill_null(0) > 0,
        "answer_eval missing or malformed": pl.col("has_eval").fill_null(False),
        "numeric range must be [low, high]": pl.col("answer_range").is_null() | (pl.col("answer_range").list.len() == 2),
    }
    kept, rejects = _split_malformed(frame, checks, pl.format("infoseek-{}", pl.col("data_id").fill_null("?")), "infoseek")
    image_file = pl.format("{}.jpg", pl.col("image_id"))
    rows = kept.with_columns(
        pl.format("infoseek-{}", pl.col("data_id")).alias("id"),
        pl.lit("infoseek").alias("source"),
        pl.lit("world_knowledge").alias("perspective"),
        pl.col("answer").alias("answers"),
        pl.format("oven:{}", pl.col("image_id")).alias("image_id"),
        _image_path(oven_root, image_file),
        pl.col("data_split").alias("source_split"),
    )
    all_rejects = pl.concat([rejects, pl.LazyFrame(line_rejects, schema=REJECT_COLUMNS)]) if line_rejects else rejects
    return _unified(rows), all_rejects
