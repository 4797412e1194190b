"""The VQA metrics against the official evaluators, one test per oracle case (shared/oracles beside the repository).

Each line of the oracle files was scored by the benchmark's own, unmodified evaluation code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builders.vqa.scoring import is_difficult
from dataengine.metrics.vqa import aokvqa_direct_accuracy, infoseek_accuracy, mc_accuracy, vqa_accuracy

ORACLES = Path(__file__).resolve().parents[3] / ".." / "shared" / "oracles"


def oracle_cases(name: str) -> list[Any]:
    """One pytest param per line of an oracle file; a single failing param when the file is missing."""
    path = ORACLES / name
    if not path.is_file():
        return [pytest.param(None, id=f"{name}-missing")]
    lines = path.read_text().splitlines()
    return [pytest.param(json.loads(line), id=f"{name.split('-')[0]}-line{number}") for number, line in enumerate(lines, 1) if line.strip()]


def require(case: dict[str, Any] | None) -> dict[str, Any]:
    if case is None:
        pytest.fail(f"oracle files not found under {ORACLES.resolve()} (a copy of shared/ must sit beside the repository)")
    return case


@pytest.mark.parametrize("case", oracle_cases("vqa-official.jsonl"))
def test_vqa_accuracy_equals_vqaeval(case):
    """vqaEval.py stores round(100 * accuracy, 2) per question: ours, rounded the same way, is that number."""
    case = require(case)
    ours = round(100 * vqa_accuracy(case["prediction"], case["gold"]), 2)
    assert abs(ours / 100 - case["official"] / 100) <= 1e-9, (ours, case)


@pytest.mark.parametrize("case", oracle_cases("aokvqa-official.jsonl"))
def test_aokvqa_equals_eval_aokvqa(case):
    case = require(case)
    choice = mc_accuracy(case["choice_prediction"], case["choices"], case["correct_choice_idx"])
    assert choice == case["official_choice"]
    record = {"id": "oracle", "source": "aokvqa", "difficult_direct_answer": case["difficult_direct_answer"]}
    assert is_difficult(record) == (case["official_direct"] is None)
    if case["official_direct"] is not None:
        assert aokvqa_direct_accuracy(case["direct_prediction"], case["direct_answers"]) == pytest.approx(case["official_direct"], abs=1e-9)


@pytest.mark.parametrize("case", oracle_cases("infoseek-official.jsonl"))
def test_infoseek_accuracy_equals_infoseek_eval(case):
    case = require(case)
    assert infoseek_accuracy(case["prediction"], case["answer_eval"], case["question_type"]) == case["official"]
