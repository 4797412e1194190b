"""Knowledge-VQA metrics, each equal to its benchmark's official evaluator.

- `vqa_accuracy` (OK-VQA): vqaEval.py, current revision. Whitespace is stripped from every
  answer first; only when the stripped gold answers disagree are the gold answers and the
  prediction normalised (punctuation, number words, articles, contractions), otherwise the
  stripped prediction must equal them as written. Each of the 10 leave-one-out subsets of
  annotators scores min(1, matches / 3); the 10 are averaged. The evaluator stores
  round(100 * accuracy, 2) per question; this returns the unrounded fraction.
- `aokvqa_direct_accuracy`, `mc_accuracy` (A-OKVQA, `eval_aokvqa`): no normalisation at all (not
  even case: "TWO" against ten "two" scores 0), no leave-one-out; a choice must be the correct
  text exactly.
- `infoseek_accuracy`, `infoseek_final_score` (InfoSeek, `infoseek_eval.py`).
- `relaxed_accuracy`: not an official metric, reported beside them under its own name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dataengine.metrics.vqa_text import normalize_answer, squad_normalize, strip_whitespace

AGREEING_ANNOTATORS = 3  # this many matching annotators give full credit (VQA and A-OKVQA)
_INFOSEEK_NUMBER = re.compile(r"[-+]?\.?\d+(?:,\d{3})*\.?\d*(?:[eE][-+]?\d+)?")
_IOU_THRESHOLD = 0.5
_EPSILON = 1e-12  # InfoSeek pads range lengths and the IoU threshold by this much


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy (current vqaEval.py) of one prediction against the raw annotator answers."""
    if not answers:
        raise ValueError("vqa_accuracy needs the annotator answers")
    predicted = strip_whitespace(prediction)
    gold = [strip_whitespace(answer) for answer in answers]
    if len(set(gold)) > 1:
        gold = [normalize_answer(answer) for answer in gold]
        predicted = normalize_answer(predicted)
    is_match = [answer == predicted for answer in gold]
    total = sum(is_match)
    subsets = [min(1.0, (total - left_out) / AGREEING_ANNOTATORS) for left_out in is_match]
    return sum(subsets) / len(subsets)


def relaxed_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """1 if any gold answer is a substring of the lower-cased prediction (the GPT-4V study's scripts)."""
    text = prediction.lower()
    return float(any(answer.strip().lower() and answer.strip().lower() in text for answer in answers))


def aokvqa_direct_accuracy(prediction: str, direct_answers: Sequence[str]) -> float:
    """A-OKVQA direct answer (`eval_aokvqa`): min(1, exact matches of the prediction, as written, / 3)."""
    return min(1.0, sum(answer == prediction for answer in direct_answers) / AGREEING_ANNOTATORS)


def mc_accuracy(prediction: str | int, choices: Sequence[str], correct_index: int) -> float:
    """A-OKVQA multiple choice (`eval_aokvqa`): the prediction is the correct choice's text, exactly.

    An index or padded text scores 0, as in the official script."""
    return float(isinstance(prediction, str) and prediction == choices[correct_index])


def _infoseek_numbers(text: str) -> list[float]:
    """The numbers InfoSeek reads in a prediction, in order: a hyphen after a digit is a range dash
    ("9-10" is "9 - 10"); thousands commas go; a token with several periods keeps its integer part."""
    spaced = "".join(" - " if char == "-" and i > 0 and text[i - 1].isdigit() else char for i, char in enumerate(text))
    numbers = []
    for token in _INFOSEEK_NUMBER.findall(spaced):
        token = token.replace(",", "").strip(".")
        if token.count(".") > 1:
            token = token.split(".", 1)[0]
        try:
            numbers.append(float(token))
        except ValueError:  # a bare sign left by the rule above ("-.5.3" -> "-"): not a number
            continue
    return numbers


def infoseek_prediction_range(prediction: str) -> tuple[float, float]:
    """The prediction as InfoSeek reads it: [a, b] from the first two numbers when a <= b, else the
    first number alone (as [a, a]); no number reads as [0, 0]."""
    numbers = _infoseek_numbers(prediction)[:2]
    if not numbers:
        return 0.0, 0.0
    if len(numbers) == 2 and numbers[0] <= numbers[1]:
        return numbers[0], numbers[1]
    return numbers[0], numbers[0]


def _range_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """InfoSeek's IoU of two ranges, each length padded by 1e-12 (two points never divide by zero)."""
    overlap = max(0.0, min(max(a), max(b)) - max(min(a), min(b)))
    union = (max(a) - min(a) + _EPSILON) + (max(b) - min(b) + _EPSILON) - overlap
    return overlap / union if union != 0 else 0.0


def infoseek_numeric_accuracy(prediction: str, answer_range: Sequence[float]) -> float:
    """A Numerical answer: a single number must lie in the range; a predicted range must lie inside
    it or overlap it with IoU >= 0.5 (a point outside the range never overlaps it)."""
    low, high = float(answer_range[0]), float(answer_range[1])
    first, last = infoseek_prediction_range(prediction)
    if low <= first <= high and low <= last <= high:
        return 1.0
    return float(_range_iou((first, last), (low, high)) >= _IOU_THRESHOLD - _EPSILON)


def infoseek_accuracy(prediction: str, answer_eval: Sequence[Any], question_type: str | None) -> float:
    """InfoSeek accuracy of one prediction; `answer_eval` as in `infoseek_val.jsonl` (aliases and/or
    `{"wikidata", "range"}` objects). Numerical questions score against the first range, String and
    Time questions by exact match of the SQuAD-normalised prediction with one alias."""
    ranges = [item["range"] for item in answer_eval if isinstance(item, Mapping) and "range" in item]
    numerical = question_type.lower() == "numerical" if question_type else bool(ranges)
    if numerical:
        if not ranges:
            raise ValueError("a Numerical InfoSeek question needs a {'range': [low, high]} in answer_eval")
        return infoseek_numeric_accuracy(prediction, ranges[0])
    predicted = squad_normalize(prediction)
    aliases = [str(item) for item in answer_eval if not isinstance(item, Mapping)]
    return float(any(predicted == squad_normalize(alias) for alias in aliases))


def infoseek_final_score(unseen_question: float, unseen_entity: float) -> float:
    """InfoSeek's headline `final_score` (0-100), from the two splits' accuracies (fractions, each
    pooled over all question types): each split rounded to round(100 * accuracy, 2), their harmonic
    mean (a zero counts as 1e-12), rounded to 2 decimals."""
    splits = [round(100 * accuracy, 2) or _EPSILON for accuracy in (unseen_question, unseen_entity)]
    return round(len(splits) / sum(1 / score for score in splits), 2)
