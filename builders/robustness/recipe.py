"""The regeneration recipe of every corrupted image, shared by `dataengine corrupt` and the
corruption-set builders, and recorded in each sample so any one image can be rebuilt alone."""

from __future__ import annotations

import numpy as np

from corruptions import corrupt
from dataengine.core.rng import sample_rng

# As recorded in every record; `dataengine.rng` is `dataengine.core.rng`, exposed under that name.
RNG_RECIPE = "dataengine.rng.sample_rng(seed, frame, '<corruption>/<severity>')"


def corrupted_output(image: np.ndarray, name: str, severity: int, seed: int, frame: str) -> np.ndarray:
    """The exact output for one (frame, corruption, severity); `name == "clean"` returns the image."""
    if name == "clean":
        return image
    return corrupt(image, name, severity, seed=sample_rng(seed, frame, f"{name}/{severity}"))
