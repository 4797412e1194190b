"""Helpers shared by the robustness tests: a KITTI-C catalog over a rendered KITTI tree."""

from __future__ import annotations

from pathlib import Path

import yaml


def kitti_c_catalog(directory: Path, sources: dict, corruptions: list[str], severities: list[int], name: str = "kitti_c") -> Path:
    """A `kitti_c` catalog with the clean split, writing to `directory/<name>.yaml`."""
    document = {
        "name": name.replace("_", "-"),
        "version": "0.1.0",
        "builder": "kitti_c",
        "seed": 5,
        "params": {"corruptions": corruptions, "severities": severities},
        "sources": {key: str(value) for key, value in sources.items()},
        "splits": {"test": {}},
        "shards": {"max_samples": 4},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path
