"""Faults a build must survive: kill -9 at seeded random moments in several builders, a read-only
output folder, and a full disk mid-build and during finalisation, each on a real small tmpfs.

Every case ends in a clear one-line error or a release that a plain rerun finishes byte-identically
to an uninterrupted build. The tmpfs cases need permission to mount one (root, as in CI containers);
they are skipped, saying so, where the machine does not allow it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from builders.fixtures import write_kitti_tree, write_vqa_sources
from dataengine.api import build
from dataengine.cli import cli
from dataengine.core.builder import create_builder
from dataengine.core.catalog import load_catalog
from dataengine.publish.card import write_card
from dataengine.release.verify import verify_release
from dataengine.run.build import BuildError
from dataengine.run.build import build as run_build
from tests.builders.robustness.conftest import kitti_c_catalog
from tests.conftest import write_catalog
from tests.dataengine.run.test_build import FRAGILE, _cli

pytestmark = pytest.mark.timeout(180)
SEED = 16  # the kill moments are random, and the same on every run


def release_bytes(release: Path) -> dict[str, bytes]:
    """Shards (at any depth: a config's splits nest), manifest and rejects: what must be identical after any interruption."""
    shards = {str(path.relative_to(release)): path.read_bytes() for path in sorted(release.rglob("*.tar"))}
    return {**shards, **{name: (release / name).read_bytes() for name in ("manifest.json", "rejects.jsonl")}}


def differing(release: Path, other: Path) -> list[str]:
    """The files of `release_bytes` that differ between two releases (or are in one only)."""
    mine, theirs = release_bytes(release), release_bytes(other)
    return sorted(name for name in mine.keys() | theirs.keys() if mine.get(name) != theirs.get(name))


# ----------------------------------------------------------------------------------------------
# kill -9 at seeded random moments, in three builders


def _scenes_catalog(directory: Path) -> Path:
    return write_catalog(
        directory,
        name="killed-scenes",
        params={"width": 160, "height": 120},
        splits={"train": {"num_samples": 40}},
        shards={"max_samples": 2},
    )


def _kitti_catalog(directory: Path) -> Path:
    tree = write_kitti_tree(directory / "kitti", frames_per_drive=4, drives=3, width=320, height=96)
    sources = {"root": tree.root, "split_file": tree.split_file, "gt_root": tree.gt_root}
    path = kitti_c_catalog(directory, sources, ["fog", "dark", "pixelate"], [1, 3], name="killed_kitti_c")
    document = yaml.safe_load(path.read_text())
    document["params"].update(width=160, height=48)
    document["shards"]["max_samples"] = 2
    path.write_text(yaml.safe_dump(document))
    return path


def _vqa_catalog(directory: Path) -> Path:
    """The official-format VQA fixture with 240 more OK-VQA questions, two to a partition."""
    sources = write_vqa_sources(directory / "vqa")
    questions = json.loads(sources.okvqa_questions.read_text())
    annotations = json.loads(sources.okvqa_annotations.read_text())
    template = annotations["annotations"][0]
    for n in range(240):
        image_id = (139, 285, 632, 724, 776)[n % 5]
        questions["questions"].append({"image_id": image_id, "question": f"What is extra thing {n}?", "question_id": 5000000 + n})
        annotations["annotations"].append({**template, "image_id": image_id, "question_id": 5000000 + n})
    sources.okvqa_questions.write_text(json.dumps(questions))
    sources.okvqa_annotations.write_text(json.dumps(annotations))
    document = {
        "name": "killed-vqa",
        "version": "0.1.0",
        "builder": "vqa_knowledge",
        "seed": 3,
        "params": {"cap_commonsense": None, "cap_world_knowledge": None},
        "sources": {k: str(v) for k, v in sources.__dict__.items()},
        "splits": {"eval": {}},
        "shards": {"max_samples": 2},
    }
    path = directory / "killed-vqa.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


CATALOGS = {"scenes": _scenes_catalog, "kitti_c": _kitti_catalog, "vqa_knowledge": _vqa_catalog}


def _kill_when_done(catalog: Path, out: Path, count: int, delay: float) -> int:
    """Run the build command and kill -9 its whole process group `delay` s after `count` partitions are done."""
    process = _cli("build", str(catalog), "--out", str(out), "--workers", "0", "--no-progress", start_new_session=True)
    done = out / ".work" / "done"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and len(list(done.glob("*.json"))) < count:
        time.sleep(0.002)
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "manifest.json").exists(), "the build finished before it could be killed; make it longer"
    return len(list(done.glob("*.json")))


