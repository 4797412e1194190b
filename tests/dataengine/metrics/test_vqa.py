"""VQA metrics on hand-made cases worked out by the official rules."""

import polars as pl
import pytest

from dataengine.metrics.vqa import (
    aokvqa_direct_accuracy,
    infoseek_accuracy,
    infoseek_final_score,
    infoseek_prediction_range,
    mc_accuracy,
    relaxed_accuracy,
    vqa_accuracy,
)
from dataengine.metrics.vqa_text import normalize_answer, normalize_column, squad_normalize


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Two", "2"),
        ("the Dog.", "dog"),
        ("a red-hat", "red hat"),
        ("3,000", "3000"),
        ("1.5 meters", "1.5 meters"),
        ("dont know", "don't know"),
        ("Hello , world", "hello world"),
        ("U.S.A.", "usa"),
        ("(a) cat", "cat"),
        (" ten\tcats ", "10 cats"),
        ("none", "0"),
        ("An apple", "apple"),
        ("Im", "im"),
        ("..5", ".5"),
    ],
)
def test_normalisation_rules(text, expected):
    assert normalize_answer(text) == expected


def test_polars_normalisation_equals_python():
    corpus = [
        "Two dogs!",
        "the U.S. flag",
        "3,5 kg-ish",
        "e.g. tea",
        "don't",
        "dont",
        "a..b",
        "x - y",
        "5.0.",
        "(none)",
        "it's 10 o'clock",
        "R&B",
        "what's up?",
        "",
        "a" + "." * 40 + "b",
        "\u00a0two\u3000dogs\x1c",
    ]
    frame = normalize_column(pl.LazyFrame({"a": corpus}), "a", "n").collect()
    assert frame["n"].to_list() == [normalize_answer(t) for t in corpus]


def test_vqa_accuracy_counts_leave_one_out():
    # 3 of 10 annotators said "dog": 7 subsets keep all 3 (score 1), 3 subsets keep 2 (2/3)
    answers = ["dog"] * 3 + ["cat"] * 7
    assert vqa_accuracy("dog", answers) == pytest.approx((7 * 1 + 3 * 2 / 3) / 10)
    # 1 annotator: 9 subsets see 1 match (1/3), the one without it sees 0
    assert vqa_accuracy("cat", ["cat"] + ["dog"] * 9) == pytest.approx(9 * (1 / 3) / 10)
    assert vqa_accuracy("cow", answers) == 0.0
    assert vqa_accuracy("dog", ["dog"] * 10) == 1.0


def test_vqa_accuracy_ties_and_normalisation_only_on_disagreement():
    tie = ["red"] * 5 + ["blue"] * 5
    assert vqa_accuracy("red", tie) == vqa_accuracy("blue", tie) == 1.0
    # annotators disagree -> the prediction is normalised: "Two." -> "2"
    assert vqa_accuracy("Two.", ["2"] * 4 + ["3"] * 6) == 1.0
    # unanimous annotators -> the official code normalises nothing: "two" does not match "2"
    assert vqa_accuracy("two", ["2"] * 10) == 0.0
    assert vqa_accuracy("The dog", ["dog"] * 9 + ["puppy"]) == 1.0


def test_vqa_accuracy_current_revision():
    # disagreement is decided after stripping; then gold answers get the word step too ("two" -> "2")
    assert vqa_accuracy("2", ["two"] * 4 + ["2"] * 3 + ["bus"] * 3) == 1.0
    # " skiing" and "skiing" agree once stripped: unanimous, so the raw (stripped) prediction must match
    assert vqa_accuracy("Skiing", ["skiing "] * 3 + ["skiing"] * 7) == 0.0
    assert vqa_accuracy(" skiing\n", ["skiing "] * 3 + ["skiing"] * 7) == 1.0
    # the gold article goes too: "the bus" counts as "bus"
    assert vqa_accuracy("bus", ["bus"] * 2 + ["the bus"] + ["car"] * 7) == pytest.approx((7 * 1 + 3 * 2 / 3) / 10)


