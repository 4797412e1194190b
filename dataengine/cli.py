"""The `dataengine` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from dataengine.catalog import CatalogError, load_catalog
from dataengine.resources import resolve_catalog


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log more detail (engine decisions, Dask warnings).")
def cli(verbose: bool) -> None:
    """Build reproducible, checked vision dataset releases as WebDataset shards.

    A release is a folder of tar shards per split plus manifest.json (hashes, counts, catalog),
    a dataset card (README.md) that Hugging Face `datasets` reads, and rejects.jsonl.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _run_build(catalog: str, out: str | None, workers: int | None, scheduler: str | None, limit: int | None,
               overrides: tuple[str, ...], force: bool, progress: bool, retries: int = 2) -> Path:
    from dataengine.engine import BuildError, build

    if workers is not None and workers < 1:
        _fail(f"--workers {workers}: give at least 1 (default: {os.cpu_count()} = the cores of this machine)")
    if retries < 0:
        _fail(f"--retries {retries}: give 0 or more")
    if workers is not None and scheduler:
        _fail("--workers and --scheduler exclude each other: an existing cluster already has its workers")
    try:
        spec = load_catalog(resolve_catalog(catalog), overrides=overrides, limit=limit)
    except (CatalogError, FileNotFoundError) as exc:
        _fail(str(exc))
    out_path = Path(out or Path("releases") / spec.name)
    click.echo(f"building {spec.name} {spec.version} ({spec.builder}) into {out_path}", err=True)
    try:
        result = build(spec, out_path, workers=workers, scheduler=scheduler, force=force, progress=progress, retries=retries)
    except BuildError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail(f"interrupted; finished partitions are kept in {out_path}: rerun the same command to resume", code=130)
    if result.status == "failed":
        _fail(f"{len(result.failures)} partition(s) failed; rerun the same command to resume", code=1)
    manifest = result.manifest or {}
    splits = manifest.get("splits", {})
    counts = ", ".join(f"{split}: {entry['num_samples']}" for split, entry in splits.items())
    if len(splits) > 6:
        counts = f"{len(splits)} splits, {sum(e['num_samples'] for e in splits.values())} samples"
    state = "already complete" if result.status == "up-to-date" else "done"
    click.echo(f"{state}: {result.out}  ({counts}; rejects: {manifest.get('rejects', {}).get('total', 0)})")
    return result.out


@cli.command()
@click.argument("catalog")
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Release folder (default: releases/<name>).")
@click.option("--workers", "-w", type=int, help="Local Dask worker processes (default: number of cores).")
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786 (workers must see --out).")
@click.option("--limit", type=int, help="Keep only the first N planned samples of each split (a quick trial).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a catalog value, e.g. --set params.width=640 (repeatable).")
@click.option("--force", is_flag=True, help="Replace a different release already in --out.")
@click.option("--retries", type=int, default=2, show_default=True, help="Times Dask retries a failing partition before reporting it.")
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs).")
def build(catalog: str, out: str | None, workers: int | None, scheduler: str | None, limit: int | None,
          overrides: tuple[str, ...], force: bool, retries: int, no_progress: bool) -> None:
    """Build CATALOG (a YAML path or a shipped catalog name) into a release.

    Rerunning an interrupted build resumes it: finished partitions are kept, the rest are redone,
    and the result is byte-identical to an uninterrupted build.
    """
    _run_build(catalog, out, workers, scheduler, limit, overrides, force, not no_progress, retries)


