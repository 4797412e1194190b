"""Atomic, durable file writes: a reader sees the old file or the whole new one, never a partial one.

Every writer goes through a hidden temporary sibling (`.<name>.partial`), fsyncs it, renames it into
place and fsyncs the folder, so a crash or a full disk never leaves a truncated file under the final
name. A build's leftovers are recognised by the suffix and removed on resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` (parents created), fsynced, then renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{PARTIAL_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, document: Any, sort_keys: bool = True, indent: int | None = 1) -> None:
    write_text_atomic(path, json.dumps(document, indent=indent, sort_keys=sort_keys))


def write_jsonl_atomic(path: Path, rows: Iterable[Any]) -> None:
    """One JSON object per line, keys sorted."""
    write_text_atomic(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
