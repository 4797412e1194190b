"""`dataengine depth --source stereo`: a pair with a broken calibration is one reject that says why."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from skimage import data

from dataengine.run.depth_maps import depth_folder

CALIB = "cam0=[{f} 0 {cx}; 0 {f} {cy}; 0 0 1]\ndoffs={doffs}\nbaseline=193.001\n"


def write_pair(folder, calib: str) -> None:
    left, right, _ = data.stereo_motorcycle()
    folder.mkdir(parents=True)
    Image.fromarray(left[:160, :240]).save(folder / "im0.png")
    Image.fromarray(right[:160, :240]).save(folder / "im1.png")
    (folder / "calib.txt").write_text(calib)


def test_a_broken_calibration_is_a_reject_and_the_other_pair_is_written(tmp_path):
    images = tmp_path / "images"
    write_pair(images / "good", CALIB.format(f=3979.911 / 4, cx=311.2, cy=254.9, doffs=124.343 / 4))
    write_pair(images / "broken", "cam0=[995 0 311.2]\nbaseline=193.001\n")
    report = depth_folder(images, tmp_path / "out", "stereo", progress=False, workers=0)
    assert report["written"] == 1 and report["rejected"] == 1
    assert (tmp_path / "out" / "good" / "im0.png").is_file() and not (tmp_path / "out" / "broken").exists()
    (reject,) = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert "broken/im0.png" in reject["key"]
    assert "is not a Middlebury calibration" in reject["reason"] and "cam0 has 3 numbers, not 9" in reject["reason"]
    depth = np.asarray(Image.open(tmp_path / "out" / "good" / "im0.png"))
    assert depth.dtype == np.uint16 and (depth > 0).mean() > 0.3