@cli.command()
@click.option("--out", "-o", default="releases/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--workers", "-w", type=int, help="Local Dask worker processes (default: number of cores).")
@click.option("--force", is_flag=True, help="Rebuild even if the demo releases exist.")
def demo(out: str, workers: int | None, force: bool) -> None:
    """Build the offline demo: scenes (catalogs/demo.yaml), knowledge VQA (catalogs/demo-vqa.yaml) and
    SSR-CoT spatial rationales (catalogs/demo-ssr.yaml over scenes, catalogs/demo-ssr-real.yaml).

    The VQA part first writes OK-VQA, A-OKVQA and InfoSeek files in their official formats over
    scikit-image's photographs into OUT-sources/vqa; the real SSR-CoT part writes Visual-CoT, VoCoT
    and LLaVA-CoT style files and the Middlebury stereo pair into OUT-sources/ssr.
    """
    from builders.synthetic_sources import write_ssr_sources, write_vqa_sources

    release = _run_build("demo", out, workers, None, None, (), force, True)
    sources = Path(f"{out}-sources") / "vqa"
    if not (sources / "infoseek_val.jsonl").exists():
        write_vqa_sources(sources)
    os.environ["DEMO_VQA_ROOT"] = str(sources.resolve())
    vqa = _run_build("demo-vqa", f"{out}-vqa", workers, None, None, (), force, True)
    ssr = _run_build("demo-ssr", f"{out}-ssr", workers, None, None, (), force, True)
    ssr_sources = Path(f"{out}-sources") / "ssr"
    if not (ssr_sources / "llava_cot.jsonl").exists():
        write_ssr_sources(ssr_sources)
    os.environ["DEMO_SSR_ROOT"] = str(ssr_sources.resolve())
    ssr_real = _run_build("demo-ssr-real", f"{out}-ssr-real", workers, None, None, (), force, True)
    click.echo(
        "\nload them:\n"
        f"  python -c \"import dataengine; s = next(iter(dataengine.load('{release}', split='train'))); print(s.keys())\"\n"
        f"  python -c \"import datasets; print(datasets.load_dataset('{release}'))\"\n"
        f"  python -c \"import datasets; print(datasets.load_dataset('{vqa}', split='commonsense')[0]['json'])\"\n"
        f"  python -c \"import datasets; r = datasets.load_dataset('{ssr}', split='train')[0]['json']; print(r['question'], r['rationale'], r['answer'], sep='\\n')\"\n"
        f"check them:  dataengine verify {release} && dataengine verify {vqa}\n"
        f"look inside:  dataengine inspect {release}/train/demo-000000.tar\n"
        f"SSR-CoT layout:  dataengine export ssr-cot {ssr_real} {out}-ssr-cot\n"
        f"what was rejected and why:  cat {vqa}/rejects.jsonl {ssr_real}/rejects.jsonl"
    )


@cli.command()
@click.argument("release", type=click.Path(exists=True, file_okay=False))
@click.option("--no-decode", is_flag=True, help="Skip decoding every image (hashes, counts, keys and schema only).")
def verify(release: str, no_decode: bool) -> None:
    """Re-hash, re-count and decode every shard of RELEASE; exit 1 naming each problem."""
    from dataengine.verify import verify_release

    problems = verify_release(release, decode=not no_decode)
    for problem in problems:
        click.secho(f"FAIL {problem}", fg="red")
    if problems:
        sys.exit(1)
    manifest = json.loads((Path(release) / "manifest.json").read_text())
    total = sum(e["num_samples"] for e in manifest["splits"].values())
    shards = sum(len(e["shards"]) for e in manifest["splits"].values())
    click.echo(f"OK {release}: {shards} shards, {total} samples, hashes, counts, keys, schema and decoding checked")


