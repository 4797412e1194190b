"""The Python API beside the command line: build a release from a catalog, with its dataset card.

This is the composition root of a build: the run layer builds and finalises, and the publish
layer's card is handed in as a side file, so neither lower layer knows the other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from dataengine.core.catalog import BuildSpec, load_catalog
from dataengine.core.resources import resolve_catalog
from dataengine.publish.card import write_card
from dataengine.run.build import BuildResult
from dataengine.run.build import build as run_build


def build(
    catalog: BuildSpec | str | Path,
    out: str | Path | None = None,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    limit: int | None = None,
    overrides: Iterable[str] = (),
    force: bool = False,
    retries: int = 2,
    errors: str = "skip",
    progress: bool = True,
    processes: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> BuildResult:
    """Build a catalog (a path, a shipped catalog's name, or a loaded `BuildSpec`) into `out`
    (default `releases/<name>`); an interrupted build of the same catalog resumes.

    `workers`: local Dask worker processes (default: the cores; 0 runs in this process), or
    `scheduler`: the address of an existing Dask cluster. `errors="raise"` stops at the first bad
    item with its traceback instead of recording it in rejects.jsonl.
    """
    if isinstance(catalog, BuildSpec):
        if limit is not None or tuple(overrides):
            raise ValueError("limit and overrides apply to a catalog file; pass them to load_catalog for a BuildSpec")
        spec = catalog
    else:
        spec = load_catalog(resolve_catalog(catalog), overrides=overrides, limit=limit)
    target = Path(out) if out is not None else Path("releases") / spec.name
    return run_build(
        spec,
        target,
        workers=workers,
        scheduler=scheduler,
        force=force,
        retries=retries,
        errors=errors,
        progress=progress,
        processes=processes,
        echo=echo,
        side_files=(write_card,),
    )
