"""verify must catch every kind of damage, and name the shard and the problem."""

import json
import os
import shutil
from pathlib import Path

import pytest

from dataengine.core.fields import encode_json
from dataengine.io.tar import ShardWriter, read_samples
from dataengine.release.verify import verify_release


@pytest.fixture
def release(tmp_path, tiny_release) -> Path:
    copy = tmp_path / "release"
    shutil.copytree(tiny_release, copy)
    return copy


def rewrite_shard(release: Path, split: str, index: int, samples) -> None:
    """Replace a shard by other code's rewrite, updating the manifest so its hashes stay consistent."""
    entry = json.loads((release / "manifest.json").read_text())
    shard_entry = entry["splits"][split]["shards"][index]
    path = release / shard_entry["path"]
    path.unlink()
    writer = ShardWriter(path)
    for key, members in samples:
        writer.write(key, members)
    shard = writer.close()
    shard_entry.update(num_bytes=shard.num_bytes, sha256=shard.sha256)
    (release / "manifest.json").write_text(json.dumps(entry))


def messages(release: Path) -> list[str]:
    return [str(problem) for problem in verify_release(release)]


def test_clean_release_passes(release):
    assert messages(release) == []


def test_flipped_byte(release):
    shard = release / "train" / "tiny-000002.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x01
    shard.write_bytes(bytes(data))
    found = messages(release)
    assert any(m.startswith("train/tiny-000002.tar: sha256") for m in found)
    assert all("tiny-000002" in m for m in found)


def test_truncated_shard(release):
    shard = release / "validation" / "tiny-000001.tar"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    found = messages(release)
    assert any("validation/tiny-000001.tar: size" in m and "truncated" in m for m in found)
    assert any("validation/tiny-000001.tar" in m and ("unreadable" in m or "holds" in m) for m in found)


def test_missing_shard(release):
    (release / "train" / "tiny-000004.tar").unlink()
    assert messages(release) == ["train/tiny-000004.tar: missing shard"]


def test_extra_shard(release):
    shutil.copy(release / "train" / "tiny-000000.tar", release / "train" / "tiny-000099.tar")
    assert messages(release) == ["train/tiny-000099.tar: extra shard not listed in manifest.json"]


def test_schema_drift_is_caught_even_with_consistent_hashes(release):
    """A shard rewritten by other code with a changed record: hashes updated, schema still catches it."""
    path = release / "train" / "tiny-000001.tar"
    samples = list(read_samples(path))
    record = json.loads(samples[0][1]["json"])
    record["objects"][0]["confidence"] = 0.5
    samples[0][1]["json"] = encode_json(record)
    rewrite_shard(release, "train", 1, samples)
    found = messages(release)
    assert len(found) == 1
    assert "train/tiny-000001.tar: sample 'scene-train-0000004' fails the schema" in found[0] and "confidence" in found[0]


def test_undecodable_image_is_caught(release):
    path = release / "validation" / "tiny-000000.tar"
    samples = list(read_samples(path))
    samples[1][1]["rgb.png"] = b"\x89PNG not really"
    rewrite_shard(release, "validation", 0, samples)
    found = messages(release)
    assert len(found) == 1 and "'rgb.png' does not decode as image" in found[0]


def test_not_a_release(tmp_path):
    assert "no manifest.json" in messages(tmp_path)[0]


def test_a_broken_manifest_is_one_finding(release):
    (release / "manifest.json").write_text("[]")
    assert messages(release) == [
        f"manifest.json: unreadable: {release}/manifest.json holds a JSON array, not the object a dataengine manifest is; rebuild the release"
    ]
    (release / "manifest.json").unlink()
    (release / "manifest.json").mkdir()
    assert messages(release) == [
        f"manifest.json: unreadable: {release}/manifest.json is not a regular file; a release's manifest is a JSON file, rebuild the release"
    ]


@pytest.mark.timeout(60)  # hashing a FIFO would block forever
def test_a_shard_that_is_a_fifo_or_a_folder_is_a_finding_not_a_hang(release):
    shard = sorted((release / "train").glob("*.tar"))[0]
    shard.unlink()
    os.mkfifo(shard)
    found = [m for m in messages(release) if m.startswith(f"train/{shard.name}")]
    assert found == [f"train/{shard.name}: {shard} is a FIFO, not a shard; a shard is a regular .tar file, rebuild or replace it"]
    shard.unlink()
    shard.mkdir()
    found = [m for m in messages(release) if m.startswith(f"train/{shard.name}")]
    assert found == [f"train/{shard.name}: {shard} is a folder, not a shard; a shard is a regular .tar file, rebuild or replace it"]
