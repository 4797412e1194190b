"""Locate the data folders (`schemas/`, `catalogs/`) in a source checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]  # the dataengine package


def data_dir(kind: str) -> Path:
    """Return the folder holding `kind` ("schemas" or "catalogs").

    A wheel carries them inside the package (`dataengine/_data/<kind>`); a source checkout or an
    editable install keeps them at the repository root.
    """
    for candidate in (_PACKAGE / "_data" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"dataengine's '{kind}' folder is missing from the installation ({_PACKAGE})")


def resolve_catalog(name_or_path: str | Path) -> Path:
    """A catalog path as given, or the name of a shipped catalog (`scenes` -> catalogs/scenes.yaml)."""
    path = Path(name_or_path)
    if path.is_file():  # a folder that happens to share a catalog's name (e.g. ./demo) is not one
        return path
    shipped = data_dir("catalogs") / f"{path.stem}.yaml"
    if path.parent == Path(".") and shipped.exists():
        return shipped
    names = sorted(p.stem for p in data_dir("catalogs").glob("*.yaml"))
    raise FileNotFoundError(f"catalog '{name_or_path}' not found; give a path or one of the shipped catalogs: {', '.join(names)}")
