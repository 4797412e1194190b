"""`export kitti-c` writes the paths RoboDepth's KITTI-C loader opens, from either split-file style.

RoboDepth's loader (`datasets/mono_dataset_kittic.py` with `kitti_dataset_kittic.py` in its model
zoo) reads MonoDepth2 split lines `<date>/<drive> <frame> l|r` and opens
`kitti_c/<corruption>/<severity>/kitti_data/<date>/<drive>/image_0{2,3}/data/<frame:010d>.png`
(`kitti_c/clean/kitti_data/...` for clean). `loader_paths` below rebuilds those paths from the lines.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from builders.fixtures import write_kitti_tree
from builders.robustness.export import robodepth_frame_path
from builders.robustness.scoring import score_release
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.catalog import load_catalog
from tests.builders.robustness.conftest import kitti_c_catalog

CORRUPTIONS = ["pixelate", "brightness"]
SEVERITIES = [1, 4]
ROBODEPTH_PATH = re.compile(
    r"^kitti_c/(clean|[a-z_]+/[1-5])/kitti_data/\d{4}_\d{2}_\d{2}/\d{4}_\d{2}_\d{2}_drive_\d{4}_sync/image_0[23]/data/\d{10}\.png$"
)


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    """A rendered KITTI tree whose first drive also has a right camera (image_03, a copy of image_02)."""
    tree = write_kitti_tree(tmp_path_factory.mktemp("kitti"), frames_per_drive=2, drives=2)
    right = [line.replace("image_02", "image_03") for line in tree.lines if "drive_0002" in line]
    for line in right:
        for root in (tree.root, tree.gt_root):
            (root / line).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / line.replace("image_03", "image_02"), root / line)
    return tree, tree.lines + right


def monodepth2_line(kitti_c_line: str) -> str:
    """`kitti_data/<date>/<drive>/image_0X/data/<frame>.png` -> `<date>/<drive> <frame> l|r`."""
    date, drive, camera, _, name = kitti_c_line.split("/")[1:]
    return f"{date}/{drive} {name.split('.')[0]} {'l' if camera == 'image_02' else 'r'}"


def loader_paths(split_lines: list[str]) -> set[str]:
    """The files RoboDepth's loader opens for these MonoDepth2-style lines, every split."""
    folders = ["clean"] + [f"{name}/{level}" for name in CORRUPTIONS for level in SEVERITIES]
    paths = set()
    for line in split_lines:
        folder, frame, side = line.split()
        camera = {"l": "image_02", "r": "image_03"}[side]
        paths.update(f"kitti_c/{top}/kitti_data/{folder}/{camera}/data/{int(frame):010d}.png" for top in folders)
    return paths


def build_release(directory: Path, root: Path, gt_root: Path, lines: list[str]) -> Path:
    split_file = directory / "split.txt"
    split_file.write_text("\n".join(lines) + "\n")
    sources = {"root": root, "split_file": split_file, "gt_root": gt_root}
    result = build(
        load_catalog(kitti_c_catalog(directory, sources, CORRUPTIONS, SEVERITIES)), directory / "release", workers=0, progress=False
    )
    assert result.status == "built" and result.manifest["rejects"]["total"] == 0
    return directory / "release"


@pytest.fixture(scope="module")
def exports(tmp_path_factory, kitti):
    """Both split styles built and exported: {style: (release, export root, split lines)}."""
    tree, kitti_c_lines = kitti
    monodepth2_lines = [monodepth2_line(line) for line in kitti_c_lines]
    styles = {
        "kitti_c": (tree.root, tree.gt_root, kitti_c_lines),
        "monodepth2": (tree.root / "kitti_data", tree.gt_root / "kitti_data", monodepth2_lines),
    }
    result = {}
    for style, (root, gt_root, lines) in styles.items():
        directory = tmp_path_factory.mktemp(style)
        release = build_release(directory, root, gt_root, lines)
        out = directory / "export"
        run = CliRunner().invoke(cli, ["export", "kitti-c", str(release), str(out)])
        assert run.exit_code == 0, run.output
        result[style] = (release, out, lines)
    return result


def exported(out: Path) -> set[str]:
    return {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}


@pytest.mark.parametrize("style", ["kitti_c", "monodepth2"])
def test_every_exported_path_is_where_robodepth_looks(exports, style):
    _, out, lines = exports[style]
    names = exported(out)
    assert len(names) == len(lines) * (1 + len(CORRUPTIONS) * len(SEVERITIES))
    assert all(ROBODEPTH_PATH.match(name) for name in names), sorted(names)[:3]
    assert names == loader_paths(exports["monodepth2"][2])
    assert sum("/image_03/" in name for name in names) == 2 * (1 + len(CORRUPTIONS) * len(SEVERITIES))


def test_both_split_styles_export_the_same_file_names(exports):
    assert exported(exports["kitti_c"][1]) == exported(exports["monodepth2"][1])


def test_predictions_in_the_exported_layout_are_found(tmp_path, exports):
    """score-depth finds per-frame predictions mirroring the export, whatever the split style."""
    release, out, _ = exports["monodepth2"]
    for path in exported(out):
        target = tmp_path / Path(path).relative_to("kitti_c").with_suffix(".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, np.full((192, 640), 0.05, dtype=np.float32))
    scores = score_release(release, tmp_path, disparity=True)
    assert not scores.skipped and len(scores.per_split) == 1 + len(CORRUPTIONS) * len(SEVERITIES)


@pytest.mark.parametrize(
    "frame,expected",
    [
        (
            "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png",
            "kitti_data/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png",
        ),
        (
            "kitti_data/2011_09_26/2011_09_26_drive_0002_sync/image_03/data/0000000069.png",
            "kitti_data/2011_09_26/2011_09_26_drive_0002_sync/image_03/data/0000000069.png",
        ),
        (
            "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.jpg",
            "kitti_data/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png",
        ),
        ("official_splits/test/bathroom/rgb_00045.jpg", "official_splits/test/bathroom/rgb_00045.jpg"),
    ],
)
def test_robodepth_frame_path(frame, expected):
    assert robodepth_frame_path(frame) == expected


def test_an_out_folder_named_kitti_c_is_not_nested_again(tmp_path, exports):
    """`export kitti-c RELEASE /data/kitti_c` writes /data/kitti_c/<corruption>/..., not /data/kitti_c/kitti_c/..."""
    release, parent, _ = exports["kitti_c"]
    out = tmp_path / "data" / "kitti_c"
    run = CliRunner().invoke(cli, ["export", "kitti-c", str(release), str(out)])
    assert run.exit_code == 0, run.output
    assert not (out / "kitti_c").exists()
    assert {f"kitti_c/{name}" for name in exported(out)} == exported(parent)
