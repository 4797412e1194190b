"""`dataengine report`: report.html with figures (matplotlib), written into the release.

Figures: a gallery of samples (depth as a colour map; each family's caption and boxes through its
builder's `sample_overlay`), a depth histogram, counts per split and category, reject reasons, and
whatever figures the family adds (`Builder.report_figures`, e.g. a corruption grid). Validation
metrics are shown when the release holds `validation.json`.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.core.builder import Builder, create_builder
from dataengine.publish.probe_summary import probe_rows
from dataengine.release.reader import Release

REPORT_DIR = "report"


def figure(width: float, height: float) -> tuple[Any, Any]:
    """(pyplot, a new figure) with the headless backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def save(plt: Any, fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def _samples(release: Release, split: str, count: int) -> list[dict[str, Any]]:
    return list(islice(release.samples(split), count))


def gallery(release: Release, builder: Builder, out: Path) -> str | None:
    manifest = release.manifest
    images, depths = manifest.members("image"), manifest.members("depth")
    splits = [s for s, e in manifest.splits.items() if e.num_samples]
    if not images or not splits:
        return None
    samples = _samples(release, splits[0], 6)
    columns = 2 if depths else 3
    rows = len(samples) if depths else (len(samples) + 2) // 3
    plt, fig = figure(10, 2.4 * rows)
    for i, sample in enumerate(samples):
        ax = fig.add_subplot(rows, columns, i * 2 + 1 if depths else i + 1)
        ax.imshow(sample[images[0]])
        ax.set_axis_off()
        caption, boxes = builder.sample_overlay(sample.get("json") or {})
        if caption:
            ax.set_title(caption[:60], fontsize=8)
        for x0, y0, x1, y1 in boxes:
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", linewidth=1))
        if depths:
            depth = sample[depths[0]]
            ax = fig.add_subplot(rows, columns, i * 2 + 2)
            shown = ax.imshow(np.where(depth > 0, depth, np.nan), cmap="magma_r")
            fig.colorbar(shown, ax=ax, fraction=0.03, label="m")
            ax.set_axis_off()
    path = out / "gallery.png"
    save(plt, fig, path)
    return path.name


def depth_histogram(release: Release, out: Path) -> str | None:
    depths = release.manifest.members("depth")
    splits = [s for s, e in release.manifest.splits.items() if e.num_samples]
    if not depths or not splits:
        return None
    values = np.concatenate([s[depths[0]][s[depths[0]] > 0].ravel() for s in _samples(release, splits[0], 16)])
    plt, fig = figure(6, 3)
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(values, bins=80, color="#3b6ea8")
    ax.set_xlabel("depth (m)")
    ax.set_ylabel("pixels")
    ax.set_title(f"valid depth, first 16 samples of {splits[0]}")
    path = out / "depth_histogram.png"
    save(plt, fig, path)
    return path.name


def bars(counts: dict[str, int], title: str, path: Path) -> str | None:
    if not counts:
        return None
    plt, fig = figure(7, 0.5 + 0.28 * len(counts))
    ax = fig.add_subplot(1, 1, 1)
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="#5b8f5b")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    save(plt, fig, path)
    return path.name


def learning_curve(result: dict[str, Any], path: Path) -> str | None:
    """Training loss per epoch of the reference model."""
    history = result.get("history") or []
    if not history:
        return None
    plt, fig = figure(6, 3)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([row["epoch"] for row in history], [row["loss"] for row in history], marker="o", color="#3b6ea8")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{result.get('trainer', '')} reference model")
    save(plt, fig, path)
    return path.name


