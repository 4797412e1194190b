"""The `dataengine` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from dataengine.core.catalog import CatalogError, load_catalog
from dataengine.core.plugins import CommandError
from dataengine.core.resources import resolve_catalog
from dataengine.io.atomic import write_bytes_atomic
from dataengine.io.store import is_store_url, local_or_url, redact

T = TypeVar("T")


class ReleaseLocation(click.Path):
    """A release folder, which must exist, or an object store URL (`s3://bucket/releases/x`), kept as given."""

    def __init__(self) -> None:
        super().__init__(exists=True, file_okay=False)

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> object:
        if isinstance(value, str) and is_store_url(value):
            return value
        return super().convert(value, param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="Log more detail (engine decisions, Dask warnings).")
def cli(verbose: bool) -> None:
    """Build reproducible, checked vision dataset releases as WebDataset shards.

    A release is a folder of tar shards per split plus manifest.json (hashes, counts, catalog),
    a dataset card (README.md) that Hugging Face `datasets` reads, and rejects.jsonl.
    """
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


def _run_build(
    catalog: str,
    out: str | None,
    workers: int | None,
    scheduler: str | None,
    limit: int | None,
    overrides: tuple[str, ...],
    force: bool,
    progress: bool,
    retries: int = 2,
    errors: str = "skip",
    verify: bool = False,
) -> Path | str:
    from dataengine.api import build
    from dataengine.run.build import BuildError, PartitionsFailed

    if workers is not None and workers < 0:
        raise CommandError(
            f"--workers {workers}: give 0 (run in this process) or more (default: {os.cpu_count()} = the cores of this machine)"
        )
    if retries < 0:
        raise CommandError(f"--retries {retries}: give 0 or more")
    if workers is not None and scheduler:
        raise CommandError("--workers and --scheduler exclude each other: an existing cluster already has its workers")
    try:
        spec = load_catalog(resolve_catalog(catalog), overrides=overrides, limit=limit)
    except (CatalogError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    out_path = local_or_url(out) if out else Path("releases") / spec.name
    shown = redact(str(out_path))
    click.echo(f"building {spec.name} {spec.version} ({spec.builder}) into {shown}", err=True)
    try:
        result = build(
            spec,
            out_path,
            workers=workers,
            scheduler=scheduler,
            force=force,
            progress=progress,
            retries=retries,
            errors=errors,
            verify=verify,
        )
    except PartitionsFailed as exc:
        raise CommandError(f"{len(exc.failures)} partition(s) failed; rerun the same command to resume", code=1) from None
    except BuildError as exc:
        raise CommandError(str(exc)) from None
    except KeyboardInterrupt:
        raise CommandError(f"interrupted; finished partitions are kept in {shown}: rerun the same command to resume", code=130) from None
    lengths = result.lengths
    counts = ", ".join(f"{split}: {count}" for split, count in lengths.items())
    if len(lengths) > 6:
        counts = f"{len(lengths)} splits, {len(result)} samples"
    state = "already complete" if result.status == "up-to-date" else "done"
    items = f"; from {result.items} planned items" if result.items != len(result) else ""
    click.echo(f"{state}: {redact(str(result.out))}  ({counts}; rejects: {result.manifest.rejects_total}{items})")
    if spec.limit is not None:
        click.echo(
            f"--limit {spec.limit} kept the first {spec.limit} planned items of each split: {result.items} items gave {len(result)} samples "
            "(a builder may write several samples per item, e.g. one per question or per corruption, and rejects some)"
        )
    return result.out


@cli.command()
@click.argument("catalog")
@click.option(
    "--out", "-o", type=click.Path(file_okay=False), help="Release folder or store URL, e.g. s3://bucket/name (default: releases/<name>)."
)
@click.option("--workers", "-w", type=int, help="Local Dask worker processes (default: number of cores; 0: this process, no Dask).")
@click.option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786 (workers must see --out).")
@click.option(
    "--limit",
    type=int,
    help="Keep only the first N planned items of each split (a quick trial); an item may give several samples (questions, corruptions).",
)
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a catalog value, e.g. --set params.width=640 (repeatable)."
)
@click.option("--force", is_flag=True, help="Replace a different release already in --out.")
@click.option("--retries", type=int, default=2, show_default=True, help="Times Dask retries a failing partition before reporting it.")
@click.option(
    "--errors",
    type=click.Choice(["skip", "raise"]),
    default="skip",
    show_default=True,
    help="skip: a bad item becomes a line in rejects.jsonl; raise: it fails its partition with the traceback (debugging).",
)
@click.option(
    "--verify", is_flag=True, help="Before calling a finished release up to date, check every shard's sha256 (sizes are always checked)."
)
@click.option("--no-progress", is_flag=True, help="No progress bar (for logs).")
def build(
    catalog: str,
    out: str | None,
    workers: int | None,
    scheduler: str | None,
    limit: int | None,
    overrides: tuple[str, ...],
    force: bool,
    retries: int,
    errors: str,
    verify: bool,
    no_progress: bool,
) -> None:
    """Build CATALOG (a YAML path or a shipped catalog name) into a release.

    Rerunning an interrupted build resumes it: finished partitions are kept, the rest are redone,
    and the result is byte-identical to an uninterrupted build.
    """
    _run_build(catalog, out, workers, scheduler, limit, overrides, force, not no_progress, retries, errors, verify)


@cli.command()
@click.option("--out", "-o", default="releases/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--workers", "-w", type=int, help="Local Dask worker processes (default: number of cores).")
@click.option("--force", is_flag=True, help="Rebuild even if the demo releases exist.")
def demo(out: str, workers: int | None, force: bool) -> None:
    """Build the offline demo: one small release per installed family (catalogs/demo*.yaml).

    Families whose demo reads files in official formats first write them (over scikit-image's
    photographs, the Middlebury stereo pair) into OUT-sources/<family>.
    """
    from dataengine.core.plugins import demo_steps, load_object

    hints: list[str] = []
    for step in demo_steps():
        if step.sources:
            folder = Path(f"{out}-sources") / step.sources_dir
            if not (folder / ".complete").exists():
                load_object(step.sources)(folder)
                (folder / ".complete").write_text("")
            os.environ[step.env] = str(folder.resolve())
        release = _run_build(step.catalog, f"{out}{step.suffix}", workers, None, None, (), force, True)
        hints += [hint.format(release=release, out=out) for hint in step.hints]
    click.echo("\n" + "\n".join(hints))


@cli.command()
@click.argument("release", type=ReleaseLocation())
@click.option("--no-decode", is_flag=True, help="Skip decoding every image (hashes, counts, keys and schema only).")
def verify(release: str, no_decode: bool) -> None:
    """Re-hash, re-count and decode every shard of RELEASE; exit 1 naming each problem."""
    from dataengine.release.reader import Release
    from dataengine.release.verify import verify_release

    problems = verify_release(release, decode=not no_decode)
    for problem in problems:
        click.secho(f"FAIL {problem}", fg="red")
    if problems:
        sys.exit(1)
    splits = Release.open(release).manifest.splits.values()
    total = sum(entry.num_samples for entry in splits)
    shards = sum(len(entry.shards) for entry in splits)
    click.echo(f"OK {redact(release)}: {shards} shards, {total} samples, hashes, counts, keys, schema and decoding checked")


@cli.command()
@click.argument("shard", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(shard: str, as_json: bool) -> None:
    """Summarise SHARD: keys, members with sizes, and the first sample decoded.

    SHARD may be a release folder: then the first shard of each split is summarised.
    """
    from dataengine.release.inspect import summarize_release, summarize_shard
    from dataengine.release.reader import ReleaseError

    try:
        summaries = summarize_release(shard) if Path(shard).is_dir() else [summarize_shard(shard)]
    except ReleaseError as exc:
        raise CommandError(f"{exc}; or give one shard (a .tar file)", code=1) from None
    except Exception as exc:  # noqa: BLE001 - report any unreadable shard plainly
        raise CommandError(f"{shard} is not a readable shard: {type(exc).__name__}: {exc}", code=1) from None
    if as_json:
        click.echo(json.dumps(summaries if Path(shard).is_dir() else summaries[0], indent=2))
        return
    for number, summary in enumerate(summaries):
        if number:
            click.echo("")
        if "split" in summary:
            click.echo(f"== split {summary['split']}: the first of its {summary['split_shards']} shard(s) ==")
        click.echo(f"{summary['path']}: {summary['samples']} samples, {summary['bytes'] / 1e6:.2f} MB")
        click.echo(f"keys: {', '.join(summary['first_keys'])} ... {summary['last_key']}")
        click.echo("members:")
        for name, info in summary["members"].items():
            click.echo(f"  {name:<14} x{info['count']:<6} mean {info['mean_bytes'] / 1e3:8.1f} kB")
        click.echo("first sample:")
        for name, description in (summary["first_sample"] or {}).items():
            click.echo(f"  {name:<14} {description}")


@cli.command("export", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("layout")
@click.argument("release", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.pass_context
def export(ctx: click.Context, layout: str, release: str, out: str) -> None:
    """Write RELEASE in the folder LAYOUT that existing evaluation code reads.

    Layouts come from the installed families, e.g. kitti-c / nyu-c (RoboDepth's
    OUT/kitti_c/<corruption>/<severity>/kitti_data/..., PNG bytes unchanged) and ssr-cot
    (OUT/ssr-cot.jsonl with the images and <folder>_d/ depth maps, holes filled with each map's
    farthest depth unless --holes keep; OUT/ssr-cot.export.json records the fill). Options after
    OUT (`--name value`) go to the layout's exporter as keywords.
    """
    from inspect import signature

    from dataengine.core.plugins import exporters, load_object

    layouts = exporters()
    if layout not in layouts:
        raise CommandError(f"unknown layout '{layout}'; layouts: {', '.join(sorted(layouts))}")
    exporter = load_object(layouts[layout])
    keywords = _exporter_options(ctx.args)
    try:
        signature(exporter).bind(release, out, **keywords)
    except TypeError as exc:
        raise CommandError(f"layout '{layout}' takes no such option ({exc})") from None
    try:
        count = exporter(release, out, **keywords)
    except (ValueError, FileNotFoundError) as exc:
        raise CommandError(str(exc)) from None
    click.echo(f"wrote {count} files or records under {out}")


def _exporter_options(args: list[str]) -> dict[str, str]:
    """`--holes keep` / `--holes=keep` -> {"holes": "keep"}; anything else is a usage error."""
    keywords: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if not flag.startswith("--") or len(flag) < 3:
            raise CommandError(f"unexpected argument {flag!r}; exporter options look like --name value")
        name, equals, value = flag[2:].partition("=")
        if not equals:
            if not rest or rest[0].startswith("--"):
                raise CommandError(f"--{name} needs a value, e.g. --{name} VALUE")
            value = rest.pop(0)
        keywords[name.replace("-", "_")] = value
    return keywords


@cli.command("depth")
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--source", required=True, help="stereo (Middlebury-style folders: im0.png, im1.png, calib.txt) or model:<checkpoint folder or hub id>."
)
@click.option("--device", help="torch device for a model (default: cuda when present, else cpu).")
@click.option("--batch-size", type=int, default=4, show_default=True)
@click.option(
    "--workers", "-w", type=int, help="Local Dask worker processes, each loading the model once (default: the cores; 0: this process)."
)
@click.option("--scheduler", help="Address of an existing Dask scheduler (workers must see both folders).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def depth_command(
    images_dir: str,
    out_dir: str,
    source: str,
    device: str | None,
    batch_size: int,
    workers: int | None,
    scheduler: str | None,
    no_progress: bool,
) -> None:
    """Depth maps alone: OUT_DIR mirrors IMAGES_DIR with 16-bit millimetre PNGs (clipped at 65.535 m).

    Reruns skip maps already written; unreadable inputs are listed in OUT_DIR/rejects.jsonl.
    """
    from dataengine.run.depth_maps import depth_folder

    try:
        report = depth_folder(
            images_dir,
            out_dir,
            source,
            device=device,
            batch_size=batch_size,
            progress=not no_progress,
            workers=workers,
            scheduler=scheduler,
        )
    except (ValueError, FileNotFoundError, ConnectionError, RuntimeError) as exc:
        raise CommandError(str(exc)) from None
    click.echo(
        f"{report['written']} written, {report['skipped']} already there, {report['rejected']} rejected, "
        f"{report['clipped_pixels']} pixels clipped at 65.535 m; source {report['source']}"
    )


@cli.command()
@click.argument("release", type=ReleaseLocation())
@click.option("--repo-id", required=True, help="The dataset repo, <user or org>/<name>.")
@click.option("--revision", help="Branch to upload to (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--dry-run", is_flag=True, help="List every file and show the card; upload nothing.")
def publish(release: str, repo_id: str, revision: str | None, private: bool, dry_run: bool) -> None:
    """Upload RELEASE to the Hugging Face Hub (resumable; refuses a release that fails verify).

    The token comes from HF_TOKEN or `hf auth login` and is never printed or stored. It is checked,
    and the Hub reached, before anything else; the card names the repo (how to load it from the Hub).
    """
    from dataengine.publish.card import Location, refresh_card, release_card
    from dataengine.publish.hub import PublishError, local_copy, plan_upload
    from dataengine.publish.hub import publish as upload

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CommandError(f"--repo-id {repo_id!r}: write it as <user or org>/<name>", code=1)
    location = Location(repo_id, revision)
    try:
        if not dry_run:
            _check_hub_access()
        with local_copy(release) as folder:  # the folder itself, or a store's release copied locally
            if dry_run:
                plan = plan_upload(folder, repo_id)
                card = release_card(folder, location, write=False)
            else:
                card_path = Path(folder) / "README.md"
                local_card = card_path.read_bytes() if card_path.is_file() else None
                try:
                    refresh_card(folder, location)
                except (OSError, ValueError, tarfile.TarError):
                    pass  # a broken release: the upload's verify (next) names every problem and uploads nothing
                try:
                    plan = _talking_to_the_hub("the upload stopped", lambda: upload(folder, repo_id, revision, private))
                except BaseException:
                    if local_card is not None:  # nothing was published: the card goes back to naming the folder
                        write_bytes_atomic(card_path, local_card)
                    raise
    except PublishError as exc:
        raise CommandError(str(exc), code=1) from None
    for path, size in plan.files:
        click.echo(f"{size:>14,d}  {path}")
    click.echo(
        f"{len(plan.files)} files, {plan.total_bytes / 1e6:.1f} MB -> datasets/{repo_id}"
        + (" (dry run: nothing uploaded)" if dry_run else "")
    )
    if dry_run:
        click.echo("\n--- README.md (dataset card, as it will be uploaded) ---\n" + card)


def _check_hub_access() -> None:
    """A token, then the Hub: each missing one is one error line, before any work."""
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise CommandError("publish needs a Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)", code=1)
    _talking_to_the_hub("cannot check the token", lambda: HfApi().whoami())


def _talking_to_the_hub(doing: str, call: Callable[[], T]) -> T:
    """Run a Hub call; a refused token or an unreachable Hub becomes one line saying what to do."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        return call()
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status == 401:
            raise CommandError(
                "the Hugging Face Hub refused the token (401): set a valid HF_TOKEN or run `hf auth login`", code=1
            ) from None
        if status == 403:
            raise CommandError("the token may not write to this repo (403): use a write token, or a repo you own", code=1) from None
        raise CommandError(f"{doing}: the Hub answered {str(exc).splitlines()[0]}; rerun to resume", code=1) from None
    except Exception as exc:
        if not _is_network_error(exc):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CommandError(
            f"cannot reach the Hugging Face Hub ({reason}); check the network and rerun (the upload resumes)", code=1
        ) from None


