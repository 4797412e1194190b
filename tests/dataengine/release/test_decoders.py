"""One depth whatever the reader: dataengine.load, datasets (with and without streaming) and webdataset
give the same float32 metres, in millimetre and in KITTI (1/256 m) releases."""

import io

import datasets
import numpy as np
import pytest
import torch
import webdataset as wds
from PIL import Image

import dataengine
from dataengine.core.depth_png import decode_depth_png, encode_depth_png
from dataengine.release.decoders import HFDecoder


def test_the_three_readers_agree_on_depth_in_metres(tiny_release):
    release = str(tiny_release)
    ours = {s["__key__"]: s for s in dataengine.load(release, split="validation")}
    hf = datasets.load_dataset(release, split="validation").with_transform(dataengine.hf_decoder(release))
    streamed = datasets.load_dataset(release, split="validation", streaming=True).map(dataengine.hf_decoder(release))
    web = wds.WebDataset(f"{release}/validation/tiny-{{000000..000001}}.tar", shardshuffle=False).decode(dataengine.wds_decoder(release))
    readers = {"datasets": list(hf), "datasets streaming": list(streamed), "webdataset": list(web)}
    for name, rows in readers.items():
        assert sorted(row["__key__"] for row in rows) == sorted(ours), name
        for row in rows:
            sample = ours[row["__key__"]]
            assert row["depth.png"].dtype == np.float32 and row["depth.png"].max() > 1.0, name  # metres, not millimetres
            np.testing.assert_array_equal(row["depth.png"], sample["depth.png"], err_msg=name)
            np.testing.assert_array_equal(row["rgb.png"], sample["rgb.png"], err_msg=name)
            np.testing.assert_array_equal(row["mask.png"], sample["mask.png"], err_msg=name)
            assert row["json"] == sample["json"], name
    batch = hf[:2]  # with_transform also serves slices (columns as lists)
    np.testing.assert_array_equal(batch["depth.png"][1], ours[batch["__key__"][1]]["depth.png"])


def test_the_webdataset_decoder_with_torch_and_other_handlers(tiny_release):
    urls = f"{tiny_release}/validation/tiny-000000.tar"
    sample = next(iter(wds.WebDataset(urls, shardshuffle=False).decode(dataengine.wds_decoder(tiny_release, decode="torch"))))
    assert sample["rgb.png"].shape == (3, 72, 96) and sample["depth.png"].dtype == torch.float32
    # members the release does not declare are left to the next handler
    only_depth = dataengine.wds_decoder({"depth.png": "depth"})
    mixed = next(iter(wds.WebDataset(urls, shardshuffle=False).decode(only_depth, "rgb8")))
    assert mixed["depth.png"].dtype == np.float32 and mixed["rgb.png"].dtype == np.uint8 and mixed["rgb.png"].shape == (72, 96, 3)
    both = f"{tiny_release}/validation/tiny-{{000000..000001}}.tar"
    loader = torch.utils.data.DataLoader(
        wds.WebDataset(both, shardshuffle=False).decode(dataengine.wds_decoder(tiny_release)), batch_size=None, num_workers=2
    )
    assert len(list(loader)) == 6  # the handler pickles into DataLoader workers
    with pytest.raises(ValueError, match="decode must be 'numpy' or 'torch'"):
        dataengine.wds_decoder(tiny_release, decode=None)


def test_kitti_units_are_honoured_by_every_decoder():
    """A `depth_kitti` member holds 1/256 m: the same PNG read as millimetres would be 3.9x off."""
    depth = np.array([[0.0, 1.5], [80.25, 255.0]], dtype=np.float32)
    png, _ = encode_depth_png(depth, 256.0)
    kinds = {"depth.png": "depth_kitti"}
    web = dataengine.wds_decoder(kinds)(".depth.png", png)
    pil = HFDecoder(kinds)({"depth.png": Image.open(io.BytesIO(png))})["depth.png"]
    undecoded = HFDecoder(kinds)({"depth.png": [{"bytes": png, "path": None}]})["depth.png"][0]
    for value in (web, pil, undecoded):
        np.testing.assert_allclose(value, depth, atol=1 / 512)
        assert value.dtype == np.float32
    assert not np.allclose(decode_depth_png(png), depth, atol=1)  # millimetres would be wrong
