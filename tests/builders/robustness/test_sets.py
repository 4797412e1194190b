"""KITTI-C, NYUDepth2-C and depth_c builders on source trees in the real layouts; export; scoring."""

from __future__ import annotations

import json
import operator
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import dataengine
from builders.fixtures import write_kitti_tree, write_nyu_tree
from builders.robustness.sets import frame_key
from corruptions import corrupt
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.catalog import BuildSpec, load_catalog
from dataengine.core.fields import encode_image
from dataengine.core.rng import sample_rng
from dataengine.io.tar import read_samples
from dataengine.release.verify import verify_release
from dataengine.run.build import BuildError

CORRUPTIONS = ["fog", "dark", "glass_blur"]


def catalog(directory: Path, builder: str, sources: dict, **params) -> Path:
    import yaml

    document = {
        "name": builder.replace("_", "-"),
        "version": "0.1.0",
        "builder": builder,
        "seed": 5,
        "params": {"corruptions": CORRUPTIONS, "severities": [1, 3], **params},
        "sources": {k: str(v) for k, v in sources.items()},
        "splits": {"test": {}},
        "shards": {"max_samples": 3},
    }
    path = directory / f"{builder}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def one_corruption(directory: Path, sources: dict, corruption: str, severity: int) -> BuildSpec:
    """A KITTI-C catalog of one corruption at one severity, without the clean frames."""
    return load_catalog(catalog(directory, "kitti_c", sources, corruptions=[corruption], severities=[severity], clean=False))


@pytest.fixture(scope="module")
def kitti(tmp_path_factory):
    return write_kitti_tree(tmp_path_factory.mktemp("kitti"), frames_per_drive=2, drives=2)


@pytest.fixture(scope="module")
def kitti_release(tmp_path_factory, kitti):
    directory = tmp_path_factory.mktemp("kitti-c")
    spec = load_catalog(catalog(directory, "kitti_c", {"root": kitti.root, "split_file": kitti.split_file, "gt_root": kitti.gt_root}))
    result = build(spec, directory / "release", workers=2, progress=False)
    assert result.status == "built"
    return directory / "release"


def test_layout_configs_and_splits(kitti_release):
    manifest = json.loads((kitti_release / "manifest.json").read_text())
    assert list(manifest["splits"]) == ["clean/test"] + [f"{c}/severity_{s}" for c in CORRUPTIONS for s in (1, 3)]
    assert all(entry["num_samples"] == 4 for entry in manifest["splits"].values())
    assert manifest["fields"] == {"rgb.png": "image", "json": "json", "depth.png": "depth_kitti"}
    assert (kitti_release / "fog" / "severity_3" / "kitti-c-000000.tar").exists()
    assert verify_release(kitti_release) == []
    card = (kitti_release / "README.md").read_text()
    assert "corruptions: dark, fog, glass_blur at severities [1, 3]" in card and "from the source's ground truth" in card


def test_hf_loads_one_config_and_split(kitti_release):
    import datasets

    ds = datasets.load_dataset(str(kitti_release), "fog", split="severity_3")
    assert ds.num_rows == 4 and isinstance(ds.features["rgb.png"], datasets.Image)
    assert {row["json"]["corruption"] for row in ds} == {"fog"} and {row["json"]["severity"] for row in ds} == {3}
    clean = datasets.load_dataset(str(kitti_release), "clean", split="test")
    assert clean.num_rows == 4


