"""The one release reader: typed manifest, splits and configs, samples, and clear errors."""

import json
import os
import shutil

import numpy as np
import pytest

from dataengine.core.fields import encode_json
from dataengine.io.tar import ShardWriter
from dataengine.release.inspect import summarize_shard
from dataengine.release.reader import Manifest, Release, ReleaseError, configs_of


def test_open_reads_a_typed_manifest(tiny_release):
    release = Release.open(tiny_release)
    manifest = json.loads((tiny_release / "manifest.json").read_text())
    assert release.splits == ["train", "validation"] and release.configs == {"default": ["train", "validation"]}
    assert release.manifest.name == manifest["name"] and release.manifest.seed == manifest["seed"]
    assert [s.sha256 for s in release.shards("train")] == [s["sha256"] for s in manifest["splits"]["train"]["shards"]]
    assert release.manifest.members("depth") == ["depth.png"] and release.manifest.members("image") == ["rgb.png"]


def test_samples_decode_by_the_declared_kinds(tiny_release):
    release = Release.open(tiny_release)
    samples = list(release.samples("validation"))
    assert len(samples) == release.manifest.splits["validation"].num_samples == 6
    first = samples[0]
    assert first["rgb.png"].dtype == np.uint8 and first["depth.png"].dtype == np.float32 and isinstance(first["json"], dict)
    assert list(release.records("validation")) == [s["json"] for s in samples]
    assert [s["__key__"] for s in release.raw_samples("validation")] == [s["__key__"] for s in samples]
    assert isinstance(next(release.raw_samples("validation"))["rgb.png"], bytes)
    assert sum(1 for _ in release.samples()) == 26  # every split, in order


def test_a_missing_split_suggests_the_closest(tiny_release):
    with pytest.raises(ReleaseError, match="split 'valdation' is not in .*did you mean 'validation'"):
        Release.open(tiny_release).split_path("valdation")


