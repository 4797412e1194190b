"""dataengine: reproducible, checked vision dataset releases as WebDataset shards."""

from __future__ import annotations

from typing import Any

from dataengine.core import rng  # the per-sample generators, named `dataengine.rng` in recorded recipes

__version__ = "0.1.0"
__all__ = ["build", "load", "rng", "__version__"]


def load(release: Any, split: str = "train", config: str | None = None, **options: Any) -> Any:
    """Iterate a split of a release in training code; see `dataengine.release.load.ReleaseDataset`.

    Imported lazily so that `import dataengine` (and every CLI command) does not pay for torch.
    """
    from dataengine.release.load import load as _load

    return _load(release, split, config, **options)


def build(catalog: Any, out: Any = None, **options: Any) -> Any:
    """Build a catalog into a release; see `dataengine.api.build`."""
    from dataengine.api import build as _build

    return _build(catalog, out, **options)
