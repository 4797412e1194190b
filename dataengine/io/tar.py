"""Deterministic, atomic WebDataset tar shards.

Every header field that could vary between runs is fixed (mtime, uid/gid, names, mode), members of
a sample are contiguous and sorted, and a shard only appears under its final name after it was
flushed, fsynced and re-counted. The sha256 is computed while writing, at no extra read.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dataengine.io.atomic import PARTIAL_SUFFIX, fsync_dir

TAR_MTIME = 0
BLOCK = tarfile.BLOCKSIZE
RECORD = tarfile.RECORDSIZE
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
FIELD_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


class ShardError(ValueError):
    """A shard (or a sample about to enter one) breaks the format."""


@dataclass(frozen=True)
class ShardRecord:
    """What the manifest says about one shard."""

    path: str
    num_samples: int
    num_bytes: int
    sha256: str


def check_key(key: str) -> None:
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ShardError(f"sample key {key!r} must be letters, digits, '_' or '-' (optionally '/'-separated), with no dots")


def check_member(name: str) -> None:
    if not FIELD_PATTERN.match(name):
        raise ShardError(f"member name {name!r} must look like 'field.ext' (letters, digits, '_', '-', dots)")


def member_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = TAR_MTIME
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape")


class _HashingFile:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, path: Path):
        self._file = open(path, "wb", buffering=1 << 20)
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        self._file.write(data)
        self.sha256.update(data)
        self.size += len(data)

    def sync_and_close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def close(self) -> None:
        self._file.close()


class ShardWriter:
    """Write one shard to a temporary name; `close()` makes it appear atomically under `path`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
        self._out = _HashingFile(self.tmp_path)
        self._keys: set[str] = set()
        self.num_samples = 0

    @property
    def num_bytes(self) -> int:
        return self._out.size

    def write(self, key: str, members: Mapping[str, bytes]) -> int:
        """Append one sample (members sorted by name); returns the bytes it took."""
        check_key(key)
        if key in self._keys:
            raise ShardError(f"duplicate sample key {key!r} in shard {self.path.name}")
        if not members:
            raise ShardError(f"sample {key!r} has no members")
        before = self._out.size
        for name in sorted(members):
            check_member(name)
            data = members[name]
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ShardError(f"member {name!r} of {key!r} must be bytes, got {type(data).__name__}")
            self._out.write(member_header(f"{key}.{name}", len(data)))
            self._out.write(data)
            remainder = len(data) % BLOCK
            if remainder:
                self._out.write(b"\0" * (BLOCK - remainder))
        self._keys.add(key)
        self.num_samples += 1
        return self._out.size - before

    def close(self) -> ShardRecord:
        """Finish the archive, fsync, re-count its samples from disk, then rename into place."""
        end = b"\0" * (2 * BLOCK)
        total = self._out.size + len(end)
        padding = b"\0" * ((RECORD - total % RECORD) % RECORD)
        self._out.write(end + padding)
        self._out.sync_and_close()
        counted = count_samples(self.tmp_path)
        if counted != self.num_samples:
            self.abort()
            raise ShardError(f"{self.path.name}: wrote {self.num_samples} samples but the file holds {counted}")
        os.replace(self.tmp_path, self.path)
        fsync_dir(self.path.parent)
        return ShardRecord(str(self.path), self.num_samples, self._out.size, self._out.sha256.hexdigest())

    def abort(self) -> None:
        """Drop the temporary file, also when closing it fails (a full disk cannot take the buffered rest)."""
        try:
            self._out.close()
        except OSError:
            pass
        finally:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def split_member(name: str) -> tuple[str, str]:
    """`a/b/0001.depth.png` -> (`a/b/0001`, `depth.png`), the webdataset rule."""
    directory, _, base = name.rpartition("/")
    stem, dot, field = base.partition(".")
    if not dot or not stem:
        raise ShardError(f"member {name!r} has no '<key>.<field>' form")
    return (f"{directory}/{stem}" if directory else stem), field


def _checked_key(info: tarfile.TarInfo, where: str) -> tuple[str, str]:
    if not info.isreg():
        raise ShardError(f"{where}: member {info.name!r} is not a regular file")
    if info.name.startswith("/") or ".." in info.name.split("/"):
        raise ShardError(f"{where}: member {info.name!r} leaves the archive's folder")
    return split_member(info.name)


def check_regular(path: str | Path) -> None:
    """Refuse a local shard path that is not a regular file (a FIFO would block a reader forever, a
    folder fails late); a missing file raises FileNotFoundError as opening it would."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        what = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ShardError(f"{path} is {what}, not a shard; a shard is a regular .tar file, rebuild or replace it")


def is_local(source: str | Path) -> bool:
    return isinstance(source, Path) or "://" not in source or source.startswith("file://")


def read_samples(source: str | Path | BinaryIO, where: str = "") -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) per sample of a tar read as a stream, so remote shards need no seeking.

    `source` is a local path, an fsspec URL (`hf://...`, `s3://...`) or an open binary file. Refuses
    anything but regular files, names that leave the archive, a sample whose members are not
    contiguous, and a field given twice.
    """
    if isinstance(source, (str, Path)):
        import fsspec

        if is_local(source):
            check_regular(str(source).removeprefix("file://"))
        with fsspec.open(str(source), "rb") as handle:
            yield from read_samples(handle, where or str(source))
        return
    where = where or getattr(source, "name", "<stream>")
    current: str | None = None
    members: dict[str, bytes] = {}
    seen: set[str] = set()
    with tarfile.open(fileobj=source, mode="r|") as archive:
        for info in archive:
            key, field = _checked_key(info, where)
            if key != current:
                if current is not None:
                    yield current, members
                if key in seen:
                    raise ShardError(f"{where}: members of sample {key!r} are not contiguous")
                seen.add(key)
                current, members = key, {}
            if field in members:
                raise ShardError(f"{where}: sample {key!r} has field {field!r} twice")
            handle = archive.extractfile(info)
            members[field] = handle.read() if handle else b""
    if current is not None:
        yield current, members


def member_offsets(path: str | Path) -> dict[str, dict[str, tuple[int, int]]]:
    """key -> field -> (byte offset, size) of a local shard, for reading single members later."""
    located: dict[str, dict[str, tuple[int, int]]] = {}
    check_regular(path)
    with tarfile.open(path, mode="r:") as archive:
        for info in archive:
            key, field = _checked_key(info, str(path))
            located.setdefault(key, {})[field] = (info.offset_data, info.size)
    return located


def read_member(path: str | Path, location: tuple[int, int]) -> bytes:
    """The bytes of one member found by `member_offsets`."""
    offset, size = location
    check_regular(path)
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


def count_samples(path: str | Path) -> int:
    """Number of samples, reading headers only."""
    keys = 0
    previous = None
    check_regular(path)
    with tarfile.open(path, mode="r:") as archive:
        for info in archive:
            key, _ = split_member(info.name)
            if key != previous:
                keys += 1
                previous = key
    return keys


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    check_regular(path)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
