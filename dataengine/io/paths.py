"""Paths taken from data (a release, an annotation file) must stay inside the folder they name."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath


def safe_join(root: Path, relative: str) -> Path:
    """`root / relative`, refusing absolute paths and `..` that would leave `root`."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"path {relative!r} would leave {root}; refusing it")
    return target


def safe_relative(relative: str, what: str = "path") -> PurePosixPath:
    """`relative` checked, without touching the disk, to stay under whatever root it is joined to:
    refuses empty and absolute paths and `..` parts. Unlike `safe_join` it does not resolve links, so
    a source root whose own folders are symlinks (common for dataset trees) still works."""
    path = PurePosixPath(str(relative).replace("\\", "/"))
    if not str(relative).strip() or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} {relative!r} would leave its root; refusing it")
    return path


def check_regular_file(path: str | Path, what: str = "file") -> None:
    """Refuse, without opening it, a source path that is not a regular file: a FIFO would block its
    reader forever, a device such as /dev/zero never ends, a folder is no file. A missing path raises
    FileNotFoundError as opening it would."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a special file"
        )
        raise ValueError(f"{what} {path} is {kind}, not a regular file")