def test_not_a_release_and_broken_manifests_are_one_clear_error(tmp_path, tiny_release):
    with pytest.raises(ReleaseError, match="is not a dataengine release"):
        Release.open(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_release, copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ReleaseError, match="not valid JSON"):
        Release.open(copy)
    (copy / "manifest.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ReleaseError, match="not a dataengine manifest"):
        Release.open(copy)


def test_configs_group_split_paths():
    assert configs_of(["clean/test", "fog/severity_1", "fog/severity_3"]) == {
        "clean": [("test", "clean/test")],
        "fog": [("severity_1", "fog/severity_1"), ("severity_3", "fog/severity_3")],
    }
    assert configs_of(["train"]) == {"default": [("train", "train")]}


def test_inspect_finds_the_manifest_of_a_config_split_and_decodes_depth(tmp_path):
    """A shard two folders down (`<config>/<split>/x.tar`) is decoded with the release's kinds."""
    root = tmp_path / "r"
    depth = np.zeros((4, 5), np.uint16)
    depth[1, 2] = 1234
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(depth).save(buffer, format="PNG")
    shard = ShardWriter(root / "fog" / "severity_3" / "r-000000.tar")
    shard.write("k0", {"depth.png": buffer.getvalue(), "json": encode_json({"a": 1})})
    record = shard.close()
    manifest = {
        "name": "r",
        "version": "1",
        "builder": "x",
        "sample_kind": "depth_c",
        "seed": 0,
        "catalog_sha256": "0",
        "fields": {"depth.png": "depth", "json": "json"},
        "rejects": {"total": 0},
        "splits": {
            "fog/severity_3": {
                "num_samples": 1,
                "num_bytes": record.num_bytes,
                "shards": [
                    {"path": "fog/severity_3/r-000000.tar", "num_samples": 1, "num_bytes": record.num_bytes, "sha256": record.sha256}
                ],
            }
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    Manifest.parse(manifest)
    summary = summarize_shard(root / "fog" / "severity_3" / "r-000000.tar")
    assert summary["first_sample"]["depth.png"].startswith("array float32 (4, 5)") and "max=1.23" in summary["first_sample"]["depth.png"]


def _config_release(root):
    """A release with configs (clean/test, fog/severity_1, fog/severity_3), one sample per split."""
    splits = {}
    for path in ("clean/test", "fog/severity_1", "fog/severity_3"):
        shard = ShardWriter(root / path / "r-000000.tar")
        shard.write(f"k-{path.replace('/', '-')}", {"json": encode_json({"split": path})})
        record = shard.close()
        entry = {"path": f"{path}/r-000000.tar", "num_samples": 1, "num_bytes": record.num_bytes, "sha256": record.sha256}
        splits[path] = {"num_samples": 1, "num_bytes": record.num_bytes, "shards": [entry]}
    manifest = {"name": "r", "version": "1", "builder": "x", "sample_kind": "depth_c", "seed": 0, "catalog_sha256": "0"}
    (root / "manifest.json").write_text(json.dumps({**manifest, "fields": {"json": "json"}, "rejects": {"total": 0}, "splits": splits}))
    return Release.open(root)


def test_config_and_split_mistakes_name_the_closest_and_the_choices(tmp_path):
    release = _config_release(tmp_path / "r")
    assert release.configs == {"clean": ["test"], "fog": ["severity_1", "severity_3"]}
    assert release.lengths == {"clean/test": 1, "fog/severity_1": 1, "fog/severity_3": 1} and len(release) == 3
    with pytest.raises(ReleaseError, match=r"config 'fgo' is not in .* \(did you mean 'fog'\?\); configs: clean, fog$"):
        release.split_path("severity_3", "fgo")
    with pytest.raises(
        ReleaseError, match=r"split 'severity_4' is not in config 'fog' of .*did you mean 'severity_.'.*its splits: severity_1, severity_3$"
    ):
        release.split_path("severity_4", "fog")
    with pytest.raises(
        ReleaseError, match=r"split 'severity_3' belongs to a config of .*: give one, e.g. config='fog'.*configs: clean, fog$"
    ):
        release.split_path("severity_3")
    with pytest.raises(ReleaseError, match=r"split 'tset' is not in .*; configs: clean, fog$"):
        release.split_path("tset")
    assert [s["json"] for s in release.load("severity_3", config="fog")] == [{"split": "fog/severity_3"}]
    assert release.manifest["splits"]["fog/severity_1"]["num_samples"] == 1  # the manifest as written, by item


def test_inspect_a_release_folder_summarises_the_first_shard_of_each_split(tmp_path):
    from dataengine.release.inspect import summarize_release

    summaries = summarize_release(_config_release(tmp_path / "r").path)
    assert [(s["split"], s["split_shards"], s["samples"]) for s in summaries] == [
        ("clean/test", 1, 1),
        ("fog/severity_1", 1, 1),
        ("fog/severity_3", 1, 1),
    ]
    assert summaries[2]["first_sample"]["json"] == "json {split: 'fog/severity_3'}"


def test_a_manifest_that_is_a_list_a_folder_a_fifo_or_too_deep_is_one_line(tmp_path, tiny_release):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_release, copy)
    manifest = copy / "manifest.json"
    manifest.write_text("[1, 2]")
    with pytest.raises(
        ReleaseError, match=r"manifest\.json holds a JSON array, not the object a dataengine manifest is; rebuild the release"
    ):
        Release.open(copy)
    manifest.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReleaseError, match=r"manifest\.json nests too deeply to be a dataengine manifest; rebuild the release"):
        Release.open(copy)
    manifest.unlink()
    manifest.mkdir()
    with pytest.raises(ReleaseError, match=r"manifest\.json is not a regular file; .*rebuild the release"):
        Release.open(copy)
    manifest.rmdir()
    os.mkfifo(manifest)  # opening it would block until a writer comes
    with pytest.raises(ReleaseError, match=r"manifest\.json is not a regular file"):
        Release.open(copy)


@pytest.mark.timeout(60)  # reading a FIFO would block forever
def test_inspect_and_samples_refuse_a_fifo_shard(tmp_path, tiny_release):
    from dataengine.io.tar import ShardError

    copy = tmp_path / "copy"
    shutil.copytree(tiny_release, copy)
    release = Release.open(copy)
    shard = copy / release.shards("train")[0].path
    shard.unlink()
    os.mkfifo(shard)
    with pytest.raises(ShardError, match=r"is a FIFO, not a shard; a shard is a regular \.tar file, rebuild or replace it"):
        summarize_shard(shard)
    with pytest.raises(ShardError, match=r"is a FIFO, not a shard"):
        next(release.samples("train"))
