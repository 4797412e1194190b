"""SSR-CoT builders: rendered scenes (agreement with the truth, text vs facts), real sources (each
bad input rejected with its reason), the learned depth source, export, and `dataengine depth`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import dataengine
from builders.fixtures import write_ssr_sources
from builders.ssr import rationale
from builders.ssr.scenes import analytic_extent
from builders.ssr.sources import read_records
from dataengine.api import build
from dataengine.cli import cli
from dataengine.release.verify import verify_release
from tests.builders.ssr.conftest import ssr_catalog


def _records(release, split="train"):
    return [s["json"] for s in dataengine.load(release, split=split, decode="numpy")]


def test_scenes_with_ground_truth_depth(scenes_release):
    assert verify_release(scenes_release) == []
    stats = json.loads((scenes_release / "stats.json").read_text())
    # Relations measured from exact depth agree with the truth exactly; sizes within 2% (checked ones).
    for kind in ("side", "depth_order", "distance", "vertical"):
        assert stats["agreement"].get(kind, 1.0) == 1.0, (kind, stats["agreement"])
    records = _records(scenes_release)
    assert len(records) > 40 and {r["kind"] for r in records} >= {"existence", "counting", "attribute", "depth_order"}
    for record in records:
        assert record["depth"]["source"] == "gt" and record["intrinsics"]["source"] == "camera"
        parsed = rationale.parse(record["rationale"])
        stored = {o["name"]: o for o in record["facts"]["objects"]}
        for fact in parsed:
            if fact["kind"] in ("object", "located"):
                assert fact["box"] == stored[fact["name"]]["box"]
            if fact["kind"] == "located":
                assert fact["depth"] == stored[fact["name"]]["nearest_m"]
            if fact["kind"] == "object":
                assert (fact["height"], fact["width"]) == (stored[fact["name"]]["height_m"], stored[fact["name"]]["width_m"])
            if fact["kind"] == "distance":
                pair = next(p for p in record["facts"]["relations"] if {p["a"], p["b"]} == {fact["a"], fact["b"]})
                assert fact["distance"] == pair["distance_m"]
        assert rationale.stated_answer(record["rationale"]) == record["answer"].rstrip(".")
        claim = record["claim"]
        if claim and claim["fact"] in ("height", "width"):
            said = stored[claim["name"]][f"{claim['fact']}_m"]
            assert abs(said - float(claim["value"])) <= 0.02 * float(claim["value"]) + 0.005


@pytest.mark.parametrize(
    "obj,expected",
    [
        (
            {"category": "box", "size": [1.0, 2.0, 0.5], "yaw_deg": 0.0, "center_world": [0.0, 1.0, 10.0]},
            (1.0, 2.0),
        ),  # straight ahead: front face
        (
            {"category": "sphere", "size": [1.0, 1.0, 1.0], "yaw_deg": 0.0, "center_world": [0.0, 1.6, 1e6]},
            (1.0, 1.0),
        ),  # far away: full diameter
    ],
)
def test_analytic_extent_closed_forms(obj, expected):
    width, height = analytic_extent(obj, camera_height_m=1.6)
    assert (width, height) == pytest.approx(expected, rel=1e-6)


def test_sphere_off_axis_shows_less_than_its_diameter():
    # Seen at 45 degrees, the visible cap of a far sphere spans d (1 + cos 45) / 2 across x.
    width, _ = analytic_extent({"category": "sphere", "size": [1.0] * 3, "yaw_deg": 0, "center_world": [1e5, 1.6, 1e5]}, 1.6)
    assert width == pytest.approx((1 + np.cos(np.pi / 4)) / 2, rel=1e-4)


@pytest.fixture(scope="module")
def ssr_root(tmp_path_factory):
    return write_ssr_sources(tmp_path_factory.mktemp("ssr-sources"))


def _real_spec(directory, root, depth_source, **extra):
    sources = {
        "images": str(root / "images"),
        "visual_cot": str(root / "viscot.json"),
        "vocot": str(root / "vocot.json"),
        "llava_cot": str(root / "llava_cot.jsonl"),
    }
    return ssr_catalog(
        directory,
        "ssr_cot",
        {"depth_source": depth_source, **extra},
        {"train": {"inputs": ["visual_cot", "vocot", "llava_cot"]}},
        {**sources, **extra.pop("sources", {})},
    )


def test_real_sources_with_stereo_depth(tmp_path, ssr_root):
    result = build(_real_spec(tmp_path, ssr_root, "stereo"), tmp_path / "release", workers=1, progress=False)
    records = _records(tmp_path / "release")
    assert {r["source"]["format"] for r in records} == {"visual_cot", "vocot", "llava_cot"}
    for record in records:
        assert record["depth"]["source"] == "stereo-sgbm" and record["intrinsics"]["source"] == "calibration"
        assert record["rationale"].endswith(f"{record['answer'].rstrip('.')}.")
    wheels = next(r for r in records if r["source"]["id"] == "vocot:moto-wheels")
    pair = wheels["facts"]["relations"][0]
    assert (pair["a"], pair["b"]) == ("front wheel", "rear wheel") and pair["nearer"] and not pair["left_of"]
    assert wheels["rationale"].startswith("The motorcycle has the front wheel and the rear wheel.")
    rejects = [json.loads(line) for line in (tmp_path / "release" / "rejects.jsonl").read_text().splitlines()]
    codes = {r["key"]: r["code"] for r in rejects}
    assert codes["visual_cot:broken-1"] == "malformed_record" and codes["llava_cot:line2"] == "malformed_record"
    assert codes["visual_cot_missing-1"] == "missing_file"
    assert result.manifest["rejects"]["total"] == len(rejects)
    card = (tmp_path / "release" / "README.md").read_text()
    assert "computed from stereo pairs (OpenCV SGBM)" in card and "ground truth" not in card


def test_each_bad_input_is_rejected_with_its_reason(tmp_path, ssr_root):
    root = tmp_path / "src"
    shutil.copytree(ssr_root, root)
    # gt depth for the photos too: coffee's depth is unreadable, chelsea's is empty under its box.
    (root / "images" / "photos_d").mkdir()
    (root / "images" / "photos_d" / "coffee.png").write_bytes(b"not a png")
    empty = np.zeros((300, 451), np.uint16)
    Image.fromarray(empty).save(root / "images" / "photos_d" / "chelsea.png")
    astronaut = np.full((512, 512), 3000, np.uint16)
    Image.fromarray(astronaut).save(root / "images" / "photos_d" / "astronaut.png")
    build(_real_spec(tmp_path, root, "gt"), tmp_path / "release", workers=1, progress=False)
    rejects = {r["key"]: r for r in map(json.loads, (tmp_path / "release" / "rejects.jsonl").read_text().splitlines())}
    assert rejects["visual_cot_missing-1"]["code"] == "missing_file" and "missing.jpg" in rejects["visual_cot_missing-1"]["reason"]
    assert rejects["visual_cot_outside-1"]["code"] == "box_outside_image"
    assert rejects["visual_cot_chelsea-1"]["code"] == "no_valid_depth"
    assert rejects["visual_cot_coffee-1"]["code"] == "unreadable_input"
    records = _records(tmp_path / "release")
    assert all(r["depth"]["source"] == "gt" for r in records) and len(records) == 4


def test_learned_depth_source_and_export(tmp_path, ssr_root):
    torch = pytest.importorskip("torch")
    from dataengine.depth.learned import build_model, model_config, save_depth_model

    torch.manual_seed(0)
    config = model_config("test_resnet", input_size=[64, 96], max_depth=20.0, decoder_channels=8)
    checkpoint = save_depth_model(build_model(config), config, tmp_path / "tiny-depth")
    build(
        _real_spec(tmp_path, ssr_root, f"model:{checkpoint}", device="cpu", batch_size=2), tmp_path / "release", workers=1, progress=False
    )
    records = _records(tmp_path / "release")
    assert records and all(r["depth"]["source"] == "model:tiny-depth" for r in records)
    photo = next(r for r in records if r["source"]["id"] == "visual_cot:coffee-1")
    assert photo["intrinsics"]["source"] == "default_hfov_60"

    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", "ssr-cot", str(tmp_path / "release"), str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "ssr-cot.jsonl").read_text().splitlines()]
    assert len(lines) == len(records)
    for line in lines:
        assert list(line) == ["question", "rationale", "answer", "image_path", "depth_path"]
        first, rest = line["image_path"].split("/", 1)
        assert line["depth_path"] == f"{first}_d/{rest.rsplit('.', 1)[0]}.png"
        depth = np.asarray(Image.open(out / line["depth_path"]))
        image = Image.open(out / line["image_path"])
        assert depth.dtype == np.uint16 and depth.shape == (image.height, image.width)


def test_depth_command(tmp_path, ssr_root):
    out = tmp_path / "depth"
    result = CliRunner().invoke(cli, ["depth", str(ssr_root / "images"), str(out), "--source", "stereo", "--no-progress"])
    assert result.exit_code == 0, result.output
    depth = np.asarray(Image.open(out / "middlebury" / "motorcycle" / "im0.png")).astype(np.float64) / 1000
    gt = np.asarray(Image.open(ssr_root / "images" / "middlebury_d" / "motorcycle" / "im0.png")).astype(np.float64) / 1000
    valid = (depth > 0) & (gt > 0)
    assert valid.mean() > 0.6 and np.median(np.abs(depth[valid] - gt[valid]) / gt[valid]) < 0.05
    again = CliRunner().invoke(cli, ["depth", str(ssr_root / "images"), str(out), "--source", "stereo", "--no-progress"])
    assert "0 written, 1 already there" in again.output
    bad = CliRunner().invoke(cli, ["depth", str(ssr_root / "images"), str(out), "--source", "lidar"])
    assert bad.exit_code == 2 and "'gt', 'stereo' or 'model:" in bad.output


def test_a_scene_with_nothing_to_ask_is_a_reject_not_a_failed_partition(tmp_path):
    """At 160x120 some scenes keep no object (or only alike ones): a "no cylinder" answer would have to
    name what was seen instead, and there is nothing; the scene is a reject with its reason."""
    result = build(
        "ssr-cot-scenes",
        tmp_path / "out",
        overrides=["params.width=160", "params.height=120"],
        limit=20,
        workers=0,
        progress=False,
    )
    assert result.status == "built"
    rejects = {r["key"]: r for r in map(json.loads, (tmp_path / "out" / "rejects.jsonl").read_text().splitlines())}
    empty = rejects["ssr-scene-train-0000013"]
    assert empty["code"] == "no_question" and "shows 0 object(s)" in empty["reason"]


def _processed(builder_name, spec):
    """Run the first planned partition through its builder: per sample, how many items were done."""
    from dataengine.core.builder import Context, create_builder

    builder = create_builder(builder_name)
    part = builder.plan(spec)[0]
    ticks = []
    ctx = Context(spec, part, on_progress=lambda: ticks.append(1))
    seen = [ctx.items_done for _ in builder.process(part, ctx)]
    return part, ctx, seen, ticks


def test_batched_ssr_builders_count_their_items_one_by_one(tmp_path, ssr_root):
    spec = ssr_catalog(tmp_path, "ssr_cot_scenes", {"width": 160, "height": 120, "batch_size": 4}, {"train": {"num_samples": 6}})
    part, ctx, seen, ticks = _processed("ssr_cot_scenes", spec)
    assert ctx.items_done == len(ticks) == len(part.items) == 6
    assert seen[0] == 0 and len(set(seen)) > 2  # counted as each scene is done, not once per chunk or partition

    part, ctx, seen, ticks = _processed("ssr_cot", _real_spec(tmp_path, ssr_root, "stereo", batch_size=8))
    assert ctx.items_done == len(ticks) == len(part.items) and len(set(seen)) > 2


def test_malformed_boxes_and_a_bad_calibration_are_rejects(tmp_path, ssr_root):
    root = tmp_path / "src"
    shutil.copytree(ssr_root, root)
    lines = [json.loads(line) for line in (root / "llava_cot.jsonl").read_text().splitlines() if line.startswith('{"')]
    moto = next(line for line in lines if line["id"] == "llava-moto")
    lines.append({**moto, "id": "llava-letters", "objects": [{"name": "engine", "box": ["a", 240, 480, 370]}]})
    lines.append({**moto, "id": "llava-null", "objects": [{"name": "engine", "box": None}]})
    (root / "llava_cot.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    (root / "images" / "middlebury" / "motorcycle" / "calib.txt").write_text("cam0=[1 2]\nbaseline=abc\n")
    result = build(_real_spec(tmp_path, root, "stereo"), tmp_path / "release", workers=0, progress=False)
    assert result.status == "built"
    rejects = {r["key"]: r for r in map(json.loads, (tmp_path / "release" / "rejects.jsonl").read_text().splitlines())}
    for key in ("llava_cot:llava-letters", "llava_cot:llava-null"):
        assert rejects[key]["code"] == "malformed_record" and "a box of 4 finite numbers" in rejects[key]["reason"]
    on_the_pair = [r for r in rejects.values() if r["source"] == "middlebury/motorcycle/im0.png"]
    assert on_the_pair and all("is not a Middlebury calibration" in r["reason"] for r in on_the_pair)
    assert all(r["source"]["id"] != "llava_cot:llava-moto" for r in _records(tmp_path / "release"))


def test_a_line_that_is_not_utf8_is_one_reject_and_the_others_are_kept(tmp_path, ssr_root):
    root = tmp_path / "src"
    shutil.copytree(ssr_root, root)
    lines = (root / "llava_cot.jsonl").read_bytes().splitlines()
    (root / "llava_cot.jsonl").write_bytes(b"\n".join([lines[0], b'{"id": "caf\xe9"}', *lines[1:]]) + b"\n")
    records, rejects = read_records(root / "llava_cot.jsonl", "llava_cot")
    clean, clean_rejects = read_records(ssr_root / "llava_cot.jsonl", "llava_cot")
    assert [r["id"] for r in records] == [r["id"] for r in clean]
    [bad] = [r for r in rejects if r.source.endswith(":2")]
    assert bad.code == "malformed_record" and "utf-8" in bad.reason
    assert len(rejects) == len(clean_rejects) + 1
