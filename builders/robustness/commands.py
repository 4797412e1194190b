"""The robustness family's commands: corrupt a folder, draw a corruption gallery, score depth predictions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from dataengine.core.plugins import CommandError


@click.command("corrupt")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--names", default="kitti-c", show_default=True, help="A set (kitti-c, nyu-c, imagenet-c, all) or comma-separated corruption names."
)
@click.option("--severities", default="1-5", show_default=True, help="A range or list, e.g. 1-5, 1-4 or 1,3,5.")
@click.option("--seed", type=int, default=0, show_default=True, help="Every output is seeded by (seed, file, corruption, severity).")
@click.option("--workers", "-w", type=int, help="Local Dask worker processes (default: number of cores).")
@click.option("--scheduler", help="Address of an existing Dask scheduler (workers must see both folders).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def corrupt_command(
    in_dir: str, out_dir: str, names: str, severities: str, seed: int, workers: int | None, scheduler: str | None, no_progress: bool
) -> None:
    """Corrupt every image below IN_DIR into OUT_DIR/<corruption>/<severity>/<relative path>.

    Existing outputs are kept (a rerun finishes an interrupted run); unreadable inputs are listed
    in OUT_DIR/rejects.jsonl.
    """
    from builders.robustness.corrupt_folder import CorruptionJob, corrupt_folder

    chosen, levels = _corruption_choice(names, severities)
    if workers is not None and workers < 0:
        raise CommandError(f"--workers {workers}: give 0 (this process) or more")
    if seed < 0:
        raise CommandError(f"--seed {seed}: give a non-negative integer")
    if Path(out_dir).resolve() == Path(in_dir).resolve() or Path(out_dir).resolve().is_relative_to(Path(in_dir).resolve()):
        raise CommandError("OUT_DIR must not be inside IN_DIR (outputs would become inputs on a rerun)")
    job = CorruptionJob(str(Path(in_dir).resolve()), str(Path(out_dir).resolve()), tuple(chosen), tuple(levels), seed)
    try:
        totals = corrupt_folder(job, workers=workers, scheduler=scheduler, progress=not no_progress)
    except (ValueError, ConnectionError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    click.echo(
        f"{totals['files']} images: {totals['written']} outputs written, {totals['skipped']} already there, {len(totals['rejects'])} unreadable (see {out_dir}/rejects.jsonl)"
    )
    if totals["rejects"]:
        sys.exit(1)


@click.command("gallery")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--output", "-o", default="gallery.png", show_default=True, type=click.Path(dir_okay=False), help="Where to write the grid (PNG)."
)
@click.option("--names", default="kitti-c", show_default=True, help="A set or comma-separated corruption names.")
@click.option("--severities", default="1-5", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tile-width", type=int, default=240, show_default=True)
def gallery_command(image: str, output: str, names: str, severities: str, seed: int, tile_width: int) -> None:
    """Draw IMAGE under every corruption and severity as a labelled grid."""
    import numpy as np
    from PIL import Image

    from builders.robustness.gallery import corruption_gallery

    chosen, levels = _corruption_choice(names, severities)
    try:
        with Image.open(image) as handle:
            array = np.asarray(handle.convert("RGB"))
        grid = corruption_gallery(array, chosen, levels, seed=seed, tile_width=tile_width)
    except (OSError, ValueError) as exc:
        raise CommandError(f"{image}: {exc}", code=1) from None
    grid.save(output)
    click.echo(f"wrote {output} ({len(chosen)} corruptions x {len(levels)} severities, {grid.width}x{grid.height})")


def _corruption_choice(names: str, severities: str) -> tuple[list[str], list[int]]:
    from corruptions import get, parse_severities
    from corruptions import names as corruption_set
    from corruptions.registry import SETS

    try:
        chosen = corruption_set(names) if names in SETS else [get(n.strip()).name for n in names.split(",") if n.strip()]
        levels = parse_severities(severities)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    return chosen, levels


@click.command("score-depth")
@click.option(
    "--release", required=True, type=click.Path(exists=True, file_okay=False), help="A robustness release (kitti_c, nyu_c or depth_c)."
)
@click.option(
    "--predictions",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="<corruption>/<severity>/<frame>.npy files or <corruption>/<severity>.npz (see docs).",
)
@click.option("--baseline", default="default", show_default=True, help="monodepth2 | adabins | none (default: by builder).")
@click.option("--protocol", type=click.Choice(["kitti", "nyu"]), help="Evaluation protocol (default: by builder).")
@click.option(
    "--disparity",
    is_flag=True,
    help="Predictions are disparities: resized to the ground truth, then inverted (monodepth2's order); median scaling handles the scale.",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Full precision. By default scores follow RoboDepth's scripts: metrics rounded to 3 decimals per split, DEE to 3 decimals.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the scores as JSON here.")
def score_depth(
    release: str, predictions: str, baseline: str, protocol: str | None, disparity: bool, exact: bool, output: str | None
) -> None:
    """Score depth predictions on a robustness release: per-split metrics, DEE, mCE, RmCE, mRR."""
    from builders.robustness.scoring import PredictionError, score_release

    try:
        scores = score_release(release, predictions, protocol, None if baseline == "none" else baseline, disparity, exact)
    except (PredictionError, ValueError) as exc:
        raise CommandError(str(exc), code=1) from None
    click.echo(f"{'split':<30} {'abs_rel':>8} {'sq_rel':>8} {'rmse':>8} {'a1':>7}")
    for split, values in scores.per_split.items():
        click.echo(f"{split:<30} {values['abs_rel']:8.4f} {values['sq_rel']:8.4f} {values['rmse']:8.3f} {values['a1']:7.4f}")
    click.echo(f"\n{'corruption':<20} {'DEE2':>7}" + ("" if not scores.robustness.get("CE") else f" {'CE':>7}") + f" {'RR':>7}")
    for name, values in scores.dee.items():
        ce = scores.robustness.get("CE", {}).get(name)
        rr = scores.robustness.get("RR", {}).get(name)
        click.echo(
            f"{name:<20} {values['dee2']:7.4f}" + (f" {ce:7.3f}" if ce is not None else "") + (f" {rr:7.3f}" if rr is not None else "")
        )
    summary = ", ".join(f"{k} {scores.robustness[k]:.2f}" for k in ("mCE", "RmCE", "mRR") if k in scores.robustness)
    rounding = "exact" if scores.exact else "RoboDepth rounding"
    click.echo(f"\n{summary} (baseline: {scores.baseline or 'none'}, protocol: {scores.protocol}, {rounding})")
    if scores.skipped:
        click.echo(f"skipped (no predictions): {', '.join(scores.skipped)}")
    if output:
        Path(output).write_text(json.dumps(scores.as_dict(), indent=2) + "\n")
