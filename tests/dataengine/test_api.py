"""The Python API beside the CLI: dataengine.build returns the release; list_catalogs describes the shipped ones."""

import numpy as np
import pytest

import dataengine
from dataengine.api import BuiltRelease
from dataengine.core.catalog import CatalogError
from tests.conftest import write_catalog


def test_build_returns_a_release_ready_to_load(tmp_path):
    catalog = write_catalog(tmp_path)
    release = dataengine.build(catalog, out=tmp_path / "r", workers=0, limit=5, overrides=["params.width=64"], progress=False)
    assert isinstance(release, BuiltRelease) and release.status == "built" and release.out == (tmp_path / "r").resolve()
    assert release.splits == ["train", "validation"] and release.configs == {"default": ["train", "validation"]}
    assert release.lengths == {"train": 5, "validation": 5} and len(release) == 10 and release.items == 10
    assert release.manifest["overrides"] == ["params.width=64"] and release.manifest.rejects_total == 0
    batch = next(iter(release.load("train", batch_size=4, decode="torch")))
    assert batch["rgb.png"].shape == (4, 3, 72, 64) and len(batch["json"]) == 4
    sample = next(iter(release.load("validation")))
    assert sample["depth.png"].dtype == np.float32 and sample["rgb.png"].shape == (72, 64, 3)
    again = dataengine.build(catalog, out=tmp_path / "r", workers=0, limit=5, overrides=["params.width=64"], progress=False)
    assert again.status == "up-to-date" and again.lengths == release.lengths
    with pytest.raises(CatalogError, match=r"--set 'params.widht=64': params.widht: unknown key \(did you mean 'width'\?\)"):
        dataengine.build(catalog, out=tmp_path / "x", overrides=["params.widht=64"], progress=False)
    assert not (tmp_path / "x").exists()


def test_list_catalogs_describes_the_shipped_catalogs():
    catalogs = {info.name: info for info in dataengine.list_catalogs()}
    assert {"demo", "scenes", "kitti-c", "vqa-knowledge"} <= set(catalogs)
    assert catalogs["demo"].builder == "scenes" and catalogs["demo"].description.startswith("A small release of procedural scenes")
    assert catalogs["kitti-c"].env == ("KITTI_ROOT", "KITTI_SPLIT_FILE", "KITTI_GT_ROOT") and catalogs["demo"].env == ()
    assert all("\n" not in info.description and info.description for info in catalogs.values())


def test_import_dataengine_stays_light():
    import subprocess
    import sys

    code = "import sys, dataengine; dataengine.build; print(sorted(m for m in ('torch', 'datasets') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