def test_every_image_regenerates_alone_and_depth_is_untouched(kitti_release, kitti):
    for sample in dataengine.load(kitti_release, config="glass_blur", split="severity_3"):
        record = sample["json"]
        source = np.asarray(Image.open(kitti.root / record["frame"]))
        resized = np.asarray(Image.fromarray(source).resize((640, 192), Image.Resampling.LANCZOS))
        # The recorded recipe names the generator as a user reaches it: `dataengine.rng.sample_rng`.
        assert record["rng"] == "dataengine.rng.sample_rng(seed, frame, '<corruption>/<severity>')"
        generator = operator.attrgetter(record["rng"].split("(")[0].removeprefix("dataengine."))(dataengine)
        assert generator is sample_rng
        regenerated = corrupt(resized, "glass_blur", 3, seed=generator(5, record["frame"], "glass_blur/3"))
        assert np.array_equal(sample["rgb.png"], regenerated)
        gt = np.asarray(Image.open(kitti.gt_root / record["frame"])).astype(np.float32) / 256
        assert sample["depth.png"].shape == (375, 1242)
        np.testing.assert_array_equal(sample["depth.png"], gt)
        assert record["source_width"] == 1242 and record["width"] == 640
    clean = {s["json"]["frame"]: s["rgb.png"] for s in dataengine.load(kitti_release, config="clean", split="test")}
    frame = kitti.lines[0]
    expected = np.asarray(Image.fromarray(np.asarray(Image.open(kitti.root / frame))).resize((640, 192), Image.Resampling.LANCZOS))
    assert np.array_equal(clean[frame], expected)


