"""SSR-CoT fixtures: a catalog writer and one rendered-scenes release shared by the SSR tests."""

from __future__ import annotations

import pytest
import yaml

from builders.ssr.scenes import KINDS
from dataengine.api import build
from dataengine.core.catalog import BuildSpec, load_catalog


def ssr_catalog(directory, builder, params, splits, sources=None, name="ssr") -> BuildSpec:
    """A small SSR catalog written to `directory` and loaded."""
    document = {
        "name": name,
        "version": "0.0.1",
        "builder": builder,
        "description": "test",
        "license": "cc-by-4.0",
        "seed": 5,
        "params": params,
        "splits": splits,
        "shards": {"max_samples": 8, "max_bytes": "64MB"},
    }
    if sources:
        document["sources"] = sources
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return load_catalog(path)


@pytest.fixture(scope="session")
def scenes_release(tmp_path_factory):
    """Rendered scenes with every question kind weighted alike, so each kind (and "no" / zero
    answers) shows up in a small build."""
    directory = tmp_path_factory.mktemp("ssr-scenes")
    spec = ssr_catalog(
        directory,
        "ssr_cot_scenes",
        {"width": 320, "height": 240, "objects": [2, 4], "questions_per_scene": 3, "question_mix": dict.fromkeys(KINDS, 1)},
        {"train": {"num_samples": 24}},
    )
    build(spec, directory / "release", workers=1, progress=False)
    return directory / "release"
