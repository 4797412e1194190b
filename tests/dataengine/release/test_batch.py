"""Batches: torch's DataLoader as it is, `batch_size=` on the dataset, `dataengine.collate`, CHW tensors."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import dataengine
from dataengine.release.batch import Record, collate
from dataengine.release.load import ReleaseDataset

ALL_TRAIN = [f"scene-train-{i:07d}" for i in range(20)]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_plain_dataloader_batches_on_the_first_try(tiny_release, workers):
    loader = torch.utils.data.DataLoader(dataengine.load(tiny_release, "train", decode="torch"), batch_size=8, num_workers=workers)
    batches = list(loader)
    assert sorted(key for batch in batches for key in batch["__key__"]) == ALL_TRAIN
    first = batches[0]
    assert first["rgb.png"].shape == (8, 3, 72, 96) and first["rgb.png"].dtype == torch.uint8  # CHW, as timm and torchvision expect
    assert first["depth.png"].shape == (8, 72, 96) and first["depth.png"].dtype == torch.float32
    assert isinstance(first["json"], list) and len(first["json"]) == 8 and all(isinstance(r, dict) for r in first["json"])
    assert [record["key"] for record in first["json"]] == first["__key__"]


@pytest.mark.parametrize("workers", [0, 2])
def test_batch_size_on_the_dataset(tiny_release, workers):
    dataset = dataengine.load(tiny_release, "train", batch_size=8, decode="torch", shuffle=True, seed=3, buffer=4)
    batches = list(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers))
    assert sorted(key for batch in batches for key in batch["__key__"]) == ALL_TRAIN
    assert all(len(batch["__key__"]) <= 8 for batch in batches) and batches[0]["rgb.png"].shape[1:] == (3, 72, 96)
    if workers == 0:
        assert [len(batch["__key__"]) for batch in batches] == [8, 8, 4] and len(dataset) == 3
    full = dataengine.load(tiny_release, "train", batch_size=8, drop_last=True)
    assert [len(batch["__key__"]) for batch in full] == [8, 8] and len(full) == 2


@pytest.mark.parametrize("workers", [0, 2])
def test_dataengine_collate_in_a_dataloader(tiny_release, workers):
    loader = torch.utils.data.DataLoader(
        dataengine.load(tiny_release, "train"), batch_size=6, num_workers=workers, collate_fn=dataengine.collate
    )
    batches = list(loader)
    assert sorted(key for batch in batches for key in batch["__key__"]) == ALL_TRAIN
    assert isinstance(batches[0]["rgb.png"], np.ndarray) and batches[0]["rgb.png"].shape == (6, 72, 96, 3)  # numpy stays numpy, HWC


def test_collate_stacks_arrays_and_keeps_records_as_lists():
    samples = [{"__key__": f"k{i}", "x": np.full((2, 3), i), "t": torch.full((3,), i), "json": Record(a=i)} for i in range(3)]
    batch = collate(samples)
    assert batch["__key__"] == ["k0", "k1", "k2"] and batch["json"] == [{"a": 0}, {"a": 1}, {"a": 2}]
    assert batch["x"].shape == (3, 2, 3) and batch["x"][2, 0, 0] == 2
    assert isinstance(batch["t"], torch.Tensor) and batch["t"].shape == (3, 3)
    ragged = [{"image.jpg": np.zeros((4, 5, 3))}, {"image.jpg": np.zeros((6, 5, 3))}]
    with pytest.raises(ValueError, match=r"member 'image.jpg' has 2 shapes in one batch .*ragged='list'"):
        collate(ragged)
    assert [a.shape for a in collate(ragged, ragged="list")["image.jpg"]] == [(4, 5, 3), (6, 5, 3)]
    with pytest.raises(ValueError, match="have different members"):
        collate([{"__key__": "a", "x": 1}, {"__key__": "b"}])


def test_torch_images_are_chw_and_equal_the_numpy_ones(tiny_release):
    as_numpy = next(iter(ReleaseDataset(tiny_release, "validation")))
    as_torch = next(iter(ReleaseDataset(tiny_release, "validation", decode="torch")))
    as_float = next(iter(ReleaseDataset(tiny_release, "validation", decode="torch", float_images=True)))
    assert as_numpy["rgb.png"].shape == (72, 96, 3) and as_torch["rgb.png"].shape == (3, 72, 96)
    assert as_torch["rgb.png"].is_contiguous() and as_float["rgb.png"].dtype == torch.float32
    np.testing.assert_array_equal(as_torch["rgb.png"].numpy(), as_numpy["rgb.png"].transpose(2, 0, 1))
    np.testing.assert_allclose(as_float["rgb.png"].numpy() * 255, as_numpy["rgb.png"].transpose(2, 0, 1), atol=1e-4)
    np.testing.assert_array_equal(as_torch["depth.png"].numpy(), as_numpy["depth.png"])  # depth stays HxW metres
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        ReleaseDataset(tiny_release, "train", batch_size=0)


def test_decode_torch_without_torch_is_one_clear_error(tiny_release, tmp_path):
    """Not a corrupt sample: with errors="skip" it used to yield nothing and exit 0."""
    script = tmp_path / "no_torch.py"
    script.write_text(
        "import sys\n"
        "sys.modules['torch'] = None  # as if torch were not installed\n"
        "import dataengine\n"
        f"samples = list(dataengine.load({str(tiny_release)!r}, 'validation'))\n"
        "print('numpy decoding works:', len(samples))\n"
        f"dataengine.load({str(tiny_release)!r}, 'validation', decode='torch', errors='skip')\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert result.returncode == 1
    assert "numpy decoding works: 6" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: decode='torch' needs torch: pip install torch (or pip install -e '.[models]'), or use decode='numpy'"
    )
