"""The robustness family's report figure: one frame across every corruption and severity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dataengine.publish.report import figure, save
from dataengine.release.reader import Release


def severity_grid(release: Release, out: Path) -> str | None:
    """Rows: corruptions (and clean); columns: severities; the first sample of each split."""
    by_config: dict[str, dict[int, np.ndarray]] = {}
    for split in release.splits:
        sample = next(release.samples(split), None)
        if sample is not None:
            by_config.setdefault(split.split("/")[0], {})[sample["json"]["severity"]] = sample["rgb.png"]
    if not by_config:
        return None
    severities = sorted({s for row in by_config.values() for s in row})
    plt, fig = figure(1.2 + 2.2 * len(severities), 1.0 * len(by_config) + 0.5)
    for r, (config, row) in enumerate(by_config.items()):
        for c, severity in enumerate(severities):
            ax = fig.add_subplot(len(by_config), len(severities), r * len(severities) + c + 1)
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
    save(plt, fig, path)
    return path.name
