"""Builds into an object store (a local S3 server, moto): the same bytes as a folder, kill and resume,
--force rules, and reading the release back (Release.open, load, verify) from its URL."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest
from click.testing import CliRunner

import dataengine
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.catalog import load_catalog
from dataengine.release.reader import Release
from dataengine.release.verify import verify_release
from dataengine.run.build import BuildError
from tests.conftest import write_catalog

SIDE_FILES = ("rejects.jsonl", "schema.json", "_info.json", "README.md", "train/sizes.json", "validation/sizes.json")


def stored_files(url: str) -> dict[str, bytes]:
    """Relative path -> bytes of every object under `url`."""
    fs, root = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return {name.removeprefix(f"{root}/"): fs.cat_file(name) for name in fs.find(root)}


def local_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def test_a_build_into_s3_holds_the_bytes_of_a_local_build_and_reads_back(s3_bucket, tiny_catalog, tiny_release):
    url = f"{s3_bucket}/releases/tiny"
    result = build(load_catalog(tiny_catalog), url, workers=1, progress=False)
    assert result.status == "built" and result.out == url
    stored, local = stored_files(url), local_files(tiny_release)
    assert not any(name.startswith(".work/") for name in stored)
    assert sorted(stored) == sorted(local)  # the same files: shards, side files, card thumbnails
    shards = sorted(name for name in local if name.endswith(".tar"))
    assert len(shards) == 7 and all(stored[name] == local[name] for name in shards)
    assert all(stored[name] == local[name] for name in SIDE_FILES) and json.loads(stored["manifest.json"]) == json.loads(
        local["manifest.json"]
    )
    assert all(stored[name] == local[name] for name in local if name.startswith("thumbnails/"))
    endpoint, secret = os.environ["AWS_ENDPOINT_URL"].encode(), os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    assert not any(endpoint in data or b"s3://" in data or secret in data for name, data in stored.items() if not name.endswith(".tar"))

    release = Release.open(url)
    assert release.lengths == {"train": 20, "validation": 6}
    ours = [sample["__key__"] for sample in dataengine.load(url, split="train")]
    assert ours == [sample["__key__"] for sample in dataengine.load(tiny_release, split="train")]
    assert verify_release(url) == []
    assert build(load_catalog(tiny_catalog), url, workers=1, progress=False).status == "up-to-date"
    checked = CliRunner().invoke(cli, ["verify", url, "--no-decode"])
    assert checked.exit_code == 0 and "OK" in checked.output, checked.output
    planned = CliRunner().invoke(cli, ["publish", url, "--repo-id", "someone/tiny", "--dry-run"])
    assert planned.exit_code == 0 and "train/tiny-000004.tar" in planned.output and "datasets/someone/tiny" in planned.output

    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/{shards[0]}", stored[shards[0]][:1024])  # truncated in the store
    problems = [str(problem) for problem in verify_release(url)]
    assert any(shards[0] in problem and "manifest says" in problem for problem in problems)
    said: list[str] = []
    from dataengine.run.build import build as run_build

    rebuilt = run_build(load_catalog(tiny_catalog), url, workers=0, progress=False, echo=said.append)
    assert rebuilt.status == "built" and "is damaged" in said[0]
    assert stored_files(url)[shards[0]] == local[shards[0]] and verify_release(url) == []


def test_force_and_the_refusals_hold_in_a_store(s3_bucket, tiny_catalog):
    spec = load_catalog(tiny_catalog, limit=2)
    url = f"{s3_bucket}/release"
    assert build(spec, url, workers=0, progress=False).status == "built"
    other = load_catalog(tiny_catalog, overrides=["seed=12"], limit=1)
    with pytest.raises(BuildError, match="holds a different release.*pass --force"):
        build(other, url, workers=0, progress=False)
    replaced = build(other, url, force=True, workers=0, progress=False)
    assert replaced.status == "built" and Release.open(url).manifest.catalog_sha256 == other.sha256
    assert sorted(name for name in stored_files(url) if name.endswith(".tar")) == ["train/tiny-000000.tar", "validation/tiny-000000.tar"]

    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/notes.txt", b"mine")
    with pytest.raises(BuildError, match=r"also holds notes.txt; move those away"):
        build(spec, url, force=True, workers=0, progress=False)
    assert fs.cat_file(f"{root}/notes.txt") == b"mine"
    fs.pipe_file(f"{root.rsplit('/', 1)[0]}/other/data.csv", b"1,2")
    with pytest.raises(BuildError, match="is not empty and holds no dataengine release"):
        build(spec, f"{s3_bucket}/other", force=True, workers=0, progress=False)


def test_a_wrong_or_unreachable_store_is_one_line_that_says_what_to_do(s3_bucket, tiny_catalog, monkeypatch):
    spec = load_catalog(tiny_catalog, limit=1)
    with pytest.raises(BuildError, match=r"^--out s3://no-such-bucket-here/x: the bucket does not exist .*create it first or fix the URL$"):
        build(spec, "s3://no-such-bucket-here/x", workers=0, progress=False)
    with pytest.raises(BuildError, match=r"unknown storage scheme nosuch://"):
        build(spec, "nosuch://bucket/x", workers=0, progress=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(BuildError, match=r"^--out cannot reach the store of s3://.*check the network and AWS_ENDPOINT_URL$") as caught:
        build(spec, f"{s3_bucket}/x", workers=0, progress=False)
    assert time.monotonic() - t0 < 20 and "\n" not in str(caught.value)


@pytest.mark.timeout(120)
def test_kill_9_mid_build_into_s3_then_resume_equals_clean_build(tmp_path, s3_bucket):
    catalog = write_catalog(
        tmp_path, name="killed", params={"width": 160, "height": 120}, splits={"train": {"num_samples": 40}}, shards={"max_samples": 2}
    )
    url = f"{s3_bucket}/killed"
    command = [sys.executable, "-m", "dataengine.cli", "build", str(catalog), "--out", url, "--workers", "1", "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    fs, root = fsspec.core.url_to_fs(url)

    def committed() -> list[str]:
        fs.invalidate_cache()
        return fs.glob(f"{root}/.work/done/*.json")

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(committed()) < 3 and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the client, its scheduler and its worker, mid-upload
    process.wait()
    finished_before = len(committed())
    assert not fs.exists(f"{root}/manifest.json"), "the build finished before it could be killed; make it longer"
    assert 3 <= finished_before < 20

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=100)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {finished_before} of 20 partitions already done" in resumed.stderr
    assert verify_release(url) == []

    clean = tmp_path / "clean"
    assert build(load_catalog(catalog), clean, workers=0, progress=False).status == "built"
    stored, local = stored_files(url), local_files(clean)
    shards = sorted(name for name in local if name.endswith(".tar"))
    assert len(shards) == 20 and sorted(name for name in stored if name.endswith(".tar")) == shards
    assert all(stored[name] == local[name] for name in shards)
    assert not any(name.startswith(".work/") for name in stored)  # uncommitted part shards of the kill are gone


def test_a_file_url_is_a_local_folder(tmp_path, tiny_catalog):
    result = build(load_catalog(tiny_catalog, limit=1), f"file://{tmp_path}/release", workers=0, progress=False)
    assert result.status == "built" and result.out == tmp_path / "release" and (tmp_path / "release" / "manifest.json").is_file()
