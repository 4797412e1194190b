"""Releases read by the tools people train with: torch DataLoader, timm's wds reader, HF datasets."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dataengine.release.load import ReleaseDataset

ALL_TRAIN = [f"scene-train-{i:07d}" for i in range(20)]


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_workers_read_every_key_once(tiny_release, workers):
    dataset = ReleaseDataset(tiny_release, "train", decode="torch", shuffle=True, seed=1, buffer=4)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers)
    samples = list(loader)
    assert sorted(s["__key__"] for s in samples) == ALL_TRAIN
    first = samples[0]
    assert first["rgb.png"].dtype == torch.uint8 and first["depth.png"].dtype == torch.float32
    assert isinstance(first["json"], dict)


def test_float_images(tiny_release):
    sample = next(iter(ReleaseDataset(tiny_release, "train", float_images=True)))
    assert sample["rgb.png"].dtype == np.float32 and 0 <= sample["rgb.png"].min() and sample["rgb.png"].max() <= 1
    assert sample["mask.png"].dtype == np.uint8  # masks keep their ids


def test_timm_wds_reader_through_info_json(tiny_release):
    from timm.data.readers.reader_wds import ReaderWds

    reader = ReaderWds(root=str(tiny_release), split="train", input_key="rgb.png;jpg", target_key="index")
    assert len(reader) == 20
    items = list(iter(reader))
    assert sorted(target for _, target in items) == list(range(20))
    assert items[0][0].size == (96, 72)


def test_timm_create_dataset_exactly_as_the_readme_shows_it(tiny_release):
    """The README's `create_dataset("wds/...")` line, run as it is on a release (only the folder changed)."""
    from timm.data import create_dataset

    readme = (Path(__file__).parents[3] / "README.md").read_text()
    call = re.search(r'create_dataset\("wds/[^\n]*\)', readme).group(0)
    assert 'root="releases/demo"' in call and 'input_key="rgb.png;jpg"' in call
    code = call.replace('root="releases/demo"', f"root={str(tiny_release)!r}")
    dataset = eval(code, {"create_dataset": create_dataset})
    assert len(dataset) == 20
    items = list(dataset)
    assert sorted(target for _, target in items) == list(range(20))  # target_key="index": the record's index field
    assert items[0][0].size == (96, 72)
    loader = torch.utils.data.DataLoader(eval(code, {"create_dataset": create_dataset}), batch_size=None, num_workers=2)
    assert sorted(target for _, target in loader) == list(range(20))


def test_datasets_streaming_and_not(tiny_release):
    import datasets

    streamed = datasets.load_dataset(str(tiny_release), split="validation", streaming=True)
    rows = list(streamed)
    assert sorted(r["__key__"] for r in rows) == [f"scene-validation-{i:07d}" for i in range(6)]
    local = datasets.load_dataset(str(tiny_release), split="validation")
    assert [r["json"] for r in rows] == [r["json"] for r in local]
    assert np.asarray(rows[0]["depth.png"]).dtype == np.uint16


def test_card_yaml_matches_the_manifest(tiny_release):
    text = (tiny_release / "README.md").read_text()
    header = yaml.safe_load(text.split("---")[1])
    manifest = json.loads((tiny_release / "manifest.json").read_text())
    assert header["configs"][0]["data_files"] == [{"split": s, "path": f"{s}/*.tar"} for s in manifest["splits"]]
    declared = {s["name"]: s["num_examples"] for s in header["dataset_info"]["splits"]}
    assert declared == {s: e["num_samples"] for s, e in manifest["splits"].items()}
    assert "webdataset" in header["tags"] and header["license"] == manifest["license"]
    assert manifest["catalog_sha256"] in text
    assert "from the renderer (exact)" in text and "sources: none (generated)" in text