def least_learnable_gallery(release: Release, result: dict[str, Any], path: Path) -> str | None:
    """Thumbnails of the highest-loss training samples, with their loss."""
    rows = {row["key"]: row for row in result.get("least_learnable") or []}
    images = release.manifest.members("image")
    if not rows or not images:
        return None
    split = next(iter(rows.values()))["split"]
    found = [sample for sample in release.samples(split) if sample["__key__"] in rows]
    found.sort(key=lambda sample: -rows[sample["__key__"]]["loss"])
    columns = min(4, len(found))
    plt, fig = figure(2.6 * columns, 2.2 * ((len(found) + columns - 1) // columns))
    for i, sample in enumerate(found):
        ax = fig.add_subplot((len(found) + columns - 1) // columns, columns, i + 1)
        ax.imshow(sample[images[0]])
        ax.set_title(f"{sample['__key__']}\nloss {rows[sample['__key__']]['loss']:.3f}", fontsize=7)
        ax.set_axis_off()
    save(plt, fig, path)
    return path.name


def validation_sections(release: Release, result: dict[str, Any], out: Path) -> str:
    """The verdict, the metrics against the baselines, the learning curve, the least learnable samples."""
    reasons = "".join(f"<li>{html.escape(reason)}</li>" for reason in result.get("reasons", []))
    columns = [("model", result.get("metrics", {})), ("prior baseline", result.get("prior", {}))]
    if "reference" in result:
        columns.append(("on the reference", result["reference"]["metrics"]))
    header = "".join(f"<th>{html.escape(title)}</th>" for title, _ in columns)
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{values.get(name, float('nan')):.4f}</td>" for _, values in columns) + "</tr>"
        for name in result.get("metrics", {})
    )
    parts = [
        f"<section><h2>Validation: {html.escape(result['verdict'])}</h2><ul>{reasons}</ul>"
        f"<table><tr><th>metric</th>{header}</tr>{rows}</table></section>"
    ]
    if result.get("probes"):
        probe_table = "".join(
            f"<tr><td>{html.escape(title)}</td><td>{html.escape(measure)}</td><td>{html.escape(value)}</td></tr>"
            for title, measure, value in probe_rows(result["probes"])
        )
        parts.append(f"<section><h2>Probes</h2><table><tr><th>probe</th><th>measure</th><th>value</th></tr>{probe_table}</table></section>")
    for title, name in (
        ("Learning curve", learning_curve(result, out / "learning_curve.png")),
        ("Least learnable training samples", least_learnable_gallery(release, result, out / "least_learnable.png")),
    ):
        if name:
            parts.append(f'<section><h2>{html.escape(title)}</h2><img src="{REPORT_DIR}/{name}" alt="{html.escape(title)}"></section>')
    return "\n".join(parts)


def write_report(release: str | Path) -> Path:
    """Write `report.html` and its figures (in `report/`) into the release; returns the HTML path."""
    source = Release.open(release)
    release = source.path
    manifest = source.manifest.document
    builder = create_builder(source.manifest.builder)
    out = release / REPORT_DIR
    out.mkdir(exist_ok=True)
    stats = json.loads((release / "stats.json").read_text()) if (release / "stats.json").exists() else {}
    categories: Counter = Counter()
    for split, table in stats.get("dataset", {}).get("categories", {}).items():
        for category, values in table.items():
            categories[f"{split} / {category}"] = values["questions"]
    figures = [
        ("Samples", gallery(source, builder, out)),
        *builder.report_figures(source, out),
        ("Depth", depth_histogram(source, out)),
        ("Samples per split", bars({s: e["num_samples"] for s, e in manifest["splits"].items()}, "samples per split", out / "splits.png")),
        ("Questions per category", bars(dict(categories), "questions per category", out / "categories.png")),
        (
            "Rejects",
            bars(manifest["rejects"]["by_reason"], f"{manifest['rejects']['total']} rejected samples by reason", out / "rejects.png"),
        ),
    ]
    sections = "\n".join(
        f'<section><h2>{html.escape(title)}</h2><img src="{REPORT_DIR}/{name}" alt="{html.escape(title)}"></section>'
        for title, name in figures
        if name
    )
    validation = release / "validation.json"
    if validation.exists():
        sections += validation_sections(source, json.loads(validation.read_text()), out)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(manifest["name"])} {html.escape(manifest["version"])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} img{{max-width:100%;border:1px solid #ddd}} td,th{{padding:2px 10px;text-align:left}}</style>
</head><body>
<h1>{html.escape(manifest["name"])} {html.escape(manifest["version"])}</h1>
<p>{html.escape(manifest.get("description", ""))}</p>
<table><tr><th>builder</th><td>{html.escape(manifest["builder"])}</td></tr>
<tr><th>seed</th><td>{manifest["seed"]}</td></tr>
<tr><th>catalog sha256</th><td><code>{manifest["catalog_sha256"]}</code></td></tr>
<tr><th>samples</th><td>{sum(e["num_samples"] for e in manifest["splits"].values())}</td></tr>
<tr><th>rejects</th><td>{manifest["rejects"]["total"]}</td></tr></table>
{sections}
</body></html>
"""
    path = release / "report.html"
    path.write_text(page)
    return path
