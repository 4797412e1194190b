"""`dataengine corrupt` and `dataengine gallery` on a small folder of real photographs."""

import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from builders.robustness.recipe import corrupted_output
from dataengine.cli import cli
from tests.corruptions.conftest import photo


def make_folder(root):
    (root / "drive" / "image_02").mkdir(parents=True)
    Image.fromarray(photo("astronaut", (96, 64))).save(root / "drive" / "image_02" / "0000000001.png")
    Image.fromarray(photo("chelsea", (96, 64))).save(root / "0000000002.png")
    (root / "broken.png").write_bytes(b"\x89PNG truncated")
    (root / "notes.txt").write_text("not an image")


def test_corrupt_folder_layout_regeneration_and_resume(tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    make_folder(source)
    args = [
        "corrupt",
        str(source),
        str(out),
        "--names",
        "gaussian_noise,pixelate",
        "--severities",
        "1-2",
        "--seed",
        "42",
        "--workers",
        "2",
        "--no-progress",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1  # one unreadable input: reported, the rest written
    assert "3 images: 8 outputs written" in result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert written == sorted(
        f"{n}/{s}/{r}" for n in ("gaussian_noise", "pixelate") for s in (1, 2) for r in ("0000000002.png", "drive/image_02/0000000001.png")
    )
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rejects] == ["broken.png"]

    # any single output is regenerable alone from (seed, relative path, corruption, severity)
    clean = np.asarray(Image.open(source / "drive" / "image_02" / "0000000001.png"))
    regenerated = corrupted_output(clean, "gaussian_noise", 2, 42, "drive/image_02/0000000001.png")
    assert np.array_equal(np.asarray(Image.open(out / "gaussian_noise" / "2" / "drive" / "image_02" / "0000000001.png")), regenerated)

    (out / "pixelate" / "1" / "0000000002.png").unlink()
    again = CliRunner().invoke(cli, args)
    assert "1 outputs written, 7 already there" in again.output


def test_corrupt_rejects_bad_arguments(tmp_path):
    source = tmp_path / "in"
    make_folder(source)
    result = CliRunner().invoke(cli, ["corrupt", str(source), str(tmp_path / "o"), "--names", "fgo"])
    assert result.exit_code == 2 and "did you mean 'fog'" in result.output
    result = CliRunner().invoke(cli, ["corrupt", str(source), str(tmp_path / "o"), "--severities", "0-9"])
    assert result.exit_code == 2 and "severity must be an integer from 1 to 5" in result.output
    result = CliRunner().invoke(cli, ["corrupt", str(source), str(source / "out")])
    assert result.exit_code == 2 and "must not be inside IN_DIR" in result.output


def test_gallery_draws_a_labelled_grid(tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray(photo("coffee", (128, 64))).save(image)
    output = tmp_path / "grid.png"
    result = CliRunner().invoke(
        cli, ["gallery", str(image), "-o", str(output), "--names", "nyu-c", "--severities", "1-4", "--tile-width", "64"]
    )
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(output))
    assert grid.shape == (24 + 15 * 32, 150 + 5 * 64, 3)
    # the clean column repeats the same tile in every row; severity columns differ from it
    first_row, second_row = grid[24:56, 150:214], grid[56:88, 150:214]
    assert np.array_equal(first_row, second_row)
    assert not np.array_equal(grid[24:56, 214:278], first_row)
