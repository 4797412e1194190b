"""Knowledge-VQA metrics: VQA accuracy (official and relaxed), A-OKVQA multiple choice, InfoSeek.

`vqa_accuracy` follows the official evaluator (vqaEval.py) to the letter, quirks included: the
prediction and the gold answers are normalised only when the annotators disagree (more than one
distinct raw answer); gold answers then get the punctuation step only, the prediction also the
number-word, article and contraction step. Each of the 10 leave-one-out subsets scores
min(1, matches / 3), and the 10 are averaged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from statistics import harmonic_mean
from typing import Any

from dataengine.metrics.vqa_text import normalize_answer, process_digit_article, process_punctuation, strip_whitespace

_NUMBER = r"-?\d+(?:,\d{3})*(?:\.\d+)?"


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction against the raw annotator answers (usually 10)."""
    if not answers:
        raise ValueError("vqa_accuracy needs the annotator answers")
    predicted = strip_whitespace(prediction)
    gold = [strip_whitespace(answer) for answer in answers]
    if len(set(answers)) > 1:
        gold = [process_punctuation(answer) for answer in gold]
        predicted = process_digit_article(process_punctuation(predicted))
    scores = []
    for left_out in range(len(gold)):
        matches = sum(1 for i, answer in enumerate(gold) if i != left_out and answer == predicted)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)


def relaxed_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """1 if any gold answer is a substring of the lower-cased prediction (the GPT-4V study's scripts)."""
    text = prediction.lower()
    return float(any(answer.strip().lower() and answer.strip().lower() in text for answer in answers))


def mc_accuracy(prediction: str | int, choices: Sequence[str], correct_index: int) -> float:
    """A-OKVQA multiple choice: the prediction (a choice's text or index) is the correct choice."""
    if isinstance(prediction, int) and not isinstance(prediction, bool):
        return float(prediction == correct_index)
    return float(str(prediction).strip() == choices[correct_index])


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(_NUMBER, text)]


def _iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    low, high = max(a[0], b[0]), min(a[1], b[1])
    union = max(a[1], b[1]) - min(a[0], b[0])
    return max(high - low, 0.0) / union if union > 0 else float(a == b)


def infoseek_accuracy(prediction: str, answer_eval: Sequence[Any]) -> float:
    """InfoSeek: a numeric answer (`{"wikidata", "range"}`) is right inside its range (a predicted
    range needs IoU >= 0.5); otherwise the normalised prediction must equal a normalised alias."""
    numeric = [a for a in answer_eval if isinstance(a, Mapping) and "range" in a]
    if numeric:
        low, high = sorted(float(v) for v in numeric[0]["range"])
        values = _numbers(prediction)
        if not values:
            return 0.0
        if len(values) >= 2 and re.search(rf"{_NUMBER}\s*(?:-|to|–)\s*{_NUMBER}", prediction):
            predicted = tuple(sorted(values[:2]))
            return float(_iou(predicted, (low, high)) >= 0.5)
        return float(low <= values[0] <= high)
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(str(alias)) for alias in answer_eval))


def infoseek_score(unseen_question: float, unseen_entity: float) -> float:
    """The InfoSeek headline: harmonic mean of the unseen-question and unseen-entity accuracies."""
    return harmonic_mean([unseen_question, unseen_entity]) if unseen_question > 0 and unseen_entity > 0 else 0.0
