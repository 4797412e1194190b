"""The loader: every key exactly once per epoch across workers and ranks, seeded shuffles, errors."""

import io
import re
import shutil
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import dataengine
from dataengine.io.tar import ShardError
from dataengine.release.load import ReleaseDataset


def keys_of(release, world, workers, **options):
    seen = []
    per_rank = []
    for rank in range(world):
        rank_keys = []
        for worker in range(workers):
            dataset = ReleaseDataset(release, "train", rank=rank, world_size=world, decode=None, **options)
            dataset.set_worker(worker, workers)
            rank_keys += [s["__key__"] for s in dataset]
        per_rank.append(rank_keys)
        seen += rank_keys
    return seen, per_rank


@pytest.mark.parametrize("world,workers", [(1, 1), (1, 2), (2, 1), (2, 2), (1, 5), (3, 2), (2, 4)])
def test_every_key_once_per_epoch(tiny_release, world, workers):
    # the tiny release has 5 train shards of 4: both by-shard and by-sample splitting are exercised
    seen, _ = keys_of(tiny_release, world, workers)
    assert sorted(seen) == [f"scene-train-{i:07d}" for i in range(20)]


@pytest.mark.parametrize("world,workers", [(3, 1), (3, 2), (6, 1)])
def test_equal_epochs_per_rank(tiny_release, world, workers):
    seen, per_rank = keys_of(tiny_release, world, workers, equal_epochs=True)
    assert {len(keys) for keys in per_rank} == {20 // world}
    assert len(set(seen)) == len(seen) == world * (20 // world)
    dataset = ReleaseDataset(tiny_release, "train", rank=0, world_size=world, equal_epochs=True)
    assert len(dataset) == 20 // world


def test_seeded_shuffle_is_reproducible_and_reshuffles_per_epoch(tiny_release):
    def order(seed, epoch):
        dataset = ReleaseDataset(tiny_release, "train", shuffle=True, seed=seed, buffer=8, decode=None)
        dataset.set_epoch(epoch)
        return [s["__key__"] for s in dataset]

    first = order(0, 0)
    assert first == order(0, 0)
    assert first != order(0, 1) and first != order(1, 0)
    assert sorted(first) == sorted(order(0, 1)) == [f"scene-train-{i:07d}" for i in range(20)]
    plain = [s["__key__"] for s in ReleaseDataset(tiny_release, "train", decode=None)]
    assert plain == sorted(plain)


def test_decoding_and_the_error_policy(tmp_path, tiny_release, caplog):
    release = tmp_path / "r"
    shutil.copytree(tiny_release, release)
    sample = next(iter(dataengine.load(release, "train")))
    assert sample["rgb.png"].dtype == np.uint8 and sample["depth.png"].dtype == np.float32 and isinstance(sample["json"], dict)
    shard = release / "train" / "tiny-000001.tar"
    shard.write_bytes(shard.read_bytes()[:7000])  # truncated mid-member
    with pytest.raises((tarfile.TarError, EOFError)):
        list(ReleaseDataset(release, "train"))
    with caplog.at_level("WARNING"):
        kept = [s["__key__"] for s in ReleaseDataset(release, "train", errors="skip")]
    assert "tiny-000001.tar" in caplog.text
    assert len(kept) < 20 and len(kept) == len(set(kept)) and "scene-train-0000019" in kept
    with pytest.raises(ValueError, match="errors must be"):
        ReleaseDataset(release, "train", errors="ignore")


def test_unknown_split_names_the_choices(tiny_release):
    with pytest.raises(ValueError, match="splits: train, validation"):
        ReleaseDataset(tiny_release, "test")
    assert Counter(s["json"]["split"] for s in dataengine.load(tiny_release, "validation")) == {"validation": 6}


def _copy_with_shard(tiny_release: Path, out: Path, shard: str, members: list[tuple[str, bytes]] | None) -> Path:
    """A copy of the release whose `shard` holds exactly `members` (name, bytes), or is a symlink to /dev/zero."""
    shutil.copytree(tiny_release, out)
    target = out / shard
    target.unlink()
    if members is None:
        target.symlink_to("/dev/zero")
        return out
    with tarfile.open(target, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out


def _members(release: Path, shard: str) -> list[tuple[str, bytes]]:
    with tarfile.open(release / shard) as archive:
        return [(info.name, archive.extractfile(info).read()) for info in archive]


@pytest.mark.parametrize("case", ["missing", "duplicate", "devzero", "truncated"])
def test_incomplete_samples_duplicate_keys_and_short_shards_fail_loudly_or_are_skipped(tmp_path, tiny_release, caplog, case):
    shard = "train/tiny-000001.tar"
    original = _members(tiny_release, shard)
    key = original[0][0].split(".", 1)[0]  # the shard's first sample
    other = _members(tiny_release, "train/tiny-000000.tar")[0][0].split(".", 1)[0]  # a key of the shard before
    members, message = {
        "missing": ([m for m in original if m[0] != f"{key}.mask.png"], f"sample '{key}' is incomplete: missing mask.png"),
        "duplicate": ([(n.replace(key, other, 1), d) for n, d in original], f"sample key '{other}' appears twice"),
        "devzero": (None, "is not a regular file, not a shard"),  # refused before a read could see an empty archive
        "truncated": (original[:-4], "holds 3 samples, the manifest says 4"),  # the last sample's four members gone
    }[case]
    copy = _copy_with_shard(tiny_release, tmp_path / case, shard, members)
    with pytest.raises(ShardError, match=re.escape(message)):
        list(dataengine.load(copy, "train", decode=None))
    with caplog.at_level("WARNING", logger="dataengine.release.load"):
        kept = [s["__key__"] for s in dataengine.load(copy, "train", decode=None, errors="skip")]
    assert message in caplog.text
    assert len(kept) == len(set(kept)) and len(kept) == (20 - 4 if case == "devzero" else 20 - 1)


def test_a_member_that_leaves_the_archive_is_refused(tmp_path, tiny_release):
    shard = "train/tiny-000001.tar"
    copy = _copy_with_shard(tiny_release, tmp_path / "escaping", shard, [("../x.rgb.png", b"x"), *_members(tiny_release, shard)])
    with pytest.raises(ShardError, match="leaves the archive"):
        list(dataengine.load(copy, "train", decode=None))
