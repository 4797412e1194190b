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
    help='JSONL: {"id": ..., "prediction": ..., "choice": ...}',
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the scores as JSON here.")
def score_vqa(release: str, predictions: str, output: str | None) -> None:
    """Score VQA predictions: overall, per perspective and per category."""
    from builders.vqa.scoring import score_release

    try:
        scores = score_release(release, predictions)
    except ValueError as exc:
        raise CommandError(str(exc), code=1) from None
    names = [m for m in ("accuracy", "relaxed_accuracy", "mc_accuracy") if m in scores["overall"]]
    click.echo(f"{'perspective / category':<52} {'n':>5} " + " ".join(f"{m:>16}" for m in names))
    for row in scores["per_perspective"]:
        click.echo(f"{row['perspective']:<52} {row['questions']:>5} " + " ".join(f"{_pct(row.get(m)):>16}" for m in names))
        for cat in (c for c in scores["per_category"] if c["perspective"] == row["perspective"]):
            click.echo(f"  {cat['category'][:50]:<50} {cat['questions']:>5} " + " ".join(f"{_pct(cat.get(m)):>16}" for m in names))
    click.echo(f"{'overall':<52} {scores['questions']:>5} " + " ".join(f"{_pct(scores['overall'].get(m)):>16}" for m in names))
    if "infoseek_harmonic_mean" in scores:
        click.echo(f"InfoSeek (harmonic mean of unseen question / entity): {100 * scores['infoseek_harmonic_mean']:.2f}")
    if scores["missing_predictions"]:
        click.echo(f"{scores['missing_predictions']} questions have no prediction (not scored)")
    if output:
        Path(output).write_text(json.dumps(scores, indent=2) + "\n")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"