def test_at_most_32_periods_are_removed():
    assert normalize_answer("a" + "." * 40) == "a" + "." * 8


def test_relaxed_accuracy():
    assert relaxed_accuracy("I think it is a Golden Retriever.", ["golden retriever", "dog"]) == 1.0
    assert relaxed_accuracy("a cat", ["dog"]) == 0.0


def test_mc_accuracy_is_the_exact_choice_text():
    choices = ["bus", "train", "plane", "boat"]
    assert mc_accuracy("train", choices, 1) == 1.0
    assert mc_accuracy(" train ", choices, 1) == mc_accuracy("Train", choices, 1) == mc_accuracy(1, choices, 1) == 0.0


def test_aokvqa_direct_accuracy_is_exact_matches_over_3():
    answers = ["eat"] * 2 + ["Eat"] + ["work"] * 3 + ["food"] * 4
    assert aokvqa_direct_accuracy("eat", answers) == pytest.approx(2 / 3)  # no leave-one-out, no case folding
    assert aokvqa_direct_accuracy("food", answers) == aokvqa_direct_accuracy("work", answers) == 1.0
    assert aokvqa_direct_accuracy("the food", answers) == 0.0


def test_infoseek_accuracy():
    numeric = [{"wikidata": 260.0, "range": [234.0, 286.0]}]
    assert infoseek_accuracy("about 250 metres", numeric, "Numerical") == 1.0
    assert infoseek_accuracy("234", numeric, "Numerical") == 1.0 and infoseek_accuracy("286", numeric, "Numerical") == 1.0  # edges
    assert infoseek_accuracy("287", numeric, "Numerical") == 0.0 and infoseek_accuracy("no idea", numeric, "Numerical") == 0.0
    assert infoseek_accuracy("240 - 290", numeric, "Numerical") == 1.0  # IoU 46/56 = 0.82
    assert infoseek_accuracy("100 to 250", numeric, "Numerical") == 0.0  # IoU 16/186
    assert infoseek_accuracy("1,000", [{"wikidata": 1000.0, "range": [900.0, 1100.0]}], "Numerical") == 1.0
    assert infoseek_accuracy("no idea", [{"wikidata": 0.0, "range": [-1.0, 1.0]}], "Numerical") == 1.0  # no number reads as 0
    aliases = ["Eiffel Tower", "Tour Eiffel"]
    assert infoseek_accuracy("the eiffel tower!", aliases, "String") == 1.0 and infoseek_accuracy("Louvre", aliases, "String") == 0.0
    assert infoseek_accuracy("Eiffel-Tower", aliases, "String") == 0.0  # punctuation is deleted, not spaced
    assert infoseek_accuracy("1889", ["1888", "1889", "1890"], "Time") == 1.0
    assert infoseek_accuracy("1,889", ["1889"], "Time") == 1.0


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1990-2000", (1990.0, 2000.0)),
        ("9-10 metres", (9.0, 10.0)),
        ("-5 to -3", (-5.0, -3.0)),
        ("between 20 and 10", (20.0, 20.0)),
        ("1,234.5 or 2e3", (1234.5, 2000.0)),
        ("about 3.5.", (3.5, 3.5)),
        ("nothing", (0.0, 0.0)),
    ],
)
def test_infoseek_reads_numbers_like_the_official_script(text, expected):
    assert infoseek_prediction_range(text) == expected


def test_squad_normalize():
    assert squad_normalize("  The Tour-Eiffel, Paris! ") == "toureiffel paris"
    assert squad_normalize("An apple a day") == "apple day"


def test_infoseek_final_score_is_the_official_formula():
    # split scores are rounded to 0-100 with 2 decimals first, then their harmonic mean is rounded
    assert infoseek_final_score(2 / 3, 0.5) == round(2 / (1 / 66.67 + 1 / 50.0), 2) == 57.14
    assert infoseek_final_score(0.5, 0.25) == 33.33
    assert infoseek_final_score(0.5, 0.0) == 0.0 and infoseek_final_score(1.0, 1.0) == 100.0
