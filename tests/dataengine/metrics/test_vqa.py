"""VQA metrics on hand-made cases worked out by the official rules."""

import polars as pl
import pytest

from dataengine.metrics.vqa import infoseek_accuracy, infoseek_score, mc_accuracy, relaxed_accuracy, vqa_accuracy
from dataengine.metrics.vqa_text import normalize_answer, normalize_column


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


def test_relaxed_accuracy():
    assert relaxed_accuracy("I think it is a Golden Retriever.", ["golden retriever", "dog"]) == 1.0
    assert relaxed_accuracy("a cat", ["dog"]) == 0.0


def test_mc_accuracy():
    choices = ["bus", "train", "plane", "boat"]
    assert mc_accuracy("train", choices, 1) == 1.0 and mc_accuracy(" train ", choices, 1) == 1.0
    assert mc_accuracy("Train", choices, 1) == 0.0 and mc_accuracy(1, choices, 1) == 1.0


def test_infoseek_accuracy():
    numeric = [{"wikidata": 260.0, "range": [234.0, 286.0]}]
    assert infoseek_accuracy("about 250 metres", numeric) == 1.0
    assert infoseek_accuracy("234", numeric) == 1.0 and infoseek_accuracy("286", numeric) == 1.0  # edges count
    assert infoseek_accuracy("287", numeric) == 0.0 and infoseek_accuracy("no idea", numeric) == 0.0
    assert infoseek_accuracy("240 - 290", numeric) == 1.0  # IoU 46/56 = 0.82
    assert infoseek_accuracy("100 to 250", numeric) == 0.0  # IoU 16/186
    assert infoseek_accuracy("1,000", [{"wikidata": 1000.0, "range": [900.0, 1100.0]}]) == 1.0
    aliases = ["Eiffel Tower", "Tour Eiffel"]
    assert infoseek_accuracy("the eiffel tower", aliases) == 1.0 and infoseek_accuracy("Louvre", aliases) == 0.0
    assert infoseek_accuracy("1889", ["1888", "1889", "1890"]) == 1.0


def test_infoseek_score_is_a_harmonic_mean():
    assert infoseek_score(0.5, 0.25) == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert infoseek_score(0.5, 0.0) == 0.0