def test_export_writes_the_published_layout_byte_identical(tmp_path, kitti_release, kitti):
    result = CliRunner().invoke(cli, ["export", "kitti-c", str(kitti_release), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "out" / "kitti_c"
    assert sorted(p.name for p in root.iterdir()) == sorted(["clean", *CORRUPTIONS])
    frame = kitti.lines[1]
    assert (root / "clean" / frame).exists() and (root / "fog" / "3" / frame).exists()
    shard_bytes = {}
    for shard in (kitti_release / "dark" / "severity_1").glob("*.tar"):
        for _, members in read_samples(shard):
            shard_bytes[json.loads(members["json"])["frame"]] = members["rgb.png"]
    assert all((root / "dark" / "1" / f).read_bytes() == data for f, data in shard_bytes.items())
    assert len(list(root.rglob("*.png"))) == 4 * 7


def perfect_predictions(directory: Path, kitti, scale: float = 1.0) -> Path:
    for folder in ["clean"] + [f"{c}/{s}" for c in CORRUPTIONS for s in (1, 3)]:
        for frame in kitti.lines:
            gt = np.asarray(Image.open(kitti.gt_root / frame)).astype(np.float32) / 256
            target = directory / folder / Path(frame).with_suffix(".npy")
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, np.where(gt > 0, gt, 20.0) * scale)
    return directory


def test_score_depth_perfect_and_scaled_predictions(tmp_path, kitti_release, kitti):
    from builders.robustness.scoring import score_release

    predictions = perfect_predictions(tmp_path / "preds", kitti, scale=2.5)  # median scaling removes the scale
    scores = score_release(kitti_release, predictions)
    assert scores.protocol == "kitti" and scores.baseline == "monodepth2"
    assert all(v["abs_rel"] < 1e-6 and v["a1"] == 1.0 for v in scores.per_split.values())
    assert scores.robustness["mCE"] == pytest.approx(0.0, abs=1e-4) and scores.robustness["mRR"] == pytest.approx(100.0)
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(cli, ["score-depth", "--release", str(kitti_release), "--predictions", str(predictions), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "mCE 0.00" in result.output and json.loads(out.read_text())["mRR"] == pytest.approx(100.0)


def test_score_depth_refuses_misaligned_predictions(tmp_path, kitti_release, kitti):
    predictions = perfect_predictions(tmp_path / "preds", kitti)
    shutil.rmtree(predictions / "fog")
    from builders.robustness.scoring import PredictionError, score_release

    assert score_release(kitti_release, predictions).skipped == ["fog/severity_1", "fog/severity_3"]
    (predictions / "dark" / "1" / Path(kitti.lines[2]).with_suffix(".npy")).unlink()
    with pytest.raises(PredictionError, match="1 of 4 predictions missing for dark/1"):
        score_release(kitti_release, predictions)
    shutil.rmtree(predictions / "dark")
    np.savez(predictions / "glass_blur" / "1.npz", pred=np.ones((3, 375, 1242)))
    with pytest.raises(PredictionError, match="holds 3 predictions but the split has 4 frames"):
        score_release(kitti_release, predictions)
    result = CliRunner().invoke(cli, ["score-depth", "--release", str(kitti_release), "--predictions", str(predictions)])
    assert result.exit_code == 1 and "holds 3 predictions" in result.output


def test_bad_inputs_become_rejects(tmp_path, kitti):
    root = tmp_path / "kitti"
    shutil.copytree(kitti.root, root)
    lines = list(kitti.lines)
    (root / lines[1]).write_bytes(b"\x89PNG broken")
    gt_wrong = root / "gt_depth" / lines[2]
    Image.fromarray(np.full((370, 1226), 2560, np.uint16)).save(gt_wrong)  # 10 m everywhere, at the wrong size
    split = root / "split.txt"
    split.write_text(
        "\n".join(lines + ["kitti_data/2011_09_26/2011_09_26_drive_0099_sync/image_02/data/0000000001.png", "not a valid line at all"])
        + "\n"
    )
    spec = one_corruption(tmp_path, {"root": root, "split_file": split, "gt_root": root / "gt_depth"}, "pixelate", 2)
    result = build(spec, tmp_path / "out", workers=1, progress=False)
    assert result.status == "built"
    assert result.manifest["splits"]["pixelate/severity_2"]["num_samples"] == 2
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    reasons = " | ".join(r["reason"] for r in rejects)
    assert len(rejects) == 4
    assert "cannot identify image file" in reasons and "1226x370, its image 1242x375" in reasons
    assert "does not exist" in reasons and "neither a relative image path" in reasons


def test_npz_ground_truth_and_its_checks(tmp_path, kitti):
    spec = one_corruption(tmp_path, {"root": kitti.root, "split_file": kitti.split_file, "gt_depths": kitti.gt_depths}, "contrast", 1)
    result = build(spec, tmp_path / "ok", workers=1, progress=False)
    sample = next(iter(dataengine.load(tmp_path / "ok", config="contrast", split="severity_1")))
    with np.load(kitti.gt_depths) as archive:
        expected = archive["data"][kitti.lines.index(sample["json"]["frame"])]
    np.testing.assert_allclose(sample["depth.png"], expected, atol=1 / 512 + 1e-6)
    assert result.status == "built"

    nan_gt = tmp_path / "nan.npz"
    with np.load(kitti.gt_depths) as archive:
        data = archive["data"].copy()
    data[0, 200, 200] = np.nan
    np.savez(nan_gt, data=data)
    spec = one_corruption(tmp_path, {"root": kitti.root, "split_file": kitti.split_file, "gt_depths": nan_gt}, "contrast", 1)
    build(spec, tmp_path / "nan", workers=1, progress=False)
    rejects = (tmp_path / "nan" / "rejects.jsonl").read_text()
    assert "holds NaN" in rejects and rejects.count("\n") == 1

    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, data=np.array([np.zeros((2, 2)), np.zeros((3, 3))], dtype=object))
    spec = load_catalog(catalog(tmp_path, "kitti_c", {"root": kitti.root, "split_file": kitti.split_file, "gt_depths": ragged}))
    with pytest.raises(BuildError, match="never unpickles"):
        build(spec, tmp_path / "ragged", workers=1, progress=False)


def test_nyu_c_on_the_bts_layout(tmp_path):
    root = tmp_path / "nyu"
    images = write_nyu_tree(root, frames=3)
    spec = load_catalog(catalog(tmp_path, "nyu_c", {"root": root}, corruptions=["motion_blur"], severities=[1, 4]))
    result = build(spec, tmp_path / "out", workers=1, progress=False)
    assert list(result.manifest["splits"]) == ["clean/test", "motion_blur/severity_1", "motion_blur/severity_4"]
    assert result.manifest["fields"]["depth.png"] == "depth"
    for sample in dataengine.load(tmp_path / "out", config="motion_blur", split="severity_4"):
        frame = root / sample["json"]["frame"]
        assert frame in images and sample["rgb.png"].shape == (480, 640, 3)
        depth_mm = np.asarray(Image.open(frame.with_name(frame.name.replace("rgb_", "sync_depth_")).with_suffix(".png")))
        np.testing.assert_array_equal(sample["depth.png"], depth_mm.astype(np.float32) / 1000)


def test_depth_c_of_a_scenes_release(tmp_path, tiny_release):
    spec = load_catalog(
        catalog(tmp_path, "depth_c", {"release": tiny_release}, corruptions=["pixelate"], severities=[2], source_split="validation")
    )
    result = build(spec, tmp_path / "out", workers=1, progress=False)
    assert result.manifest["splits"]["pixelate/severity_2"]["num_samples"] == 6
    source = {s["__key__"]: s for s in dataengine.load(tiny_release, split="validation")}
    for sample in dataengine.load(tmp_path / "out", config="pixelate", split="severity_2"):
        original = source[sample["json"]["frame"]]
        np.testing.assert_array_equal(sample["depth.png"], original["depth.png"])
        expected = corrupt(original["rgb.png"], "pixelate", 2, seed=0)
        assert np.array_equal(sample["rgb.png"], expected)
    assert encode_image(expected)[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_draws_the_corruption_grid(tmp_path, kitti_release):
    from dataengine.publish.report import write_report

    copy = tmp_path / "r"
    shutil.copytree(kitti_release, copy)
    html = write_report(copy).read_text()
    assert 'src="report/corruptions.png"' in html and 'src="report/gallery.png"' in html


def test_depth_c_of_a_kitti_c_release_keeps_its_depth_code(tmp_path, kitti_release):
    """KITTI's 1/256 m ground truth (`depth_kitti`) is accepted and kept, not re-coded to millimetres."""
    spec = load_catalog(
        catalog(tmp_path, "depth_c", {"release": kitti_release}, corruptions=["pixelate"], severities=[1], source_split="clean/test")
    )
    result = build(spec, tmp_path / "out", workers=0, progress=False)
    assert result.manifest["fields"]["depth.png"] == "depth_kitti"
    source = {s["__key__"]: s for s in dataengine.load(kitti_release, config="clean", split="test")}
    produced = list(dataengine.load(tmp_path / "out", config="pixelate", split="severity_1"))
    assert len(produced) == len(source) == 4
    for sample in produced:
        original = source[sample["json"]["frame"]]
        np.testing.assert_array_equal(sample["depth.png"], original["depth.png"])
        assert original["depth.png"].max() > 0


def _exif_rotated_jpeg(path: Path, rgb: np.ndarray, orientation: int = 6) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, quality=95, exif=exif)


def test_nyu_bad_depth_exif_and_file_names_are_rejects_that_reconcile(tmp_path):
    root = tmp_path / "nyu"
    write_nyu_tree(root, frames=3, width=160, height=120)
    bedroom, kitchen = root / "official_splits" / "test" / "bedroom", root / "official_splits" / "test" / "kitchen"
    good_mm = np.asarray(Image.open(bedroom / "sync_depth_00045.png"))
    rgb = np.asarray(Image.open(bedroom / "rgb_00045.jpg"))
    Image.fromarray((good_mm // 40).astype(np.uint8)).save(bedroom / "sync_depth_00045.png")  # 8-bit, as NYU never is
    Image.fromarray(np.minimum(good_mm, 255).astype(np.uint16)).save(kitchen / "sync_depth_00047.png")  # 16-bit, but 0.255 m at most
    Image.fromarray(good_mm.astype(np.float32) / 1000).save(bedroom / "sync_depth_00049.png", format="TIFF")  # float TIFF
    Image.fromarray(rgb).save(kitchen / "rgb_00051.JPEG", format="JPEG", quality=95)  # read, whatever the case of its suffix
    Image.fromarray(good_mm).save(kitchen / "sync_depth_00051.png")
    _exif_rotated_jpeg(kitchen / "rgb_00053.jpeg", rgb)
    Image.fromarray(good_mm).save(kitchen / "sync_depth_00053.png")
    Image.fromarray(rgb).save(kitchen / "rgb_00055.bmp")
    Image.fromarray(rgb).save(bedroom / "rgb_00045.png")  # the same frame key as rgb_00045.jpg

    spec = load_catalog(catalog(tmp_path, "nyu_c", {"root": root}, corruptions=["pixelate"], severities=[1], clean=False))
    result = build(spec, tmp_path / "out", workers=0, progress=False)
    assert result.status == "built"
    samples = list(dataengine.load(tmp_path / "out", config="pixelate", split="severity_1"))
    assert [s["json"]["frame"] for s in samples] == ["official_splits/test/kitchen/rgb_00051.JPEG"]
    np.testing.assert_array_equal(samples[0]["depth.png"], good_mm.astype(np.float32) / 1000)
    rejects = {r["source"].rsplit("/", 1)[-1]: r for r in map(json.loads, (tmp_path / "out" / "rejects.jsonl").read_text().splitlines())}
    assert "8-bit greyscale PNG" in rejects["rgb_00045.jpg"]["reason"]
    assert "farthest measurement is 0.255 m" in rejects["rgb_00047.jpg"]["reason"]
    assert "is not a PNG" in rejects["rgb_00049.jpg"]["reason"]
    assert "EXIF orientation 6" in rejects["rgb_00053.jpeg"]["reason"]
    assert rejects["rgb_00055.bmp"]["code"] == "unsupported_image"
    assert rejects["rgb_00045.png"]["code"] == "duplicate_key" and "rgb_00045.jpg" in rejects["rgb_00045.png"]["reason"]
    files = list(root.rglob("rgb_*"))
    assert len(files) == 7 == len(samples) + result.manifest["rejects"]["total"]  # every input written or rejected


def test_kitti_eight_bit_ground_truth_and_escaping_split_lines_are_rejects(tmp_path, kitti):
    root = tmp_path / "kitti"
    shutil.copytree(kitti.root, root)
    lines = list(kitti.lines)
    gt = [root / "gt_depth" / line for line in lines]
    codes = np.asarray(Image.open(gt[0]))
    Image.fromarray(np.minimum(codes // 256, 255).astype(np.uint8)).save(gt[0])  # 8-bit metres, as KITTI never is
    Image.fromarray(np.minimum(codes, 255).astype(np.uint16)).save(gt[1])  # 16-bit, farthest return under 1 m
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(root / lines[2], outside / "secret.png")
    split = root / "split.txt"
    split.write_text("\n".join([*lines[:3], "../outside/secret.png", "../../outside 1 l", lines[2]]) + "\n")
    spec = one_corruption(tmp_path, {"root": root, "split_file": split, "gt_root": root / "gt_depth"}, "pixelate", 1)
    result = build(spec, tmp_path / "out", workers=0, progress=False)
    assert result.manifest["splits"]["pixelate/severity_1"]["num_samples"] == 1
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    reasons = {r["key"]: r["reason"] for r in rejects}
    assert "8-bit greyscale PNG" in reasons[f"pixelate-s1-{frame_key(lines[0])}"]
    assert "farthest measurement is 0.996 m" in reasons[f"pixelate-s1-{frame_key(lines[1])}"]
    assert sum("would leave its root" in reason for reason in reasons.values()) == 2
    assert [r["code"] for r in rejects if r["key"] == f"pixelate-s1-{frame_key(lines[2])}"] == ["duplicate_key"]
    assert len(rejects) == 5 and result.manifest["rejects"]["total"] == 5  # 6 split lines: 1 written, 5 rejected
