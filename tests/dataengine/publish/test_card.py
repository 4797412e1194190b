"""The card: the unit and scale of each depth member, the same metres from every reader, thumbnails."""

import json

import numpy as np
from PIL import Image

from dataengine.publish.card import Location, depth_lines, loading_section


def test_the_card_states_unit_and_scale_of_each_depth_member(tiny_release):
    text = (tiny_release / "README.md").read_text()
    assert "- `depth.png`: 16-bit PNG in millimetres: **metres = value / 1000**; 0 = no measurement; at most 65.535 m" in text
    kitti = depth_lines({"rgb.png": "image", "depth.png": "depth_kitti", "json": "json"})
    assert len(kitti) == 1 and "1/256 m (KITTI): **metres = value / 256**" in kitti[0] and "at most 255.996 m" in kitti[0]
    assert depth_lines({"image.jpg": "image", "json": "json"}) == []
    assert 'ds.with_transform(dataengine.hf_decoder("<release dir>"))' in text
    assert '.decode(dataengine.wds_decoder("<release dir>"))' in text and "numpy.asarray(...) / 1000 is metres" in text


def test_the_card_shows_thumbnails_of_the_first_samples(tiny_release):
    text = (tiny_release / "README.md").read_text()
    for number in range(4):
        assert f"(thumbnails/sample-{number}.png)" in text
        with Image.open(tiny_release / "thumbnails" / f"sample-{number}.png") as image:
            assert image.height == 160 and image.width == 2 * 213 + 4  # the image and its depth, side by side
    assert "![scene-train-0000000 (rgb.png, depth.png)](thumbnails/sample-0.png)" in text
    with Image.open(tiny_release / "thumbnails" / "sample-0.png") as image:
        left, right = np.asarray(image)[:, :213], np.asarray(image)[:, 217:]
    assert left.std() > 0 and right.std() > 0 and not np.array_equal(left, right)


def test_loading_without_depth_and_at_a_hub_repo():
    manifest = json.loads(
        '{"name": "v", "fields": {"image.jpg": "image", "json": "json"}, "splits": {"commonsense": {"num_samples": 3, "shards": [{}]}}}'
    )
    text = loading_section(manifest, Location("org/v"))
    assert 'dataengine.load("hf://datasets/org/v", split="commonsense", batch_size=8)' in text and "metres" not in text
    assert "https://huggingface.co/datasets/org/v/resolve/main/commonsense/v-{000000..000000}.tar" in text
