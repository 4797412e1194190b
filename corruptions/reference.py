"""The reference, `imagecorruptions` 1.1.2, made runnable on a current stack: an oracle and a baseline.

It needs `setuptools<81` (it imports `pkg_resources`). Two shims: `np.float_` (removed in NumPy 2)
and scikit-image's `gaussian(..., multichannel=True)` (now `channel_axis=-1`). Nothing here is used
to produce data; tests and benchmarks compare against it.
"""

from __future__ import annotations

import importlib
import warnings
from types import ModuleType

import numpy as np


def load_reference() -> ModuleType:
    """Import imagecorruptions with the compatibility shims applied; returns its `corruptions` module."""
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module("imagecorruptions.corruptions")
    original = getattr(module, "_dataengine_original_gaussian", module.gaussian)

    def gaussian(image, sigma=1, multichannel=None, **kwargs):
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return original(image, sigma=sigma, **kwargs)

    module._dataengine_original_gaussian = original
    module.gaussian = gaussian
    return module


def reference_corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Run one reference corruption with NumPy's legacy global RNG seeded, as RoboDepth does."""
    from PIL import Image

    module = load_reference()
    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.uint8(getattr(module, name)(Image.fromarray(image), severity))