def _is_network_error(exc: BaseException) -> bool:
    root = type(exc).__module__.split(".")[0]
    return isinstance(exc, (OSError, TimeoutError)) or root.startswith("httpx") or root in ("requests", "urllib3", "httpcore")


@cli.command()
@click.argument("release", type=click.Path(exists=True, file_okay=False))
def report(release: str) -> None:
    """Write RELEASE/report.html with figures: samples, depth, counts, rejects."""
    from dataengine.publish.report import write_report

    click.echo(f"wrote {write_report(release)}")


@cli.command("validate")
@click.argument("release", type=click.Path(exists=True, file_okay=False))
@click.option("--trainer", help="A registered trainer (default: chosen from what the release holds; image + depth -> depth).")
@click.option("--epochs", type=click.IntRange(min=1), help="Override the recipe's epochs.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--reference", type=click.Path(exists=True, file_okay=False), help="A trusted release: the model must beat its prior there too."
)
@click.option("--against", type=click.Path(exists=True), help="A previous release (or its validation.json): no metric may regress.")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a validate setting, e.g. --set validate.recipe.lr=3e-4."
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def validate(
    release: str,
    trainer: str | None,
    epochs: int | None,
    device: str,
    reference: str | None,
    against: str | None,
    overrides: tuple[str, ...],
    no_progress: bool,
) -> None:
    """Train the reference recipe on RELEASE and gate it: writes RELEASE/validation.json, updates the
    card (and report.html when there is one); exit 0 on pass, 1 on fail, 2 on a usage error.

    A killed or interrupted run resumes from its last epoch checkpoint (RELEASE/.validate/).
    """
    from dataengine.release.reader import ReleaseError
    from dataengine.validate.run import validate_release

    try:
        result = validate_release(
            release,
            trainer=trainer,
            overrides=overrides,
            epochs=epochs,
            device=device,
            reference=reference,
            against=against,
            progress=not no_progress,
        )
    except (CatalogError, ReleaseError, ValueError, KeyError) as exc:
        raise CommandError(str(exc).strip("'\"")) from None
    except ImportError as exc:
        raise CommandError(f"validate needs torch and timm ({exc}); pip install -e '.[models]'") from None
    except KeyboardInterrupt:
        raise CommandError(
            f"interrupted; the last epoch checkpoint is kept in {release}/.validate: rerun the same command to resume", 130
        ) from None
    _refresh_release_pages(release)
    shown = ("abs_rel", "rmse", "a1", "accuracy", "qra_accuracy", "no_depth_accuracy")
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items() if k in shown)
    prior = ", ".join(f"{k} {v:.4f}" for k, v in result["prior"].items() if k in shown)
    click.echo(f"{result['trainer']}: {metrics} (prior baseline: {prior})")
    for reason in result["reasons"]:
        click.secho(f"FAIL {reason}", fg="red")
    click.echo(f"{result['verdict'].upper()}: {release}/validation.json")
    if result["verdict"] != "pass":
        sys.exit(1)


def _refresh_release_pages(release: str) -> None:
    """The card (always) and report.html (when one was made) show the new validation.json."""
    from dataengine.publish.card import refresh_card
    from dataengine.publish.report import write_report

    refresh_card(release)
    if (Path(release) / "report.html").exists():
        write_report(release)


@cli.command("builders")
def list_builders() -> None:
    """List the registered builders: name, the sample kind it writes, and what it builds."""
    from dataengine.core.builder import available_builders, create_builder, describe_builder

    for name in available_builders():
        click.echo(f"{name:<16} {create_builder(name).sample_kind:<8} {describe_builder(name)}")


@cli.command("catalogs")
def list_catalogs_command() -> None:
    """List the shipped catalogs (build one with `dataengine build NAME`), with the variables they need."""
    from dataengine.core.resources import list_catalogs

    for info in list_catalogs():
        needs = f"  [needs {', '.join(info.env)}]" if info.env else ""
        click.echo(f"{info.name:<16} {info.builder:<16} {info.description}{needs}")


def _add_family_commands() -> None:
    from dataengine.core.plugins import families, load_object

    for family in families().values():
        for path in family.commands:
            cli.add_command(load_object(path))


_add_family_commands()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
