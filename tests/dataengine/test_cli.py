import json
import os
import subprocess
import sys
import time

import numpy as np
from click.testing import CliRunner
from PIL import Image

from builders.scenes.builder import ScenesBuilder
from dataengine.cli import cli
from dataengine.core.builder import register_builder
from dataengine.core.rejects import Reject
from tests.conftest import write_catalog

BROKEN = {"partition": None}


@register_builder("planning_fragile_scenes")
class PlanningFragileScenes(ScenesBuilder):
    """Scenes that refuse two records while planning (like VQA's duplicates) and can break one partition."""

    def planning_rejects(self, spec):
        return [Reject(key=f"dup-{i}", source="annotations.json", code="duplicate", reason="same image and question") for i in range(2)]

    def process(self, part, ctx):
        if BROKEN["partition"] == part.id:
            raise RuntimeError("builder bug")
        yield from super().process(part, ctx)


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_explains_each_command():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("build", "demo", "verify", "inspect", "builders"):
        assert command in result.output
    assert "--set" in run("build", "--help").output


def test_build_with_limit_and_set_records_both(tmp_path):
    catalog = write_catalog(tmp_path)
    out = tmp_path / "trial"
    result = run("build", str(catalog), "--out", str(out), "--limit", "3", "--set", "params.width=64", "--workers", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["limit"] == 3 and manifest["overrides"] == ["params.width=64"]
    assert manifest["catalog"]["params"]["width"] == 64
    assert {s: e["num_samples"] for s, e in manifest["splits"].items()} == {"train": 3, "validation": 3}
    assert run("verify", str(out)).exit_code == 0
    inspected = run("inspect", str(out / "train" / "tiny-000000.tar"))
    assert "scene-train-0000000" in inspected.output and "depth.png" in inspected.output and "float32 (72, 64)" in inspected.output


def test_catalog_errors_exit_2_before_work(tmp_path):
    result = CliRunner().invoke(cli, ["build", str(write_catalog(tmp_path, params={"widht": 5})), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "params.widht: unknown key (did you mean 'width'?)" in result.output
    assert not (tmp_path / "x").exists()


def test_bad_arguments_fail_fast(tmp_path):
    catalog = str(write_catalog(tmp_path))
    result = CliRunner().invoke(cli, ["build", catalog, "--workers", "-1"])
    assert result.exit_code == 2 and "--workers -1: give 0 (run in this process) or more" in result.output
    result = CliRunner().invoke(cli, ["build", catalog, "--workers", "2", "--scheduler", "tcp://h:8786"])
    assert result.exit_code == 2 and "exclude each other" in result.output
    result = CliRunner().invoke(cli, ["build", "no-such-catalog"])
    assert (
        result.exit_code == 2
        and "shipped catalogs: demo, demo-ssr, demo-ssr-real, demo-vqa, kitti-c, nyu-c, scenes, scenes-c, ssr-cot, ssr-cot-scenes, vqa-knowledge"
        in result.output
    )


def test_verify_exits_1_naming_problems(tmp_path, tiny_release):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(tiny_release, copy)
    (copy / "validation" / "tiny-000000.tar").unlink()
    result = CliRunner().invoke(cli, ["verify", str(copy)])
    assert result.exit_code == 1
    assert "FAIL validation/tiny-000000.tar: missing shard" in result.output


def test_inspect_refuses_garbage(tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    result = CliRunner().invoke(cli, ["inspect", str(junk)])
    assert result.exit_code == 1 and "not a readable shard" in result.output


def test_demo_builds_offline_and_says_how_to_load(tmp_path):
    out = tmp_path / "demo"
    result = run("demo", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "dataengine.load(" in result.output and f"dataengine verify {out}" in result.output
    assert run("verify", str(out)).exit_code == 0
    vqa = tmp_path / "demo-vqa"
    assert run("verify", str(vqa)).exit_code == 0
    assert json.loads((vqa / "manifest.json").read_text())["rejects"]["total"] > 0
    for part in ("demo-ssr", "demo-ssr-real"):
        assert run("verify", str(tmp_path / part)).exit_code == 0
    again = run("demo", "--out", str(out))
    assert again.output.count("already complete") == 4


def cli_process(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real command in a fresh process (environment variables that libraries read at import)."""
    return subprocess.run(
        [sys.executable, "-m", "dataengine.cli", *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_catalogs_and_builders_are_listed_one_line_each():
    catalogs = run("catalogs").output.splitlines()
    assert any(line.startswith("demo ") and "scenes" in line and "A small release of procedural scenes" in line for line in catalogs)
    assert any(line.startswith("kitti-c ") and line.endswith("[needs KITTI_ROOT, KITTI_SPLIT_FILE, KITTI_GT_ROOT]") for line in catalogs)
    builders = {line.split()[0]: line for line in run("builders").output.splitlines()}
    shipped = ("depth_c", "kitti_c", "nyu_c", "scenes", "ssr_cot", "ssr_cot_scenes", "vqa_knowledge")
    assert set(shipped) <= set(builders) and all(len(builders[name].split()) > 4 for name in shipped)  # name, kind, a description
    assert "OK-VQA, A-OKVQA and InfoSeek" in builders["vqa_knowledge"]


def test_inspect_a_release_folder(tiny_release):
    result = run("inspect", str(tiny_release))
    assert result.exit_code == 0, result.output
    assert "== split train: the first of its 5 shard(s) ==" in result.output and "== split validation: the first of its 2" in result.output
    assert f"{tiny_release}/validation/tiny-000000.tar: 4 samples" in result.output
    summaries = json.loads(run("inspect", str(tiny_release), "--json").output)
    assert [s["split"] for s in summaries] == ["train", "validation"]


def test_inspect_a_folder_that_is_no_release(tmp_path):
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path)])
    assert result.exit_code == 1 and "is not a dataengine release (no manifest.json)" in result.output
    assert result.output.count("\n") == 1


def test_set_mistakes_are_set_errors_and_catalog_names_get_suggestions(tmp_path):
    catalog = str(write_catalog(tmp_path))
    result = CliRunner().invoke(cli, ["build", catalog, "--set", "params.widht=64", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.output.startswith("error: --set 'params.widht=64': params.widht: unknown key (did you mean 'width'?)")
    assert "invalid catalog" not in result.output and catalog not in result.output
    result = CliRunner().invoke(cli, ["build", catalog, "--set", "params.width=wide"])
    assert "error: --set 'params.width=wide': params.width: 'wide' is not of type 'integer'" in result.output
    result = CliRunner().invoke(cli, ["build", "scens"])
    assert result.exit_code == 2 and "catalog 'scens' not found (did you mean 'scenes'?)" in result.output


def test_limit_says_what_it_counts(tmp_path):
    result = run("build", "ssr-cot-scenes", "--out", str(tmp_path / "ssr"), "--limit", "2", "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "ssr" / "manifest.json").read_text())
    samples = sum(entry["num_samples"] for entry in manifest["splits"].values())
    assert samples > 4  # a scene gives up to questions_per_scene records
    assert f"--limit 2 kept the first 2 planned items of each split: 4 items gave {samples} samples" in result.output


def test_an_unreachable_scheduler_is_one_line_within_seconds_and_removes_nothing(tmp_path, tiny_release):
    import shutil

    copy = tmp_path / "r"
    shutil.copytree(tiny_release, copy)
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    catalog = write_catalog(tmp_path, seed=99)  # a different release: --force would replace it
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["build", str(catalog), "--out", str(copy), "--force", "--scheduler", "tcp://127.0.0.1:9"])
    assert time.monotonic() - started < 15
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith("error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 5 s")
    assert {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before


def test_a_hub_model_that_cannot_be_loaded_here_is_one_line(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(images / "a.png")
    offline = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    result = cli_process(
        "depth", str(images), str(tmp_path / "out"), "--source", "model:org/some-depth-model", "--workers", "0", env=offline
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: model:org/some-depth-model is not in the local Hugging Face cache and offline mode is on")
    unreachable = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "0"}
    args = ["build", "ssr-cot-scenes", "--out", str(tmp_path / "ssr"), "--limit", "1", "--workers", "0"]
    result = cli_process(*args, "--set", "params.depth_source=model:org/some-depth-model", env=unreachable)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "error: params.depth_source: model:org/some-depth-model is not in the local Hugging Face cache and the Hub cannot be reached"
    )
    assert "huggingface-cli download org/some-depth-model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "ssr").exists()


def test_the_build_bar_ends_at_the_summary_numbers_also_when_resumed(tmp_path):
    catalog = write_catalog(tmp_path, builder="planning_fragile_scenes")
    out = tmp_path / "r"
    BROKEN["partition"] = "train-000002"
    try:
        first = CliRunner().invoke(cli, ["build", str(catalog), "--out", str(out), "--workers", "0", "--retries", "0"])
    finally:
        BROKEN["partition"] = None
    assert first.exit_code == 1 and "error: 1 partition(s) failed; rerun the same command to resume" in first.output
    resumed = CliRunner().invoke(cli, ["build", str(catalog), "--out", str(out), "--workers", "0"])
    assert resumed.exit_code == 0, resumed.output
    manifest = json.loads((out / "manifest.json").read_text())
    shards = sum(len(entry["shards"]) for entry in manifest["splits"].values())
    final = resumed.output.replace("\r", "\n").split("\n")
    bar = [line for line in final if "item/s" in line][-1]
    assert "26/26" in bar and f"written=26, rejected={manifest['rejects']['total']}, shards={shards}" in bar
    assert manifest["rejects"]["total"] == 2  # both refused while planning
    assert "done: " in resumed.output and "rejects: 2)" in resumed.output