@pytest.mark.parametrize("builder", list(CATALOGS))
def test_kill_9_twice_at_seeded_moments_then_resume_equals_an_uninterrupted_build(tmp_path, builder):
    catalog = CATALOGS[builder](tmp_path)
    spec = load_catalog(catalog)
    partitions = len(create_builder(spec.builder).plan(spec))
    rng = random.Random(f"{SEED}-{builder}")
    first = rng.randint(1, partitions // 3)
    second = rng.randint(first + 1, partitions // 2)
    out = tmp_path / "killed"
    done_first = _kill_when_done(catalog, out, first, rng.uniform(0, 0.02))
    done_second = _kill_when_done(catalog, out, second, rng.uniform(0, 0.02))  # a resumed build, killed again
    assert first <= done_first <= done_second < partitions

    said: list[str] = []
    resumed = build(spec, out, workers=0, progress=False, echo=said.append)
    assert resumed.status == "built" and any(f"{done_second} of {partitions} partitions already done" in line for line in said)
    assert verify_release(out) == []
    clean = build(spec, tmp_path / "clean", workers=0, progress=False)
    assert differing(out, tmp_path / "clean") == []
    assert len(resumed) + resumed.manifest.rejects_total == len(clean) + clean.manifest.rejects_total


# ----------------------------------------------------------------------------------------------
# A small real filesystem: read-only, full


@contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs on this machine ({mounted.stderr.strip() or mounted.returncode}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def _command(catalog: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["build", str(catalog), "--out", str(out), "--workers", "0", "--no-progress", *extra])


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_a_read_only_out_is_one_line_and_an_interrupted_build_there_resumes_once_writable(tmp_path):
    catalog = write_catalog(tmp_path, name="ro", builder="fragile_scenes")
    with tmpfs(tmp_path / "ro", "4m", read_only=True) as disk:
        result = _command(catalog, disk / "release")
        assert result.exit_code == 2
        assert (
            _error_line(result)
            == f"error: --out {disk}/release: cannot write in {disk} (Read-only file system); choose a folder you can write to"
        )
        assert list(disk.iterdir()) == []
    with tmpfs(tmp_path / "rw", "16m") as disk:
        out = disk / "release"
        FRAGILE["broken"] = True  # one partition fails: an unfinished build, the others kept in .work
        try:
            result = _command(catalog, out, "--retries", "0")
        finally:
            FRAGILE["broken"] = False
        assert result.exit_code == 1 and not (out / "manifest.json").exists()
        before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
        remount(disk, "ro")
        result = _command(catalog, out)
        assert result.exit_code == 2 and "(Read-only file system); choose a folder you can write to" in _error_line(result)
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
        remount(disk, "rw")
        result = _command(catalog, out)
        assert result.exit_code == 0, result.output
        assert verify_release(out) == []


def test_a_full_disk_mid_build_fails_in_one_line_and_a_rerun_with_space_finishes_it(tmp_path):
    catalog = write_catalog(
        tmp_path, name="full", params={"width": 320, "height": 240}, splits={"train": {"num_samples": 12}}, shards={"max_samples": 2}
    )
    with tmpfs(tmp_path / "disk", "100k") as disk:  # room for two of the six ~35 kB shards
        out = disk / "release"
        result = _command(catalog, out, "--retries", "0")
        assert result.exit_code == 1
        assert _error_line(result).endswith("partition(s) failed; rerun the same command to resume")
        assert "No space left on device" in result.output
        assert not (out / "manifest.json").exists() and not list(out.rglob(".*.partial"))
        done = len(list((out / ".work" / "done").glob("*.json")))
        assert 0 < done < 6
        remount(disk, "size=32m")
        result = _command(catalog, out)
        assert result.exit_code == 0 and f"resuming: {done} of 6 partitions already done" in result.output, result.output
        clean = build(load_catalog(catalog), tmp_path / "clean", workers=0, progress=False)
        assert differing(out, clean.out) == []
        assert verify_release(out) == []


def test_a_full_disk_while_finalising_fails_in_one_line_and_a_rerun_finishes_the_release(tmp_path):
    """The disk fills just before the card is written (README.md, the last side file before the manifest)."""
    catalog = write_catalog(tmp_path, name="final", splits={"train": {"num_samples": 8}, "validation": {"num_samples": 4}})
    spec = load_catalog(catalog)
    with tmpfs(tmp_path / "disk", "8m") as disk:
        out = disk / "release"
        filler = disk / "filler"

        def fill_then_card(*args, **options) -> None:
            with open(filler, "wb") as handle:  # every free block, then the real card writer meets the full disk
                try:
                    while True:
                        handle.write(b"\0" * (1 << 16))
                        handle.flush()
                except OSError:
                    pass
            write_card(*args, **options)

        with pytest.raises(BuildError) as failed:
            run_build(spec, out, workers=0, progress=False, side_files=(fill_then_card,))
        message = str(failed.value)
        assert "\n" not in message and "No space left on device" in message and "rerun" in message, message
        assert not (out / "manifest.json").exists() and not (out / "README.md").exists()
        assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size == 0 and p.name != "rejects.jsonl"]
        filler.unlink()
        said: list[str] = []
        finished = build(spec, out, workers=0, progress=False, echo=said.append)
        assert finished.status == "built" and any("resuming: 3 of 3 partitions already done" in line for line in said), said
        assert (out / "README.md").stat().st_size > 0 and verify_release(out) == []
        clean = build(spec, tmp_path / "clean", workers=0, progress=False)
        assert differing(out, clean.out) == []
        assert (out / "README.md").read_bytes() == (clean.out / "README.md").read_bytes()


def test_a_zero_byte_card_or_side_file_is_never_taken_for_a_finished_release(tmp_path, tiny_catalog, tiny_release):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_release, copy)
    spec = load_catalog(tiny_catalog)
    for name in ("README.md", "schema.json"):
        (copy / name).write_bytes(b"")  # what a writer that is not atomic leaves on a full disk
        said: list[str] = []
        result = build(spec, copy, workers=0, progress=False, echo=said.append)
        assert result.status == "built" and f"{name} is empty" in said[0], said
        assert (copy / name).read_bytes() == (tiny_release / name).read_bytes()
    (copy / "manifest.json").write_bytes(b"")
    result = _command(tiny_catalog, copy)
    assert (
        result.exit_code == 2
        and "holds a manifest.json (or .work/build.json) that dataengine did not write or cannot read" in _error_line(result)
    )
