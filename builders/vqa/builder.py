"""Knowledge-intensive VQA: OK-VQA, A-OKVQA and InfoSeek curated with polars into one schema.

Curation (all polars, lazily): normalised answers (the official VQA rules), duplicates removed
(same image and normalised question, across sources too), every image owned by one split only,
the evaluation subsets selected (OK-VQA val, InfoSeek's two unseen val splits, A-OKVQA val), and a
deterministic stratified sample per category under a cap. Splits are the three perspectives:
`commonsense` (OK-VQA), `world_knowledge` (InfoSeek) and `rationale` (A-OKVQA).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl
from PIL import Image, ImageOps

from builders.vqa.sources import REJECT_COLUMNS, empty_rejects, read_aokvqa, read_infoseek, read_okvqa
from dataengine.core.builder import Builder, Context, Sample, register_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.fields import exif_orientation
from dataengine.core.rejects import Reject
from dataengine.io.paths import check_regular_file, safe_relative
from dataengine.metrics.vqa_text import normalize_column

PERSPECTIVES = ("rationale", "world_knowledge", "commonsense")  # also the order in which splits claim images
SOURCE_PRIORITY = {"aokvqa": 0, "infoseek": 1, "okvqa": 2}
INFOSEEK_EVAL_SPLITS = ["val_unseen_question", "val_unseen_entity"]
RECORD_COLUMNS = [
    "id",
    "source",
    "perspective",
    "category",
    "question",
    "answers",
    "answers_normalized",
    "choices",
    "correct_choice_idx",
    "rationales",
    "image_id",
    "answer_aliases",
    "answer_range",
    "difficult_direct_answer",
    "source_split",
    "question_type",
    "entity_id",
]


def _u64(value: int) -> pl.Expr:
    return pl.lit(value % (1 << 64), dtype=pl.UInt64)


def shuffle_key(seed: int) -> pl.Expr:
    """A deterministic pseudo-random order inside each group: splitmix64 of (rank of the id, seed),
    in wrapping UInt64 arithmetic (stable across polars versions and machines, unlike `Expr.hash`)."""
    x = pl.col("id").rank("ordinal").over("perspective", "category").cast(pl.UInt64) + _u64(seed * 0x9E3779B97F4A7C15)
    x = x.xor(x // (1 << 30)) * _u64(0xBF58476D1CE4E5B9)
    x = x.xor(x // (1 << 27)) * _u64(0x94D049BB133111EB)
    return x.xor(x // (1 << 31)).alias("__order")


def curate(rows: pl.LazyFrame, seed: int, caps: dict[str, int | None]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The release table and the rows curation removed (with reasons). Lazy throughout."""
    rows = rows.with_columns(
        pl.col("question").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars(" ?").alias("__question"),
        pl.col("source").replace_strict(SOURCE_PRIORITY, return_dtype=pl.Int64).alias("__priority"),
    ).sort("__priority", "id")
    exploded = rows.select("id", "answers").explode("answers")
    # Answers repeat heavily: normalise each distinct string once, then join it back.
    vocabulary = normalize_column(exploded.select("answers").unique(), "answers", "__answer")
    exploded = exploded.join(vocabulary, on="answers", how="left")
    normalized = exploded.group_by("id").agg(
        pl.col("__answer").drop_nulls().filter(pl.col("__answer") != "").unique().sort().alias("answers_normalized")
    )
    rows = rows.join(normalized, on="id", how="left", maintain_order="left")

    keep_first = pl.col("id").first().over("image_id", "__question")
    rows = rows.with_columns(keep_first.alias("__kept"))
    duplicates = rows.filter(pl.col("__kept") != pl.col("id")).select(
        pl.col("id").alias("key"),
        pl.col("source"),
        pl.lit("duplicate").alias("code"),
        pl.format("same image and normalised question as {}", pl.col("__kept")).alias("reason"),
    )
    rows = rows.filter(pl.col("__kept") == pl.col("id"))

    in_subset = (
        ((pl.col("source") == "okvqa") & pl.col("source_split").str.starts_with("val"))
        | ((pl.col("source") == "infoseek") & pl.col("source_split").is_in(INFOSEEK_EVAL_SPLITS))
        | ((pl.col("source") == "aokvqa") & (pl.col("source_split") == "val") & (pl.col("rationales").list.len() > 0))
    ).fill_null(False)
    split = pl.col("source_split").fill_null("(none)")
    outside = rows.filter(~in_subset).select(
        pl.col("id").alias("key"),
        pl.col("source"),
        pl.lit("not_evaluation_subset").alias("code"),
        pl.when(pl.col("source") == "okvqa")
        .then(pl.format("OK-VQA split '{}' is not a val split (params.okvqa_split)", split))
        .when(pl.col("source") == "infoseek")
        .then(pl.format("InfoSeek split '{}' is not one of {}", split, pl.lit(", ".join(INFOSEEK_EVAL_SPLITS))))
        .when(pl.col("source_split") == "val")
        .then(pl.lit("A-OKVQA val record without rationales"))
        .otherwise(pl.format("A-OKVQA split '{}' is not val", split))
        .alias("reason"),
    )
    rows = rows.filter(in_subset)

    owner = pl.col("__priority").min().over("image_id")
    shared = rows.filter(pl.col("__priority") != owner).select(
        pl.col("id").alias("key"),
        pl.col("source"),
        pl.lit("image_in_other_split").alias("code"),
        pl.format("image {} already belongs to another split", pl.col("image_id")).alias("reason"),
    )
    rows = rows.filter(pl.col("__priority") == owner)

    cap = pl.col("perspective").replace_strict(dict(caps), default=None, return_dtype=pl.Int64)
    rows = rows.with_columns(shuffle_key(seed)).with_columns(
        pl.col("__order").rank("ordinal").over("perspective", "category").alias("__pick")
    )
    kept = cap.is_null() | (pl.col("__pick") <= cap)
    capped = rows.filter(~kept).select(
        pl.col("id").alias("key"),
        pl.col("source"),
        pl.lit("over_cap").alias("code"),
        pl.format(
            "category '{}' of {} holds more questions than its cap of {} (params.cap_{}); this one falls past it in the seeded order",
            pl.col("category"),
            pl.col("perspective"),
            cap,
            pl.col("perspective"),
        ).alias("reason"),
    )
    rows = rows.filter(kept).sort("perspective", "category", "__order")
    removed = pl.concat([duplicates, outside, shared, capped]).select([pl.col(c).cast(t) for c, t in REJECT_COLUMNS.items()])
    return rows.select(RECORD_COLUMNS + ["image_path"]), removed


