"""Corruptions as albumentations transforms, for training-time augmentation.

They change images only: masks and other targets registered as masks (a depth map:
`additional_targets={"depth": "mask"}`) pass through untouched. Seeding follows the functional
API: a fixed `seed` gives the same output every call; without one, the seed of each call is drawn
from the generator albumentations gives the transform, so `A.Compose(..., seed=s)` is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import numpy as np

from corruptions.registry import check_severity, corrupt, get
from corruptions.registry import names as set_names

SEED_RANGE = 2**63 - 1


class Corruption(A.ImageOnlyTransform):
    """One corruption at one severity: `Corruption("fog", severity=3)`."""

    def __init__(self, corruption: str, severity: int = 1, seed: int | None = None, p: float = 1.0):
        super().__init__(p=p)
        self.corruption = get(corruption).name
        self.severity = check_severity(severity)
        self.corruption_seed = seed

    def get_params(self) -> dict[str, Any]:
        seed = self.corruption_seed if self.corruption_seed is not None else int(self.random_generator.integers(SEED_RANGE))
        return {"corruption_seed": seed}

    def apply(self, img: np.ndarray, corruption_seed: int = 0, **params: Any) -> np.ndarray:
        return corrupt(img, self.corruption, self.severity, seed=corruption_seed)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("corruption", "severity", "corruption_seed")


class RandomCorruption(A.ImageOnlyTransform):
    """A corruption drawn from `names` (a list or a set name such as "kitti-c") at a severity in `severities`."""

    def __init__(
        self, names: str | Sequence[str] = "kitti-c", severities: tuple[int, int] = (1, 5), seed: int | None = None, p: float = 1.0
    ):
        super().__init__(p=p)
        self.names = tuple(set_names(names) if isinstance(names, str) else [get(n).name for n in names])
        if not self.names:
            raise ValueError("names must hold at least one corruption")
        low, high = (check_severity(s) for s in severities)
        if low > high:
            raise ValueError(f"severities must be (low, high) with low <= high, got {severities}")
        self.severities = (low, high)
        self.corruption_seed = seed

    def get_params(self) -> dict[str, Any]:
        rng = self.random_generator if self.corruption_seed is None else np.random.default_rng(self.corruption_seed)
        return {
            "corruption": self.names[int(rng.integers(len(self.names)))],
            "severity": int(rng.integers(self.severities[0], self.severities[1] + 1)),
            "corruption_seed": int(rng.integers(SEED_RANGE)),
        }

    def apply(self, img: np.ndarray, corruption: str = "", severity: int = 1, corruption_seed: int = 0, **params: Any) -> np.ndarray:
        return corrupt(img, corruption, severity, seed=corruption_seed)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("names", "severities", "corruption_seed")
