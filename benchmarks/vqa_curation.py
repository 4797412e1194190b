"""Curation of a generated 1M-question table: our polars pipeline vs the same logic in pandas.

Each side runs in a fresh interpreter (so peak RSS is its own): answer normalisation (official VQA
rules) of 10 answers per question, cross-source deduplication on (image, normalised question),
image-exclusive splits, seeded stratified sampling with a cap of 150 per category.

    python -m benchmarks.vqa_curation [--questions 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import polars as pl

CATEGORIES = [
    "Vehicles and Transportation",
    "Brands, Companies and Products",
    "Objects, Material and Clothing",
    "Sports and Recreation",
    "Cooking and Food",
    "Geography, History, Language and Culture",
    "People and Everyday life",
    "Plants and Animals",
    "Science and Technology",
    "Weather and Climate",
    "Other",
]
WORDS = [
    "dog",
    "cat",
    "the bus",
    "Two",
    "2",
    "red",
    "a tree",
    "yes",
    "no",
    "pizza",
    "3,000",
    "U.S.A.",
    "don't know",
    "tennis",
    "surfing",
    "Nike",
    "apple",
    "a red-hat",
    "water",
    "ten",
    "baseball bat",
    "(none)",
    "e.g. wood",
]


def generate(n: int, seed: int = 0) -> pl.DataFrame:
    """Questions with skewed categories, ~5 questions per image, 10 Zipf-distributed answers, 2% duplicates."""
    rng = np.random.default_rng(seed)
    category_p = np.array([10, 6, 12, 9, 11, 5, 10, 12, 3, 4, 8], dtype=float)
    categories = rng.choice(len(CATEGORIES), size=n, p=category_p / category_p.sum())
    zipf = 1.0 / np.arange(1, len(WORDS) + 1)
    answers = rng.choice(len(WORDS), size=(n, 10), p=zipf / zipf.sum())
    images = rng.integers(0, n // 5, size=n)
    questions = rng.integers(0, n // 2, size=n)
    duplicate = rng.random(n) < 0.02
    questions[duplicate] = questions[np.roll(np.arange(n), 1)][duplicate]
    images[duplicate] = images[np.roll(np.arange(n), 1)][duplicate]
    sources = rng.choice(["okvqa", "aokvqa", "infoseek"], size=n, p=[0.5, 0.2, 0.3])
    words = np.array(WORDS, dtype=object)
    return pl.DataFrame(
        {
            "id": [f"q{i}" for i in range(n)],
            "source": sources,
            "perspective": np.select([sources == "okvqa", sources == "aokvqa"], ["commonsense", "rationale"], "world_knowledge"),
            "category": np.array(CATEGORIES, dtype=object)[categories],
            "question": [f"What is shown in picture {q}?" for q in questions],
            "answers": words[answers].tolist(),
            "image_id": [f"coco:{i}" for i in images],
            "source_split": np.where(sources == "infoseek", "val_unseen_question", "val"),
            "rationales": [["r"] if s == "aokvqa" else None for s in sources],
        }
    )


def run_polars(table: pl.DataFrame) -> int:
    from builders.vqa.builder import curate

    caps = {"commonsense": 150, "world_knowledge": 150, "rationale": 150}
    rows = table.lazy().with_columns(
        pl.lit(None, pl.List(pl.String)).alias("choices"),
        pl.lit(None, pl.Int64).alias("correct_choice_idx"),
        pl.lit(None, pl.List(pl.String)).alias("answer_aliases"),
        pl.lit(None, pl.List(pl.Float64)).alias("answer_range"),
        pl.lit(None, pl.String).alias("question_type"),
        pl.lit(None, pl.String).alias("entity_id"),
        pl.lit("").alias("image_path"),
    )
    kept, removed = curate(rows, 7, caps)
    kept, removed = pl.collect_all([kept, removed])
    return kept.height


def run_pandas(table: pl.DataFrame) -> int:

    from dataengine.metrics.vqa_text import normalize_answer

    df = table.to_pandas()
    priority = {"aokvqa": 0, "infoseek": 1, "okvqa": 2}
    df["q"] = df["question"].str.lower().str.replace(r"\s+", " ", regex=True).str.strip(" ?")
    df["priority"] = df["source"].map(priority)
    df = df.sort_values(["priority", "id"])
    answers = df[["id", "answers"]].explode("answers")
    answers["norm"] = answers["answers"].map(normalize_answer)
    norm = answers.groupby("id")["norm"].agg(lambda s: sorted({v for v in s if v}))
    df["answers_normalized"] = df["id"].map(norm)
    df = df.drop_duplicates(["image_id", "q"], keep="first")
    df = df[df["priority"] == df.groupby("image_id")["priority"].transform("min")]
    rng_order = df.groupby(["perspective", "category"])["id"].rank(method="first")
    df = df.assign(order=(rng_order * 2654435761 + 7) % (1 << 32))
    df["pick"] = df.groupby(["perspective", "category"])["order"].rank(method="first")
    return int((df["pick"] <= 150).sum())


def child(kind: str, n: int) -> None:
    table = generate(n)
    started = time.perf_counter()
    kept = run_polars(table) if kind == "polars" else run_pandas(table)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "kept": kept, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1_000_000)
    parser.add_argument("--child", choices=["polars", "pandas"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.questions)
        return
    results = {}
    for kind in ("polars", "pandas"):
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.vqa_curation", "--child", kind, "--questions", str(args.questions)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[kind] = json.loads(output.strip().splitlines()[-1])
    print(f"{args.questions} questions, 10 answers each (peak RSS includes generating the table)")
    for kind, r in results.items():
        print(f"  {kind:<7} {r['seconds']:7.2f} s  peak RSS {r['peak_mib']:7.0f} MiB  kept {r['kept']}")
    p, d = results["polars"], results["pandas"]
    print(f"polars vs pandas: {d['seconds'] / p['seconds']:.1f}x faster, {d['peak_mib'] / p['peak_mib']:.2f}x less peak memory")


if __name__ == "__main__":
    main()
