"""The Python API beside the command line: build a release from a catalog, with its dataset card.

This is the composition root of a build: the run layer builds and finalises, and the publish
layer's card is handed in as a side file, so neither lower layer knows the other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from dataengine.core.catalog import BuildSpec, load_catalog
from dataengine.core.resources import CatalogInfo, resolve_catalog
from dataengine.core.resources import list_catalogs as shipped_catalogs
from dataengine.publish.card import write_card
from dataengine.release.reader import Release
from dataengine.run.build import BuildResult, PartitionsFailed
from dataengine.run.build import build as run_build


class BuiltRelease(Release):
    """The release a build made (or found up to date): `.splits`, `.configs`, `.lengths`, `len()`,
    `.load(split, ...)`, plus how the build went (`.status`, `.out`, `.items`)."""

    def __init__(self, result: BuildResult):
        opened = Release.open(result.out)
        super().__init__(opened.root, opened.manifest)
        self.out: Path | str = result.out  # a folder, or a store URL
        self.status: str = result.status  # "built" | "up-to-date"
        self.items: int = result.items  # planned items (after `limit`)
        self.failures: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"BuiltRelease({str(self.out)!r}, status={self.status!r}, lengths={self.lengths})"


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
    verify: bool = False,
    progress: bool = True,
    processes: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> BuiltRelease:
    """Build a catalog (a path, a shipped catalog's name, or a loaded `BuildSpec`) into `out`
    (default `releases/<name>`; or an object store URL such as `s3://bucket/releases/name`) and return the
    release; an interrupted build of the same catalog resumes.

    `workers`: local Dask worker processes (default: the cores; 0 runs in this process), or
    `scheduler`: the address of an existing Dask cluster. `limit` keeps the first N planned items of
    each split; `overrides` are `dotted.key=value` strings, as `--set` takes them. `errors="raise"`
    stops at the first bad item with its traceback instead of recording it in rejects.jsonl.
    A finished release is checked before it is reported up to date (shard sizes; sha256 too with
    `verify=True`) and rebuilt when damaged. Raises `PartitionsFailed` (with `.failures`) when partitions fail after their retries: rerun to resume.
    """
    if isinstance(catalog, BuildSpec):
        if limit is not None or tuple(overrides):
            raise ValueError("limit and overrides apply to a catalog file; pass them to load_catalog for a BuildSpec")
        spec = catalog
    else:
        spec = load_catalog(resolve_catalog(catalog), overrides=overrides, limit=limit)
    target = out if out is not None else Path("releases") / spec.name
    result = run_build(
        spec,
        target,
        workers=workers,
        scheduler=scheduler,
        force=force,
        retries=retries,
        errors=errors,
        verify=verify,
        progress=progress,
        processes=processes,
        echo=echo,
        side_files=(write_card,),
    )
    if result.status == "failed":
        raise PartitionsFailed(result.out, result.failures)
    return BuiltRelease(result)


def list_catalogs() -> list[CatalogInfo]:
    """The shipped catalogs (`name`, `builder`, `description`, `env`: the variables their sources need);
    `dataengine.build(name, ...)` builds one."""
    return shipped_catalogs()
