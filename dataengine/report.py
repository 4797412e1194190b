"""`dataengine report`: report.html with figures (matplotlib), written into the release.

Figures: a gallery of samples (depth as a colour map; a corruption grid for robustness sets;
questions under the images of VQA releases), a depth histogram, counts per split and category,
and reject reasons. Validation metrics are shown when the release holds `validation.json`.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.loading import ReleaseDataset

REPORT_DIR = "report"


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=100)


def _save(plt, figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, format="png")
    plt.close(figure)


def _members(manifest: dict[str, Any], kind: str) -> list[str]:
    return [name for name, k in manifest["fields"].items() if k == kind or (kind == "depth" and k.startswith("depth"))]


def _samples(release: Path, split: str, count: int) -> list[dict[str, Any]]:
    samples = []
    for sample in ReleaseDataset(release, split):
        samples.append(sample)
        if len(samples) == count:
            break
    return samples


def gallery(release: Path, manifest: dict[str, Any], out: Path) -> str | None:
    images, depths = _members(manifest, "image"), _members(manifest, "depth")
    splits = [s for s, e in manifest["splits"].items() if e["num_samples"]]
    if not images or not splits:
        return None
    samples = _samples(release, splits[0], 6)
    columns = 2 if depths else 3
    rows = len(samples) if depths else (len(samples) + 2) // 3
    plt, figure = _figure(10, 2.4 * rows)
    for i, sample in enumerate(samples):
        ax = figure.add_subplot(rows, columns, i * 2 + 1 if depths else i + 1)
        ax.imshow(sample[images[0]])
        ax.set_axis_off()
        record = sample.get("json") or {}
        if "question" in record:
            ax.set_title(record["question"][:60], fontsize=8)
        for obj in record.get("objects", []):
            x0, y0, x1, y1 = obj["box_2d"]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color="yellow", linewidth=1))
        if depths:
            depth = sample[depths[0]]
            ax = figure.add_subplot(rows, columns, i * 2 + 2)
            shown = ax.imshow(np.where(depth > 0, depth, np.nan), cmap="magma_r")
            figure.colorbar(shown, ax=ax, fraction=0.03, label="m")
            ax.set_axis_off()
    path = out / "gallery.png"
    _save(plt, figure, path)
    return path.name


def corruption_grid(release: Path, manifest: dict[str, Any], out: Path) -> str | None:
    """One frame across every corruption (rows) and severity (columns) of a robustness set."""
    if manifest.get("sample_kind") != "depth_c":
        return None
    by_config: dict[str, dict[int, np.ndarray]] = {}
    frame = None
    for split in manifest["splits"]:
        config = split.split("/")[0]
        sample = next(iter(ReleaseDataset(release, split)), None)
        if sample is None:
            continue
        frame = frame or sample["json"]["frame"]
        by_config.setdefault(config, {})[sample["json"]["severity"]] = sample["rgb.png"]
    severities = sorted({s for row in by_config.values() for s in row})
    plt, figure = _figure(1.2 + 2.2 * len(severities), 1.0 * len(by_config) + 0.5)
    for r, (config, row) in enumerate(by_config.items()):
        for c, severity in enumerate(severities):
            ax = figure.add_subplot(len(by_config), len(severities), r * len(severities) + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if severity in row:
                ax.imshow(row[severity])
            else:
                ax.set_frame_on(False)
            if c == 0:
                ax.set_ylabel(config, fontsize=7, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title("clean" if severity == 0 else f"severity {severity}", fontsize=8)
    path = out / "corruptions.png"
    _save(plt, figure, path)
    return path.name


def depth_histogram(release: Path, manifest: dict[str, Any], out: Path) -> str | None:
    depths = _members(manifest, "depth")
    splits = [s for s, e in manifest["splits"].items() if e["num_samples"]]
    if not depths or not splits:
        return None
    values = np.concatenate([s[depths[0]][s[depths[0]] > 0].ravel() for s in _samples(release, splits[0], 16)])
    plt, figure = _figure(6, 3)
    ax = figure.add_subplot(1, 1, 1)
    ax.hist(values, bins=80, color="#3b6ea8")
    ax.set_xlabel("depth (m)")
    ax.set_ylabel("pixels")
    ax.set_title(f"valid depth, first 16 samples of {splits[0]}")
    path = out / "depth_histogram.png"
    _save(plt, figure, path)
    return path.name


def bars(counts: dict[str, int], title: str, path: Path) -> str | None:
    if not counts:
        return None
    plt, figure = _figure(7, 0.5 + 0.28 * len(counts))
    ax = figure.add_subplot(1, 1, 1)
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color="#5b8f5b")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=7)
    _save(plt, figure, path)
    return path.name


def write_report(release: str | Path) -> Path:
    """Write `report.html` and its figures (in `report/`) into the release; returns the HTML path."""
    release = Path(release)
    manifest = json.loads((release / "manifest.json").read_text())
    out = release / REPORT_DIR
    out.mkdir(exist_ok=True)
    stats = json.loads((release / "stats.json").read_text()) if (release / "stats.json").exists() else {}
    categories: Counter = Counter()
    for split, table in stats.get("dataset", {}).get("categories", {}).items():
        for category, values in table.items():
            categories[f"{split} / {category}"] = values["questions"]
    figures = [
        ("Samples", gallery(release, manifest, out)),
        ("One frame under every corruption and severity", corruption_grid(release, manifest, out)),
        ("Depth", depth_histogram(release, manifest, out)),
        ("Samples per split", bars({s: e["num_samples"] for s, e in manifest["splits"].items()}, "samples per split", out / "splits.png")),
        ("Questions per category", bars(dict(categories), "questions per category", out / "categories.png")),
        ("Rejects", bars(manifest["rejects"]["by_reason"], f"{manifest['rejects']['total']} rejected samples by reason", out / "rejects.png")),
    ]
    sections = "\n".join(
        f'<section><h2>{html.escape(title)}</h2><img src="{REPORT_DIR}/{name}" alt="{html.escape(title)}"></section>' for title, name in figures if name
    )
    validation = release / "validation.json"
    if validation.exists():
        sections += f"<section><h2>Validation</h2><pre>{html.escape(validation.read_text())}</pre></section>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(manifest['name'])} {html.escape(manifest['version'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}} img{{max-width:100%;border:1px solid #ddd}} td,th{{padding:2px 10px;text-align:left}}</style>
</head><body>
<h1>{html.escape(manifest['name'])} {html.escape(manifest['version'])}</h1>
<p>{html.escape(manifest.get('description', ''))}</p>
<table><tr><th>builder</th><td>{html.escape(manifest['builder'])}</td></tr>
<tr><th>seed</th><td>{manifest['seed']}</td></tr>
<tr><th>catalog sha256</th><td><code>{manifest['catalog_sha256']}</code></td></tr>
<tr><th>samples</th><td>{sum(e['num_samples'] for e in manifest['splits'].values())}</td></tr>
<tr><th>rejects</th><td>{manifest['rejects']['total']}</td></tr></table>
{sections}
</body></html>
"""
    path = release / "report.html"
    path.write_text(page)
    return path