def category_stats(table: pl.DataFrame) -> dict[str, Any]:
    """Per split and category: question counts, mean distinct normalised answers, mean answer length."""
    grouped = (
        table.lazy()
        .with_columns(
            pl.col("answers_normalized").list.len().alias("distinct_answers"),
            pl.col("answers").list.eval(pl.element().str.len_chars()).list.mean().alias("answer_chars"),
        )
        .group_by("perspective", "category")
        .agg(pl.len().alias("questions"), pl.col("distinct_answers").mean().round(3), pl.col("answer_chars").mean().round(3))
        .sort("perspective", "category")
        .collect()
    )
    stats: dict[str, Any] = {}
    for row in grouped.iter_rows(named=True):  # a handful of summary rows, not the data
        stats.setdefault(row["perspective"], {})[row["category"]] = {k: row[k] for k in ("questions", "distinct_answers", "answer_chars")}
    return stats


@register_builder("vqa_knowledge")
class VqaKnowledge(Builder):
    """One release from the official OK-VQA, A-OKVQA and InfoSeek files plus the COCO / OVEN images."""

    description = "knowledge VQA from the official OK-VQA, A-OKVQA and InfoSeek files: curated, deduplicated, three perspectives"

    task_categories = ("visual-question-answering",)

    sample_kind = "vqa"
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "okvqa_split": {"type": "string", "default": "val"},
            "cap_commonsense": {"type": ["integer", "null"], "minimum": 1, "default": 150},
            "cap_world_knowledge": {"type": ["integer", "null"], "minimum": 1, "default": 150},
            "cap_rationale": {"type": ["integer", "null"], "minimum": 1, "default": None},
        },
    }
    split_schema = {"type": "object", "additionalProperties": False, "properties": {}}

    def sample_overlay(self, record: Mapping[str, Any]) -> tuple[str, list[list[float]]]:
        return record.get("question", ""), []

    def __init__(self) -> None:
        self._curated: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = {}

    def output_splits(self, spec: BuildSpec) -> list[str]:
        return [p for p in PERSPECTIVES if p in self._families(spec)]

    @staticmethod
    def _families(spec: BuildSpec) -> list[str]:
        have = spec.sources
        families = []
        if "aokvqa" in have:
            families.append("rationale")
        if "infoseek" in have:
            families.append("world_knowledge")
        if "okvqa_questions" in have and "okvqa_annotations" in have:
            families.append("commonsense")
        return families

    def fields(self, spec: BuildSpec) -> dict[str, str]:
        return {"image.jpg": "image", "json": "json"}

    def curated(self, spec: BuildSpec) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(release table, rejects): read and curated once per spec."""
        if spec.sha256 not in self._curated:
            sources, parts, rejects = spec.sources, [], []
            if not self._families(spec):
                raise ValueError(
                    "give at least one source family: sources.okvqa_questions + okvqa_annotations, sources.aokvqa, or sources.infoseek"
                )
            if "okvqa_questions" in sources and "okvqa_annotations" in sources:
                parts.append(
                    read_okvqa(
                        sources["okvqa_questions"], sources["okvqa_annotations"], sources.get("coco_root"), spec.params["okvqa_split"]
                    )
                )
            if "aokvqa" in sources:
                parts.append(read_aokvqa(sources["aokvqa"], sources.get("coco_root")))
            if "infoseek" in sources:
                parts.append(
                    read_infoseek(
                        sources["infoseek"], sources.get("infoseek_qtype"), sources.get("infoseek_categories"), sources.get("oven_root")
                    )
                )
            rows = pl.concat([p[0] for p in parts])
            rejects = [p[1] for p in parts]
            caps = {p: spec.params[f"cap_{p}"] for p in PERSPECTIVES}
            table, removed = curate(rows, spec.seed, caps)
            table_df, rejects_df = pl.collect_all([table, pl.concat([*rejects, removed, empty_rejects()])])
            self._curated[spec.sha256] = (table_df, rejects_df)
        return self._curated[spec.sha256]

    def plan(self, spec: BuildSpec) -> list[Partition]:
        table, _ = self.curated(spec)
        partitions = []
        for split in self.output_splits(spec):
            part = table.filter(pl.col("perspective") == split)
            partitions.extend(spec.partition(split, part.to_dicts()))
        return partitions

    def planning_rejects(self, spec: BuildSpec) -> list[Reject]:
        _, rejects = self.curated(spec)
        return [Reject(**row) for row in rejects.to_dicts()]

    def summary(self, spec: BuildSpec) -> dict[str, Any]:
        table, _ = self.curated(spec)
        return {"categories": category_stats(table)}

    def item_key(self, item: dict[str, Any], ctx: Context) -> str:
        return item["id"]

    def item_source(self, item: dict[str, Any], ctx: Context) -> str:
        return item["image_path"]

    def image_root(self, item: dict[str, Any], spec: BuildSpec) -> str | None:
        """The folder an item's image path was joined to (COCO for OK-VQA / A-OKVQA, OVEN for InfoSeek)."""
        root = spec.sources.get("oven_root" if item["source"] == "infoseek" else "coco_root")
        return None if root is None else str(root)

    def process_item(self, item: dict[str, Any], ctx: Context) -> Iterable[Sample]:
        """The image as stored (JPEG kept as is, others re-encoded), shown upright: an EXIF rotation or
        flip is applied to the pixels, so every reader sees the same image."""
        path = item["image_path"]
        root = self.image_root(item, ctx.spec)
        if root is not None:
            safe_relative(path.removeprefix(f"{root}/"), f"image of {item['id']}")
        try:
            check_regular_file(path, "image")  # a FIFO or a device would block the read forever
            with open(path, "rb") as handle:
                data = handle.read()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                fmt = image.format
                if exif_orientation(image) != 1:
                    buffer = io.BytesIO()
                    ImageOps.exif_transpose(image).convert("RGB").save(buffer, "JPEG", quality=95)
                    data = buffer.getvalue()
                    ctx.counters["exif_orientation_applied"] += 1
                elif fmt != "JPEG":
                    buffer = io.BytesIO()
                    image.convert("RGB").save(buffer, "JPEG", quality=95)
                    data = buffer.getvalue()
        except FileNotFoundError:
            raise FileNotFoundError(f"image not found: {path}") from None
        except OSError as exc:
            raise OSError(f"unreadable image {path}: {exc}") from None
        record = {name: item[name] for name in RECORD_COLUMNS}
        record["image_file"] = path.rsplit("/", 1)[-1]
        yield {"__key__": item["id"], "__source__": path, "image.jpg": data, "json": record}
