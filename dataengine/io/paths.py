"""Paths taken from data (a release, an annotation file) must stay inside the folder they name."""

from __future__ import annotations

from pathlib import Path


def safe_join(root: Path, relative: str) -> Path:
    """`root / relative`, refusing absolute paths and `..` that would leave `root`."""
    target = (root / relative).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"path {relative!r} would leave {root}; refusing it")
    return target
