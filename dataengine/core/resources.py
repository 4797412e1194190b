"""Locate the data folders (`schemas/`, `catalogs/`) in a source checkout or an installed wheel, and
the catalogs shipped there."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

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
    if path.parent != Path(".") or path.suffix in (".yaml", ".yml"):
        raise FileNotFoundError(
            f"catalog file '{name_or_path}' not found; give an existing path or one of the shipped catalogs: {', '.join(names)}"
        )
    close = difflib.get_close_matches(str(name_or_path), names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise FileNotFoundError(f"catalog '{name_or_path}' not found{hint}; give a path or one of the shipped catalogs: {', '.join(names)}")


@dataclass(frozen=True)
class CatalogInfo:
    """A shipped catalog: its name (what `dataengine build NAME` takes), builder, description, and the
    environment variables its sources read."""

    name: str
    builder: str
    description: str
    env: tuple[str, ...]
    path: Path


_ENV_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


def list_catalogs() -> list[CatalogInfo]:
    """The shipped catalogs, by name, with a one-line description and the variables they need."""
    found = []
    for path in sorted(data_dir("catalogs").glob("*.yaml"), key=lambda p: p.stem):
        document = yaml.safe_load(path.read_text()) or {}
        description = " ".join(str(document.get("description", "")).split())
        first = description.split(". ")[0].rstrip(".")
        sources = " ".join(str(value) for value in (document.get("sources") or {}).values())
        env = tuple(dict.fromkeys(name for name, default in _ENV_NAME.findall(sources) if not default))
        found.append(CatalogInfo(path.stem, str(document.get("builder", "")), first, env, path))
    return found