@cli.command()
@click.argument("shard", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(shard: str, as_json: bool) -> None:
    """Summarise SHARD: keys, members with sizes, and the first sample decoded."""
    from dataengine.summary import summarize_shard

    try:
        summary = summarize_shard(shard)
    except Exception as exc:  # noqa: BLE001 - report any unreadable shard plainly
        _fail(f"{shard} is not a readable shard: {type(exc).__name__}: {exc}", code=1)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{summary['path']}: {summary['samples']} samples, {summary['bytes'] / 1e6:.2f} MB")
    click.echo(f"keys: {', '.join(summary['first_keys'])} ... {summary['last_key']}")
    click.echo("members:")
    for name, info in summary["members"].items():
        click.echo(f"  {name:<14} x{info['count']:<6} mean {info['mean_bytes'] / 1e3:8.1f} kB")
    click.echo("first sample:")
    for name, description in (summary["first_sample"] or {}).items():
        click.echo(f"  {name:<14} {description}")


@cli.command("corrupt")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--names", default="kitti-c", show_default=True, help="A set (kitti-c, nyu-c, imagenet-c, all) or comma-separated corruption names.")
@click.option("--severities", default="1-5", show_default=True, help="A range or list, e.g. 1-5, 1-4 or 1,3,5.")
@click.option("--seed", type=int, default=0, show_default=True, help="Every output is seeded by (seed, file, corruption, severity).")
@click.option("--workers", "-w", type=int, help="Local Dask worker processes (default: number of cores).")
@click.option("--scheduler", help="Address of an existing Dask scheduler (workers must see both folders).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def corrupt_command(in_dir: str, out_dir: str, names: str, severities: str, seed: int, workers: int | None, scheduler: str | None, no_progress: bool) -> None:
    """Corrupt every image below IN_DIR into OUT_DIR/<corruption>/<severity>/<relative path>.

    Existing outputs are kept (a rerun finishes an interrupted run); unreadable inputs are listed
    in OUT_DIR/rejects.jsonl.
    """
    from dataengine.corrupt_folder import CorruptionJob, corrupt_folder

    chosen, levels = _corruption_choice(names, severities)
    if workers is not None and workers < 1:
        _fail(f"--workers {workers}: give at least 1")
    if seed < 0:
        _fail(f"--seed {seed}: give a non-negative integer")
    if Path(out_dir).resolve() == Path(in_dir).resolve() or Path(out_dir).resolve().is_relative_to(Path(in_dir).resolve()):
        _fail("OUT_DIR must not be inside IN_DIR (outputs would become inputs on a rerun)")
    job = CorruptionJob(str(Path(in_dir).resolve()), str(Path(out_dir).resolve()), tuple(chosen), tuple(levels), seed)
    try:
        totals = corrupt_folder(job, workers=workers, scheduler=scheduler, progress=not no_progress)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(f"{totals['files']} images: {totals['written']} outputs written, {totals['skipped']} already there, {len(totals['rejects'])} unreadable (see {out_dir}/rejects.jsonl)")
    if totals["rejects"]:
        sys.exit(1)


@cli.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", default="gallery.png", show_default=True, type=click.Path(dir_okay=False), help="Where to write the grid (PNG).")
@click.option("--names", default="kitti-c", show_default=True, help="A set or comma-separated corruption names.")
@click.option("--severities", default="1-5", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--tile-width", type=int, default=240, show_default=True)
def gallery(image: str, output: str, names: str, severities: str, seed: int, tile_width: int) -> None:
    """Draw IMAGE under every corruption and severity as a labelled grid."""
    import numpy as np
    from PIL import Image

    from dataengine.gallery import corruption_grid

    chosen, levels = _corruption_choice(names, severities)
    try:
        with Image.open(image) as handle:
            array = np.asarray(handle.convert("RGB"))
        grid = corruption_grid(array, chosen, levels, seed=seed, tile_width=tile_width)
    except (OSError, ValueError) as exc:
        _fail(f"{image}: {exc}", code=1)
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
        _fail(str(exc))
    return chosen, levels


@cli.command("export")
@click.argument("layout", type=click.Choice(["kitti-c", "nyu-c", "ssr-cot"]))
@click.argument("release", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
def export(layout: str, release: str, out: str) -> None:
    """Write RELEASE in the folder LAYOUT existing evaluation code reads.

    kitti-c: OUT/kitti_c/<corruption>/<severity>/kitti_data/<date>/<drive>/image_02/data/<frame>.png
    plus OUT/kitti_c/clean/..., with the PNG bytes of the shards unchanged.

    ssr-cot: OUT/ssr-cot.jsonl (question, rationale, answer, image_path, depth_path), the images at
    their image_path and the depth maps in <folder>_d/ (uint16 mm PNG).
    """
    from dataengine.export import EXPORTERS

    try:
        count = EXPORTERS[layout](release, out)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(f"wrote {count} {'records' if layout == 'ssr-cot' else 'images'} under {out}")


@cli.command("depth")
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--source", required=True, help="stereo (Middlebury-style folders: im0.png, im1.png, calib.txt) or model:<checkpoint folder or hub id>.")
@click.option("--device", help="torch device for a model (default: cuda when present, else cpu).")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def depth_command(images_dir: str, out_dir: str, source: str, device: str | None, batch_size: int, no_progress: bool) -> None:
    """Depth maps alone: OUT_DIR mirrors IMAGES_DIR with 16-bit millimetre PNGs (clipped at 65.535 m).

    Reruns skip maps already written; unreadable inputs are listed in OUT_DIR/rejects.jsonl.
    """
    from dataengine.depth.folder import depth_folder

    try:
        report = depth_folder(images_dir, out_dir, source, device=device, batch_size=batch_size, progress=not no_progress)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(f"{report['written']} written, {report['skipped']} already there, {report['rejected']} rejected, "
               f"{report['clipped_pixels']} pixels clipped at 65.535 m; source {report['source']}")


@cli.command("score-depth")
@click.option("--release", required=True, type=click.Path(exists=True, file_okay=False), help="A robustness release (kitti_c, nyu_c or depth_c).")
@click.option("--predictions", required=True, type=click.Path(exists=True, file_okay=False), help="<corruption>/<severity>/<frame>.npy files or <corruption>/<severity>.npz (see docs).")
@click.option("--baseline", default="default", show_default=True, help="monodepth2 | adabins | none (default: by builder).")
@click.option("--protocol", type=click.Choice(["kitti", "nyu"]), help="Evaluation protocol (default: by builder).")
@click.option("--disparity", is_flag=True, help="Predictions are disparities (inverted; median scaling handles the scale).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the scores as JSON here.")
def score_depth(release: str, predictions: str, baseline: str, protocol: str | None, disparity: bool, output: str | None) -> None:
    """Score depth predictions on a robustness release: per-split metrics, DEE, mCE, RmCE, mRR."""
    from dataengine.depth_scoring import PredictionError, score_release

    try:
        scores = score_release(release, predictions, protocol, None if baseline == "none" else baseline, disparity)
    except (PredictionError, ValueError) as exc:
        _fail(str(exc), code=1)
    click.echo(f"{'split':<30} {'abs_rel':>8} {'sq_rel':>8} {'rmse':>8} {'a1':>7}")
    for split, values in scores.per_split.items():
        click.echo(f"{split:<30} {values['abs_rel']:8.4f} {values['sq_rel']:8.4f} {values['rmse']:8.3f} {values['a1']:7.4f}")
    click.echo(f"\n{'corruption':<20} {'DEE2':>7}" + ("" if not scores.robustness.get("CE") else f" {'CE':>7}") + f" {'RR':>7}")
    for name, values in scores.dee.items():
        ce = scores.robustness.get("CE", {}).get(name)
        rr = scores.robustness.get("RR", {}).get(name)
        click.echo(f"{name:<20} {values['dee2']:7.4f}" + (f" {ce:7.3f}" if ce is not None else "") + (f" {rr:7.3f}" if rr is not None else ""))
    summary = ", ".join(f"{k} {scores.robustness[k]:.2f}" for k in ("mCE", "RmCE", "mRR") if k in scores.robustness)
    click.echo(f"\n{summary} (baseline: {scores.baseline or 'none'}, protocol: {scores.protocol})")
    if scores.skipped:
        click.echo(f"skipped (no predictions): {', '.join(scores.skipped)}")
    if output:
        Path(output).write_text(json.dumps(scores.as_dict(), indent=2) + "\n")


@cli.command("score-vqa")
@click.option("--release", required=True, type=click.Path(exists=True, file_okay=False), help="A knowledge-VQA release (vqa_knowledge).")
@click.option("--predictions", required=True, type=click.Path(exists=True, dir_okay=False), help='JSONL: {"id": ..., "prediction": ..., "choice": ...}')
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write the scores as JSON here.")
def score_vqa(release: str, predictions: str, output: str | None) -> None:
    """Score VQA predictions: overall, per perspective and per category."""
    from dataengine.vqa_scoring import score_release

    try:
        scores = score_release(release, predictions)
    except ValueError as exc:
        _fail(str(exc), code=1)
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


@cli.command()
@click.argument("release", type=click.Path(exists=True, file_okay=False))
@click.option("--repo-id", required=True, help="The dataset repo, <user or org>/<name>.")
@click.option("--revision", help="Branch to upload to (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--dry-run", is_flag=True, help="List every file and show the card; upload nothing.")
def publish(release: str, repo_id: str, revision: str | None, private: bool, dry_run: bool) -> None:
    """Upload RELEASE to the Hugging Face Hub (resumable; refuses a release that fails verify).

    The token comes from HF_TOKEN or `huggingface-cli login` and is never printed or stored.
    """
    from dataengine.hub import PublishError, plan_upload
    from dataengine.hub import publish as upload

    try:
        plan = plan_upload(release, repo_id) if dry_run else upload(release, repo_id, revision, private)
    except PublishError as exc:
        _fail(str(exc), code=1)
    for path, size in plan.files:
        click.echo(f"{size:>14,d}  {path}")
    click.echo(f"{len(plan.files)} files, {plan.total_bytes / 1e6:.1f} MB -> datasets/{repo_id}" + (" (dry run: nothing uploaded)" if dry_run else ""))
    if dry_run:
        click.echo("\n--- README.md (dataset card) ---\n" + plan.card)


@cli.command()
@click.argument("release", type=click.Path(exists=True, file_okay=False))
def report(release: str) -> None:
    """Write RELEASE/report.html with figures: samples, depth, counts, rejects."""
    from dataengine.report import write_report

    click.echo(f"wrote {write_report(release)}")


@cli.command("builders")
def list_builders() -> None:
    """List the registered builders and the sample kind each writes."""
    from dataengine.builder import available_builders, create_builder

    for name in available_builders():
        click.echo(f"{name:<16} {create_builder(name).sample_kind}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
