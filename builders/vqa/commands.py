"""The knowledge-VQA family's commands: score predictions on a release."""

from __future__ import annotations

import json
from pathlib import Path

import click

from dataengine.core.plugins import CommandError


@click.command("score-vqa")
@click.option("--release", required=True, type=click.Path(exists=True, file_okay=False), help="A knowledge-VQA release (vqa_knowledge).")
@click.option(
    "--predictions",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help='JSONL: {"id": ..., "prediction": ..., "choice": "<A-OKVQA choice text>"}',
)
@click.option(
    "--partial", is_flag=True, help="Score only the questions that have a prediction (by default every question of the release needs one)."
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the scores as JSON here.")
def score_vqa(release: str, predictions: str, partial: bool, output: str | None) -> None:
    """Score VQA predictions by each benchmark's official rules: overall, per perspective and per category.

    Every question of the release needs a prediction (exit 1 naming how many are missing) unless
    --partial; a prediction for an id that is not a question of the release is an error.
    """
    from builders.vqa.scoring import METRICS, score_release

    try:
        scores = score_release(release, predictions, partial=partial)
    except ValueError as exc:
        raise CommandError(str(exc), code=1) from None
    names = [m for m in METRICS if m in scores["overall"]]
    click.echo(f"{'perspective / category':<52} {'n':>5} " + " ".join(f"{m:>16}" for m in names))
    for row in scores["per_perspective"]:
        click.echo(f"{row['perspective']:<52} {row['questions']:>5} " + " ".join(f"{_pct(row.get(m)):>16}" for m in names))
        for cat in (c for c in scores["per_category"] if c["perspective"] == row["perspective"]):
            click.echo(f"  {cat['category'][:50]:<50} {cat['questions']:>5} " + " ".join(f"{_pct(cat.get(m)):>16}" for m in names))
    click.echo(f"{'overall':<52} {scores['questions']:>5} " + " ".join(f"{_pct(scores['overall'].get(m)):>16}" for m in names))
    if scores["aokvqa_difficult_left_out"]:
        click.echo(
            f"{scores['aokvqa_difficult_left_out']} A-OKVQA questions marked difficult_direct_answer are left out of the direct-answer "
            "scores (accuracy, relaxed_accuracy), as the official evaluation does"
        )
    if scores["mc_choices_not_text"]:
        click.echo(
            f"{scores['mc_choices_not_text']} multiple-choice predictions are not a choice's text (an index?): scored 0, as officially"
        )
    if "infoseek" in scores:
        _echo_infoseek(scores["infoseek"])
    if scores["missing_predictions"]:
        total = scores["questions"] + scores["missing_predictions"]
        click.echo(f"--partial: {scores['missing_predictions']} of the {total} questions have no prediction and are not scored")
    if output:
        Path(output).write_text(json.dumps(scores, indent=2) + "\n")


def _echo_infoseek(infoseek: dict[str, float]) -> None:
    """InfoSeek's headline, on the official 0-100 scale, with the two split scores it comes from."""
    click.echo(
        f"InfoSeek final_score (official: harmonic mean of the unseen-question and unseen-entity scores): {infoseek['final_score']:.2f}"
        f"  [unseen question {infoseek['unseen_question_score']:.2f} over {infoseek['unseen_question_questions']},"
        f" unseen entity {infoseek['unseen_entity_score']:.2f} over {infoseek['unseen_entity_questions']}]"
    )
    for split in ("unseen_question", "unseen_entity"):
        if not infoseek[f"{split}_questions"]:
            click.echo(
                f"  the {split.replace('_', '-')} split has no predictions: it scores 0, so final_score is 0, as in the official script"
            )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"
