"""End-to-end builds on real Dask clusters: round trip, determinism, resume, rejects, failures."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

import dataengine
from builders.scenes.builder import ScenesBuilder
from dataengine.api import build
from dataengine.core.builder import register_builder
from dataengine.core.catalog import load_catalog
from dataengine.io.tar import read_samples
from dataengine.release.verify import verify_release
from dataengine.run.build import BuildError, PartitionsFailed, apply_limit
from tests.conftest import write_catalog


def shard_bytes(release: Path) -> dict[str, bytes]:
    return {str(p.relative_to(release)): p.read_bytes() for p in sorted(release.glob("*/*.tar"))}


def test_release_layout(tiny_release):
    manifest = json.loads((tiny_release / "manifest.json").read_text())
    assert manifest["splits"]["train"]["num_samples"] == 20 and manifest["splits"]["validation"]["num_samples"] == 6
    assert [s["path"] for s in manifest["splits"]["train"]["shards"]] == [f"train/tiny-{i:06d}.tar" for i in range(5)]
    assert manifest["rejects"] == {"total": 0, "by_reason": {}}
    assert manifest["fields"] == {"rgb.png": "image", "depth.png": "depth", "mask.png": "mask", "json": "json"}
    assert json.loads((tiny_release / "train" / "sizes.json").read_text()) == {f"tiny-{i:06d}.tar": 4 for i in range(5)}
    info = json.loads((tiny_release / "_info.json").read_text())
    assert info["splits"]["validation"]["shard_lengths"] == [4, 2]
    assert all((tiny_release / f).is_file() for f in info["splits"]["train"]["filenames"])
    assert (tiny_release / "rejects.jsonl").read_text() == ""
    assert json.loads((tiny_release / "stats.json").read_text())["counts"]["samples_written"] == 26
    assert not (tiny_release / ".work").exists()


def test_round_trip_ours_webdataset_and_datasets_agree(tiny_release):
    import datasets

    assert verify_release(tiny_release) == []
    ours = {s["__key__"]: s for s in dataengine.load(tiny_release, split="train")}
    assert len(ours) == 20
    raw = {s["__key__"]: s for s in wds.WebDataset(str(tiny_release / "train" / "tiny-{000000..000004}.tar"), shardshuffle=False)}
    assert raw.keys() == ours.keys()
    hf = datasets.load_dataset(str(tiny_release), split="train")
    assert hf.num_rows == 20
    assert isinstance(hf.features["rgb.png"], datasets.Image)
    for row in hf:
        sample = ours[row["__key__"]]
        np.testing.assert_array_equal(np.asarray(row["rgb.png"]), sample["rgb.png"])
        np.testing.assert_array_equal(np.asarray(row["depth.png"]).astype(np.float32) / 1000.0, sample["depth.png"])
        np.testing.assert_array_equal(np.asarray(row["mask.png"]), sample["mask.png"])
        assert row["json"] == sample["json"]
        assert json.loads(raw[row["__key__"]]["json"]) == sample["json"]
        assert sample["depth.png"].dtype == np.float32 and sample["rgb.png"].dtype == np.uint8


def test_same_bytes_with_one_or_two_workers(tmp_path, tiny_catalog, tiny_release):
    out = tmp_path / "one"
    result = build(load_catalog(tiny_catalog), out, workers=1, progress=False)
    assert result.status == "built"
    assert shard_bytes(out) == shard_bytes(tiny_release)
    assert json.loads((out / "manifest.json").read_text()) == json.loads((tiny_release / "manifest.json").read_text())


def test_rebuilding_the_same_release_is_a_no_op(tiny_catalog, tiny_release):
    before = shard_bytes(tiny_release)
    assert build(load_catalog(tiny_catalog), tiny_release, progress=False).status == "up-to-date"
    assert shard_bytes(tiny_release) == before


def test_refuses_to_mix_releases(tmp_path, tiny_catalog, tiny_release):
    other = load_catalog(tiny_catalog, overrides=["seed=12"])
    with pytest.raises(BuildError, match="holds a different release.*--force"):
        build(other, tiny_release, progress=False)
    stranger = tmp_path / "not-a-release"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="holds no dataengine release"):
        build(other, stranger, force=True, progress=False)
    assert (stranger / "notes.txt").exists()


def test_force_replaces_a_release(tmp_path, tiny_catalog, tiny_release):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_release, copy)
    spec = load_catalog(tiny_catalog, overrides=["seed=12"], limit=2)
    assert build(spec, copy, force=True, workers=1, progress=False).status == "built"
    manifest = json.loads((copy / "manifest.json").read_text())
    assert manifest["catalog_sha256"] == spec.sha256 and manifest["limit"] == 2 and manifest["overrides"] == ["seed=12"]
    assert sorted(p.name for p in (copy / "train").glob("*.tar")) == ["tiny-000000.tar"]


@pytest.mark.timeout(60)
def test_limit_plans_only_the_items_it_keeps_however_many_the_catalog_asks_for(tmp_path, tiny_catalog):
    huge = load_catalog(tiny_catalog, overrides=["splits.train.num_samples=1000000000000"], limit=5)
    planned = ScenesBuilder().plan(huge)
    train = [item for part in planned if part.split == "train" for item in part.items]
    assert train == [0, 1, 2, 3, 4]  # the first five, cut into partitions as a full plan would be
    small = load_catalog(tiny_catalog, overrides=["splits.train.num_samples=20"])
    full = [part for part in ScenesBuilder().plan(small) if part.split == "train"]
    assert [p.items for p in planned if p.split == "train"] == [p.items for p in apply_limit(full, 5)]
    result = build(huge, tmp_path / "huge", workers=0, progress=False)
    assert result.lengths["train"] == 5


@register_builder("flaky_scenes")
class FlakyScenes(ScenesBuilder):
    """Scenes where some inputs are 'corrupt' (raise) and some records break the schema."""

    def process_item(self, item, ctx):
        if item % 5 == 3:
            raise ValueError(f"corrupt input file for item {item}")
        for sample in super().process_item(item, ctx):
            if item % 7 == 4:
                sample["json"]["objects"] = "not a list"
            yield sample


FRAGILE = {"broken": True}


@register_builder("fragile_scenes")
class FragileScenes(ScenesBuilder):
    """A builder bug that kills one whole partition while FRAGILE['broken'] is set."""

    def process(self, part, ctx):
        if FRAGILE["broken"] and part.id == "train-000001":
            raise RuntimeError("builder bug")
        yield from super().process(part, ctx)


def test_bad_samples_become_rejects_and_the_build_goes_on(tmp_path):
    spec = load_catalog(write_catalog(tmp_path, builder="flaky_scenes"))
    out = tmp_path / "flaky"
    result = build(spec, out, workers=2, processes=False, progress=False)
    assert result.status == "built"
    train = [i for i in range(20) if i % 5 != 3 and i % 7 != 4]
    validation = [i for i in range(6) if i % 5 != 3 and i % 7 != 4]
    assert len(train) == 14 and len(validation) == 4
    assert result.manifest["splits"]["train"]["num_samples"] == len(train)
    assert result.manifest["splits"]["validation"]["num_samples"] == len(validation)
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    raised = [r for r in rejects if r["code"] == "error.ValueError"]
    schema = [r for r in rejects if r["code"] == "schema"]

    def keys(split, count, rule):
        return {f"scene-{split}-{i:07d}" for i in range(count) if rule(i)}

    def raises(i):
        return i % 5 == 3

    def breaks_schema(i):
        return i % 7 == 4 and not raises(i)

    assert {r["key"] for r in raised} == keys("train", 20, raises) | keys("validation", 6, raises)
    assert all("corrupt input file" in r["reason"] and r["source"].startswith("procedural:") for r in raised)
    assert {r["key"] for r in schema} == keys("train", 20, breaks_schema) | keys("validation", 6, breaks_schema)
    assert all("objects" in r["reason"] for r in schema)
    assert result.manifest["rejects"] == {"total": len(rejects), "by_reason": {"error.ValueError": len(raised), "schema": len(schema)}}
    kept = {s["__key__"] for s in dataengine.load(out, split="train")}
    assert kept == {f"scene-train-{i:07d}" for i in train}
    assert verify_release(out) == []


def test_errors_raise_fails_the_partition_with_the_first_bad_item(tmp_path):
    spec = load_catalog(write_catalog(tmp_path, builder="flaky_scenes", splits={"train": {"num_samples": 5}}))
    with pytest.raises(
        PartitionsFailed, match="2 partition.s. failed .the others are kept in .*strict.; fix the cause and rerun"
    ) as failed:
        build(spec, tmp_path / "strict", workers=0, retries=0, errors="raise", progress=False)
    assert sorted(failed.value.failures) == [  # items 0-3, then item 4: each partition stops at its first bad one
        ("train-000000", "ValueError: corrupt input file for item 3"),
        ("train-000001", "SchemaError: json.objects: 'not a list' is not of type 'array'"),
    ]
    with pytest.raises(BuildError, match="errors='ignore': give one of skip, raise"):
        build(spec, tmp_path / "other", workers=0, errors="ignore", progress=False)


def test_failing_partition_is_reported_then_resumed(tmp_path):
    spec = load_catalog(write_catalog(tmp_path, builder="fragile_scenes"))
    out = tmp_path / "fragile"
    FRAGILE["broken"] = True
    try:
        with pytest.raises(PartitionsFailed) as failed:
            build(spec, out, workers=2, processes=False, progress=False, retries=1)
    finally:
        FRAGILE["broken"] = False
    assert [part for part, _ in failed.value.failures] == ["train-000001"]
    assert "builder bug" in failed.value.failures[0][1]
    assert not (out / "manifest.json").exists()
    assert len(list((out / ".work" / "done").glob("*.json"))) == 6
    resumed = build(spec, out, workers=1, processes=False, progress=False)
    assert resumed.status == "built" and resumed.manifest["splits"]["train"]["num_samples"] == 20
    assert verify_release(out) == []


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dataengine.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def test_kill_9_mid_build_then_resume_equals_clean_build(tmp_path):
    catalog = write_catalog(
        tmp_path, name="killed", params={"width": 320, "height": 240}, splits={"train": {"num_samples": 60}}, shards={"max_samples": 3}
    )
    out = tmp_path / "killed"
    process = _cli("build", str(catalog), "--out", str(out), "--workers", "1", "--no-progress", start_new_session=True)
    done = out / ".work" / "done"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and len(list(done.glob("*.json"))) < 3 and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the client, its scheduler and every worker, mid-write
    process.wait()
    finished_before = len(list(done.glob("*.json")))
    assert not (out / "manifest.json").exists(), "the build finished before it could be killed; make it longer"
    assert 3 <= finished_before < 20

    resumed = _cli("build", str(catalog), "--out", str(out), "--workers", "1", "--no-progress")
    stdout, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert f"resuming: {finished_before} of 20 partitions already done" in stderr
    assert verify_release(out) == []

    clean = tmp_path / "clean"
    assert build(load_catalog(catalog), clean, workers=2, progress=False).status == "built"
    assert shard_bytes(out) == shard_bytes(clean)
    keys = [key for path in sorted(out.glob("train/*.tar")) for key, _ in read_samples(path)]
    assert keys == [f"scene-train-{i:07d}" for i in range(60)]


def test_existing_cluster_by_scheduler_address_gives_the_same_bytes(tmp_path, tiny_catalog, tiny_release):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        result = build(load_catalog(tiny_catalog), tmp_path / "remote", scheduler=cluster.scheduler_address, progress=False)
    assert result.status == "built"
    assert shard_bytes(tmp_path / "remote") == shard_bytes(tiny_release)


@register_builder("slow_scenes")
class SlowScenes(ScenesBuilder):
    """Scenes that take a while per item, so that a partition's progress shows before it ends."""

    def process_item(self, item, ctx):
        time.sleep(0.3)
        yield from super().process_item(item, ctx)


