"""dataengine: reproducible, checked vision dataset releases as WebDataset shards."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load", "__version__"]


def load(release: Any, split: str = "train", config: str | None = None, **options: Any) -> Any:
    """Iterate a split of a release in training code; see `dataengine.loading.ReleaseDataset`.

    Imported lazily so that `import dataengine` (and every CLI command) does not pay for torch.
    """
    from dataengine.loading import load as _load

    return _load(release, split, config, **options)
