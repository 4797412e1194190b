"""Shared fixtures: small catalogs and releases built once per session with a real Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataengine.api import build
from dataengine.core.catalog import load_catalog


def write_catalog(directory: Path, name: str = "tiny", **changes) -> Path:
    """A small scenes catalog; `changes` replace top-level keys (params are merged)."""
    document = {
        "name": name,
        "version": "0.0.1",
        "builder": "scenes",
        "description": "test release",
        "license": "cc-by-4.0",
        "seed": 11,
        "params": {"width": 96, "height": 72, "objects": [1, 4], "min_visible_pixels": 4},
        "splits": {"train": {"num_samples": 20}, "validation": {"num_samples": 6}},
        "shards": {"max_samples": 4, "max_bytes": "64MB"},
    }
    params = changes.pop("params", {})
    document["params"].update(params)
    document.update(changes)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("catalogs"))


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, tiny_catalog) -> Path:
    """The tiny catalog built once with two worker processes."""
    out = tmp_path_factory.mktemp("releases") / "tiny"
    result = build(load_catalog(tiny_catalog), out, workers=2, progress=False)
    assert result.status == "built"
    return out
