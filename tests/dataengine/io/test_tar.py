import hashlib
import os
import tarfile

import pytest
import webdataset as wds

from dataengine.io.tar import ShardError, ShardWriter, count_samples, member_offsets, read_samples, sha256_file, split_member


def _samples(n: int) -> list[tuple[str, dict[str, bytes]]]:
    return [(f"k{i:04d}", {"txt": f"sample {i}".encode(), "b.bin": bytes([i % 256]) * (i * 37 % 1500), "a.json": b"{}"}) for i in range(n)]


def _write(path, samples):
    writer = ShardWriter(path)
    for key, members in samples:
        writer.write(key, members)
    return writer.close()


def test_bytes_are_deterministic(tmp_path):
    first = _write(tmp_path / "a" / "x.tar", _samples(25))
    second = _write(tmp_path / "b" / "x.tar", _samples(25))
    assert (tmp_path / "a" / "x.tar").read_bytes() == (tmp_path / "b" / "x.tar").read_bytes()
    assert first.sha256 == second.sha256 == hashlib.sha256((tmp_path / "a" / "x.tar").read_bytes()).hexdigest()
    assert first.num_bytes == (tmp_path / "a" / "x.tar").stat().st_size
    assert first.num_samples == 25


def test_headers_are_fixed_and_members_sorted_and_contiguous(tmp_path):
    _write(tmp_path / "x.tar", _samples(5))
    with tarfile.open(tmp_path / "x.tar") as archive:
        members = archive.getmembers()
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" and m.mode == 0o444 for m in members)
    names = [m.name for m in members]
    assert names[:3] == ["k0000.a.json", "k0000.b.bin", "k0000.txt"]
    assert len(names) == 15


def test_standard_readers_agree(tmp_path):
    samples = _samples(12)
    _write(tmp_path / "x.tar", samples)
    ours = list(read_samples(tmp_path / "x.tar"))
    theirs = [
        (s["__key__"], {k: v for k, v in s.items() if not k.startswith("__")})
        for s in wds.WebDataset(str(tmp_path / "x.tar"), shardshuffle=False)
    ]
    assert ours == theirs == samples


def test_nothing_appears_under_the_final_name_until_close(tmp_path):
    writer = ShardWriter(tmp_path / "x.tar")
    writer.write("k1", {"txt": b"a"})
    assert not (tmp_path / "x.tar").exists()
    assert writer.tmp_path.exists()
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_context_manager_aborts_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / "x.tar") as writer:
            writer.write("k1", {"txt": b"a"})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("key", ["a.b", "", "a b", "../up", "/abs"])
def test_bad_keys_are_refused(tmp_path, key):
    writer = ShardWriter(tmp_path / "x.tar")
    with pytest.raises(ShardError):
        writer.write(key, {"txt": b"a"})
    writer.abort()


def test_duplicate_key_and_non_bytes_refused(tmp_path):
    writer = ShardWriter(tmp_path / "x.tar")
    writer.write("k1", {"txt": b"a"})
    with pytest.raises(ShardError, match="duplicate"):
        writer.write("k1", {"txt": b"b"})
    with pytest.raises(ShardError, match="must be bytes"):
        writer.write("k2", {"txt": "text"})
    writer.abort()


def test_long_member_names_round_trip(tmp_path):
    key = "d/" * 60 + "k"
    _write(tmp_path / "x.tar", [(key, {"txt": b"x"})])
    assert list(read_samples(tmp_path / "x.tar")) == [(key, {"txt": b"x"})]
    assert count_samples(tmp_path / "x.tar") == 1


def test_non_contiguous_samples_are_detected(tmp_path):
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as archive:
        for name in ["a.txt", "b.txt", "a.json"]:
            info = tarfile.TarInfo(name)
            info.size = 1
            import io

            archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ShardError, match="not contiguous"):
        list(read_samples(path))


def test_split_member_follows_webdataset():
    assert split_member("a/b/0001.depth.png") == ("a/b/0001", "depth.png")
    with pytest.raises(ShardError):
        split_member("a/b/nodot")


def _raw_tar(path, names, kind=tarfile.REGTYPE):
    import io

    with tarfile.open(path, "w") as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.size = 1 if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(b"x") if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("name", ["../x.txt", "a/../../x.txt", "/abs/x.txt"])
def test_members_leaving_the_archive_are_refused(tmp_path, name):
    _raw_tar(tmp_path / "bad.tar", [name])
    with pytest.raises(ShardError, match="leaves the archive"):
        list(read_samples(tmp_path / "bad.tar"))


def test_links_and_repeated_fields_are_refused(tmp_path):
    _raw_tar(tmp_path / "link.tar", ["a.txt"], kind=tarfile.SYMTYPE)
    with pytest.raises(ShardError, match="not a regular file"):
        list(read_samples(tmp_path / "link.tar"))
    _raw_tar(tmp_path / "twice.tar", ["a.txt", "a.txt"])
    with pytest.raises(ShardError, match="field 'txt' twice"):
        list(read_samples(tmp_path / "twice.tar"))


def test_read_samples_takes_paths_urls_and_open_files(tmp_path):
    samples = _samples(7)
    _write(tmp_path / "x.tar", samples)
    with open(tmp_path / "x.tar", "rb") as handle:
        from_file = list(read_samples(handle))
    assert list(read_samples(tmp_path / "x.tar")) == list(read_samples(f"file://{tmp_path}/x.tar")) == from_file == samples


def test_member_offsets_locate_each_member(tmp_path):
    from dataengine.io.tar import member_offsets, read_member

    samples = _samples(6)
    _write(tmp_path / "x.tar", samples)
    located = member_offsets(tmp_path / "x.tar")
    assert {
        key: {name: read_member(tmp_path / "x.tar", where) for name, where in members.items()} for key, members in located.items()
    } == dict(samples)


@pytest.mark.timeout(30)  # a FIFO opened for reading blocks until a writer comes: the test would hang
def test_a_shard_path_that_is_a_fifo_or_a_folder_is_refused_without_blocking(tmp_path):
    fifo, folder = tmp_path / "fifo.tar", tmp_path / "folder.tar"
    os.mkfifo(fifo)
    folder.mkdir()
    for path, what in ((fifo, "a FIFO"), (folder, "a folder")):
        for read in (
            lambda p: list(read_samples(p)),
            lambda p: list(read_samples(f"file://{p}")),
            sha256_file,
            count_samples,
            member_offsets,
        ):
            with pytest.raises(
                ShardError, match=rf"{path.name} is {what}, not a shard; a shard is a regular \.tar file, rebuild or replace it"
            ):
                read(path)
