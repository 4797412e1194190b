"""Readers for the official knowledge-VQA files, as distributed, into one polars table.

Each reader returns (rows, rejects): `rows` a LazyFrame with the unified columns below, `rejects`
a LazyFrame of (key, source, code, reason) for malformed records. Files are parsed as JSON once;
checks, joins and mapping are polars expressions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def _fits(value: Any, dtype: pl.DataType) -> bool:
    """Whether a JSON value can fill a polars column of `dtype` as it is (null always can)."""
    if value is None:
        return True
    if dtype == pl.String:
        return isinstance(value, str)
    if dtype == pl.Int64:
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if dtype == pl.Float64:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype == pl.Boolean:
        return isinstance(value, bool)
    if isinstance(dtype, pl.List):
        return isinstance(value, list) and all(_fits(item, dtype.inner) for item in value)
    if isinstance(dtype, pl.Struct):
        return isinstance(value, dict) and all(_fits(value.get(f.name), f.dtype) for f in dtype.fields)
    return False


_TYPE_WORDS = {pl.String: "a string", pl.Int64: "an integer", pl.Float64: "a number", pl.Boolean: "a boolean"}


def _type_word(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.List):
        return f"a list of {_type_word(dtype.inner).removeprefix('a ').removeprefix('an ')}s"
    if isinstance(dtype, pl.Struct):
        return "an object with " + ", ".join(f.name for f in dtype.fields)
    return _TYPE_WORDS.get(dtype, str(dtype))


def typed_records(
    records: list[Any], schema: dict[str, pl.DataType], key: Callable[[int, dict[str, Any]], str], source: str
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The records whose every field has the type its column takes, and a reject for each other one
    (one mistyped field must not fail the whole frame): checked in Python before polars sees them."""
    good, rejects = [], []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            problems = [f"a record is a JSON object, got {type(record).__name__}"]
            record_key = f"{source}-record{index}"
        else:
            problems = [
                f"{name} is {type(record[name]).__name__} {json.dumps(record[name])[:40]}, expected {_type_word(dtype)}"
                for name, dtype in schema.items()
                if not _fits(record.get(name), dtype)
            ]
            record_key = key(index, record)
        if problems:
            rejects.append({"key": record_key, "source": source, "code": "malformed", "reason": "; ".join(problems)})
        else:
            good.append(record)
    return good, rejects


def _frame(records: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    return pl.from_dicts(records, schema=schema, strict=False).lazy() if records else pl.LazyFrame(schema=schema)


def _with_rejects(rejects: pl.LazyFrame, extra: list[dict[str, str]]) -> pl.LazyFrame:
    return pl.concat([rejects, pl.LazyFrame(extra, schema=REJECT_COLUMNS)]) if extra else rejects


def _id_part(record: dict[str, Any], field: str, index: int) -> str:
    value = record.get(field)
    return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value) else f"record{index}"


# An image id becomes a file name under its root: a name, never a path that could climb out of it.
SAFE_IMAGE_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


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
    if not isinstance(questions, dict) or not isinstance(questions.get("questions", []), list):
        raise ValueError(
            f"okvqa: {questions_path} must be a JSON object with a 'questions' list (OpenEnded_mscoco_<split>2014_questions.json)"
        )
    if not isinstance(annotations, dict) or not isinstance(annotations.get("annotations", []), list):
        raise ValueError(
            f"okvqa: {annotations_path} must be a JSON object with an 'annotations' list (mscoco_<split>2014_annotations.json)"
        )
    codes = annotations.get("question_types", {})
    if not isinstance(codes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in codes.items()):
        raise ValueError(f"okvqa: 'question_types' in {annotations_path} must map question type codes to category names")
    question_schema = {"image_id": pl.Int64, "question": pl.String, "question_id": pl.Int64}
    good_questions, bad = typed_records(
        questions.get("questions", []), question_schema, lambda i, r: f"okvqa-{_id_part(r, 'question_id', i)}", "okvqa"
    )
    q = _frame(good_questions, question_schema)
    answer = pl.Struct({"answer_id": pl.Int64, "raw_answer": pl.String, "answer_confidence": pl.String, "answer": pl.String})
    annotation_schema = {"image_id": pl.Int64, "question_id": pl.Int64, "question_type": pl.String, "answers": pl.List(answer)}
    good_annotations, bad_annotations = typed_records(
        annotations.get("annotations", []), annotation_schema, lambda i, r: f"okvqa-annotation-{_id_part(r, 'question_id', i)}", "okvqa"
    )
    a = _frame(good_annotations, annotation_schema)
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
    return _unified(rows), _with_rejects(rejects, bad + bad_annotations)


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
    good, bad = typed_records(records, schema, lambda i, r: f"aokvqa-{_id_part(r, 'question_id', i)}", "aokvqa")
    frame = _frame(good, schema)
    checks = {
        "question_id missing": pl.col("question_id").is_not_null(),
        "image_id missing or not an integer": pl.col("image_id").is_not_null(),
        "question missing": pl.col("question").is_not_null() & (pl.col("question").str.strip_chars() != ""),
        "split missing or not a folder name": pl.col("split").str.contains(SAFE_IMAGE_ID).fill_null(False),
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
    return _unified(rows), _with_rejects(rejects, bad)


def _read_jsonl(path: Path, source: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    records, rejects = [], []
    for number, line in enumerate(Path(path).read_bytes().splitlines(), start=1):  # decoded per line: one bad byte loses one line
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8-sig"))
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
    records, bad = typed_records(records, schema, lambda i, r: f"infoseek-{_id_part(r, 'data_id', i)}", "infoseek")
    line_rejects += bad
    frame = _frame(records, schema)
    if qtype_path is not None:
        qtypes, bad = _read_jsonl(qtype_path, "infoseek")
        line_rejects += bad
        qtype_schema = {"data_id": pl.String, "question_type": pl.String}
        qtypes, bad = typed_records(qtypes, qtype_schema, lambda i, r: f"{Path(qtype_path).name}:{_id_part(r, 'data_id', i)}", "infoseek")
        line_rejects += bad
        qtype = _frame(qtypes, qtype_schema)
        frame = frame.join(qtype.unique("data_id", keep="first"), on="data_id", how="left", maintain_order="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.String).alias("question_type"))
    if categories_path is not None:
        cats, bad = _read_jsonl(categories_path, "infoseek")
        line_rejects += bad
        category_schema = {"entity_id": pl.String, "category": pl.String}
        cats, bad = typed_records(
            cats, category_schema, lambda i, r: f"{Path(categories_path).name}:{_id_part(r, 'entity_id', i)}", "infoseek"
        )
        line_rejects += bad
        categories = _frame(cats, category_schema)
        frame = frame.join(categories.unique("entity_id", keep="first"), on="entity_id", how="left", maintain_order="left").with_columns(
            pl.col("category").fill_null("others")
        )
    else:
        frame = frame.with_columns(pl.lit("others").alias("category"))
    checks = {
        "data_id missing": pl.col("data_id").is_not_null(),
        "image_id missing": pl.col("image_id").is_not_null(),
        "image_id is not a file name (it would leave the image root)": pl.col("image_id").is_null()
        | pl.col("image_id").str.contains(SAFE_IMAGE_ID),
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
    return _unified(rows), _with_rejects(rejects, line_rejects)
