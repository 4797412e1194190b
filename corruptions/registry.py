"""The corruption registry: names, categories, parameter tables, and the seeded `corrupt` entry point."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CorruptionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

WEATHER_LIGHTING = "weather_lighting"
SENSOR_MOVEMENT = "sensor_movement"
DATA_PROCESSING = "data_processing"


@dataclass(frozen=True)
class Corruption:
    """One corruption: a pure function of (RGB image, severity, generator) plus what describes it."""

    name: str
    fn: CorruptionFn
    group: str  # ImageNet-C group: noise | blur | weather | digital
    category: str | None  # RoboDepth category for the 18 KITTI-C corruptions, else None
    params: tuple[Any, ...]  # the parameter of severities 1..5, as in the spec table
    stochastic: bool


REGISTRY: dict[str, Corruption] = {}


def register(
    name: str, group: str, params: Sequence[Any], category: str | None = None, stochastic: bool = True
) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator adding a corruption function to the registry."""

    def decorate(fn: CorruptionFn) -> CorruptionFn:
        if name in REGISTRY:
            raise ValueError(f"corruption '{name}' is registered twice")
        REGISTRY[name] = Corruption(name, fn, group, category, tuple(params), stochastic)
        return fn

    return decorate


KITTI_C = (
    "brightness",
    "dark",
    "fog",
    "frost",
    "snow",
    "contrast",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "elastic_transform",
    "color_quant",
    "gaussian_noise",
    "impulse_noise",
    "shot_noise",
    "iso_noise",
    "pixelate",
    "jpeg_compression",
)
NYU_C = tuple(name for name in KITTI_C if name not in ("fog", "frost", "snow"))
IMAGENET_C_COMMON = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
IMAGENET_C_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SETS = {
    "kitti-c": KITTI_C,
    "nyu-c": NYU_C,
    "imagenet-c": IMAGENET_C_COMMON + IMAGENET_C_EXTRA,
    "imagenet-c-common": IMAGENET_C_COMMON,
    "imagenet-c-extra": IMAGENET_C_EXTRA,
    "all": KITTI_C + IMAGENET_C_EXTRA,
}


def names(subset: str = "kitti-c") -> list[str]:
    """Corruption names of a set: kitti-c (18, spec order), nyu-c (15), imagenet-c (15 + 4), all."""
    if subset not in SETS:
        raise ValueError(f"unknown corruption set '{subset}'; choose one of {', '.join(SETS)}")
    return list(SETS[subset])


def get(name: str) -> Corruption:
    """The registered corruption; an unknown name raises with the closest valid name."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(str(name), list(REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown corruption '{name}'{hint}; valid names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def category(name: str) -> str:
    """RoboDepth category of a KITTI-C corruption, or the ImageNet-C group of a validation extra."""
    corruption = get(name)
    return corruption.category or corruption.group


def parse_severities(text: str | Sequence[int]) -> list[int]:
    """`"1-5"`, `"1,3,5"`, `[2, 4]` -> sorted unique severities, each checked to be in 1..5."""
    if isinstance(text, str):
        values: list[int] = []
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            try:
                values.extend(range(int(low), int(high or low) + 1))
            except ValueError:
                raise ValueError(f"severities '{text}': write a range like 1-5 or a list like 1,3,5") from None
    else:
        values = [int(v) for v in text]
    for value in values:
        check_severity(value)
    return sorted(set(values))


def check_severity(severity: Any) -> int:
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def as_generator(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int or a numpy.random.Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


MIN_SIDE = 32
LUMA = np.array([0.299, 0.587, 0.114])


def corrupt(image: np.ndarray, name: str, severity: int = 1, *, seed: int | np.random.Generator) -> np.ndarray:
    """Corrupt a uint8 HxWx3 (or HxW, HxWx1) image; returns the same shape and dtype.

    The result depends only on (image, name, severity, seed). Greyscale input is processed as
    three equal channels (as the reference does) and converted back with ITU-R 601 luma. Images
    smaller than 32x32 are refused, as the reference's parameters assume at least that size.
    """
    corruption = get(name)
    severity = check_severity(severity)
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0-255), got {image.dtype}; convert with np.clip(x, 0, 255).astype(np.uint8)")
    grey = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"image must be HxW, HxWx1 or HxWx3, got shape {image.shape}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {image.shape[1]}x{image.shape[0]}")
    rgb = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2) if grey else np.ascontiguousarray(image)
    out = corruption.fn(rgb, severity, as_generator(seed))
    # The reference clips to [0, 255] and then truncates with a plain cast: so do we.
    out = np.clip(out, 0, 255).astype(np.uint8) if out.dtype != np.uint8 else out
    if grey:
        out = np.clip(np.rint(out @ LUMA), 0, 255).astype(np.uint8).reshape(image.shape)
    return out