def test_a_partition_reports_progress_item_by_item(tmp_path):
    from functools import partial

    from dataengine.core.builder import create_builder
    from dataengine.run.executor import InProcessExecutor
    from dataengine.run.worker import DONE_DIR, PARTS_DIR, run_partition

    spec = load_catalog(write_catalog(tmp_path, builder="slow_scenes", splits={"train": {"num_samples": 4}}))
    (part,) = create_builder("slow_scenes").plan(spec)
    work = tmp_path / "work"
    (work / PARTS_DIR).mkdir(parents=True)
    (work / DONE_DIR).mkdir()
    seen = []
    task = partial(run_partition, spec, work_dir=str(work))
    (outcome,) = InProcessExecutor().run(task, [part], name=str, retries=0, progress=lambda _, counts: seen.append(counts))
    assert outcome.result["samples"] == 4
    assert [counts["items"] for counts in seen] == [1, 2, 3, 4]  # one report per item (each takes longer than the interval)
    assert [counts["written"] for counts in seen] == [1, 2, 3, 4] and all(counts["rejected"] == 0 for counts in seen)


def test_force_never_wipes_a_folder_that_holds_more_than_a_release(tmp_path, tiny_catalog, tiny_release):
    other = load_catalog(tiny_catalog, overrides=["seed=12"])
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_release, mixed)
    (mixed / "notes.txt").write_text("mine")
    (mixed / "train" / "keep.csv").write_text("a,b")
    with pytest.raises(BuildError, match=r"also holds notes.txt, train.*move those away"):
        build(other, mixed, force=True, progress=False)
    assert (mixed / "notes.txt").read_text() == "mine" and (mixed / "train" / "keep.csv").exists()
    assert shard_bytes(mixed) == shard_bytes(tiny_release)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"catalog_sha256": "abc", "name": "someone else's"}))
    (foreign / "data.csv").write_text("1,2")
    with pytest.raises(BuildError, match="dataengine did not write or cannot read; it is never replaced"):
        build(other, foreign, force=True, progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["data.csv", "manifest.json"]


def test_a_damaged_release_is_rebuilt_on_rerun(tmp_path, tiny_catalog, tiny_release):
    from dataengine.run.build import build as run_build

    spec = load_catalog(tiny_catalog)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_release, copy)
    shards = sorted(copy.glob("*/*.tar"))
    shards[0].unlink()
    with shards[1].open("r+b") as handle:
        handle.truncate(1024)
    messages = []
    result = run_build(spec, copy, workers=0, progress=False, echo=messages.append)
    assert result.status == "built" and "is damaged" in messages[0] and "is missing" in messages[0]
    assert shard_bytes(copy) == shard_bytes(tiny_release) and verify_release(copy) == []

    # Same size, other bytes: only a hash finds it, so only --verify rebuilds.
    data = bytearray(shards[2].read_bytes())
    data[700] ^= 0xFF
    shards[2].write_bytes(bytes(data))
    assert run_build(spec, copy, workers=0, progress=False).status == "up-to-date"
    from click.testing import CliRunner

    from dataengine.cli import cli

    command = ["build", str(tiny_catalog), "--out", str(copy), "--workers", "0", "--no-progress", "--verify"]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0 and "is damaged" in result.output, result.output
    assert shard_bytes(copy) == shard_bytes(tiny_release)


