"""dataengine: reproducible, checked vision dataset releases as WebDataset shards.

    dataengine.build(catalog, out, workers=..., limit=..., overrides=...)  -> the release (splits, configs, lengths, load)
    dataengine.load(release, split, config=..., batch_size=..., decode=...)  -> a torch IterableDataset
    dataengine.collate                   batches: tensors stacked, records as lists
    dataengine.wds_decoder(release)      for wds.WebDataset(urls).decode(...): depth in metres, as load gives it
    dataengine.hf_decoder(release)       for datasets' with_transform / map: the same
    dataengine.list_catalogs()           the shipped catalogs with descriptions

Everything but `rng` is imported on first use, so that `import dataengine` (and every CLI command)
does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dataengine.core import rng  # the per-sample generators, named `dataengine.rng` in recorded recipes

if TYPE_CHECKING:  # what the lazy names below are, for type checkers and editors
    from dataengine.api import build, list_catalogs
    from dataengine.release.batch import collate
    from dataengine.release.decoders import hf_decoder, wds_decoder
    from dataengine.release.load import load

__version__ = "0.1.0"

_LAZY = {
    "build": "dataengine.api",
    "list_catalogs": "dataengine.api",
    "load": "dataengine.release.load",
    "collate": "dataengine.release.batch",
    "wds_decoder": "dataengine.release.decoders",
    "hf_decoder": "dataengine.release.decoders",
}
__all__ = ["build", "list_catalogs", "load", "collate", "wds_decoder", "hf_decoder", "rng", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dataengine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