@register_builder("colliding_scenes")
class CollidingScenes(ScenesBuilder):
    """Scenes whose items map to three sample keys only, across partitions and splits."""

    def item_key(self, item, ctx):
        return f"scene-{item % 3}"


def test_items_that_share_a_sample_key_are_rejected_at_plan_time(tmp_path):
    spec = load_catalog(write_catalog(tmp_path, builder="colliding_scenes"))
    result = build(spec, tmp_path / "out", workers=0, progress=False)
    assert result.status == "built"
    keys = [s["__key__"] for split in ("train", "validation") for s in dataengine.load(tmp_path / "out", split=split)]
    assert sorted(keys) == ["scene-0", "scene-1", "scene-2"]
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejects) == 23 and {r["code"] for r in rejects} == {"duplicate_key"}
    assert rejects[0] == {
        "key": "scene-0",
        "source": "procedural:3",
        "code": "duplicate_key",
        "reason": "sample key 'scene-0' is also the key of procedural:0 (planned earlier and kept); keys must be unique across a release",
    }
    assert result.manifest["rejects"]["total"] + len(keys) == 26  # every planned item written or rejected


def test_an_unwritable_out_is_one_line_before_any_work(tmp_path):
    spec = load_catalog(write_catalog(tmp_path))
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(BuildError, match=r"afile is not a folder, so nothing can be created under it; choose another --out"):
        build(spec, tmp_path / "afile" / "release", workers=1, progress=False)
    if Path("/proc/self").is_dir():  # a pseudo filesystem refuses even root
        with pytest.raises(BuildError, match=r"--out /proc/release: cannot write in /proc \(.*\); choose a folder you can write to"):
            build(spec, "/proc/release", workers=1, progress=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if not os.access(locked, os.W_OK):  # root writes anywhere; then /proc above is the check
            with pytest.raises(BuildError, match=r"cannot write in .*locked \(Permission denied\); choose a folder you can write to"):
                build(spec, locked / "release", workers=1, progress=False)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_an_empty_done_record_left_by_a_kill_is_redone_not_a_crash(tmp_path):
    spec = load_catalog(write_catalog(tmp_path, builder="fragile_scenes"))
    out = tmp_path / "fragile"
    FRAGILE["broken"] = True
    try:
        with pytest.raises(PartitionsFailed):
            build(spec, out, workers=1, processes=False, progress=False, retries=0)
    finally:
        FRAGILE["broken"] = False
    (out / ".work" / "done" / "train-000000.json").write_bytes(b"")  # killed between creating and writing the record
    (out / ".work" / "done" / "train-000002.json").write_text("[")
    said: list[str] = []
    resumed = build(spec, out, workers=1, processes=False, progress=False, echo=said.append)
    assert "the done record of partition train-000000 is empty or unreadable; that partition is run again" in said
    assert "the done record of partition train-000002 is empty or unreadable; that partition is run again" in said
    assert any(line.startswith("resuming: 4 of 7 partitions already done") for line in said)
    assert resumed.status == "built" and resumed.manifest["splits"]["train"]["num_samples"] == 20
    assert verify_release(out) == []
