"""Blur corruptions: defocus, glass, motion, zoom (ImageNet-C common) and gaussian (validation)."""

from __future__ import annotations

import numpy as np

from corruptions.disk import disk_filter
from corruptions.filters import clipped_zoom, gaussian
from corruptions.filters import motion_blur as motion
from corruptions.glass import swap_sweeps
from corruptions.output import to_uint8, unit_to_uint8
from corruptions.registry import SENSOR_MOVEMENT, register

DEFOCUS = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))
GLASS = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))
MOTION = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))
ZOOM = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))
GAUSSIAN_SIGMA = (1, 2, 3, 4, 6)


@register("defocus_blur", "blur", DEFOCUS, SENSOR_MOVEMENT, stochastic=False)
def defocus_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The reference's disk kernel, applied by running sums (`disk`): the same pixels, several times faster."""
    radius, alias = DEFOCUS[severity - 1]
    return disk_filter(image, radius, alias)


@register("glass_blur", "blur", GLASS, SENSOR_MOVEMENT)
def glass_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, then sweeps of local pixel swaps (sequential, bottom-right to top-left), then blur."""
    sigma, delta, iterations = GLASS[severity - 1]
    x = (gaussian(image.astype(np.float32) * np.float32(1 / 255), sigma) * 255).astype(np.uint8)
    h, w = x.shape[:2]
    rows, cols = max(h - 2 * delta, 0), max(w - 2 * delta, 0)
    # One (dx, dy) pair per visited pixel, drawn up front in visiting order.
    offsets = rng.integers(-delta, delta, size=(iterations, rows, cols, 2), dtype=np.int64)
    swap_sweeps(x, offsets, delta)
    return unit_to_uint8(gaussian(x.astype(np.float32) * np.float32(1 / 255), sigma))


@register("motion_blur", "blur", MOTION, SENSOR_MOVEMENT)
def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = MOTION[severity - 1]
    angle = rng.uniform(-45, 45)
    return to_uint8(motion(image, radius, sigma, angle))


def zoom_factors(severity: int) -> np.ndarray:
    high, step = ZOOM[severity - 1]
    return np.arange(1, high, step)  # floating point: 12, 16, 11, 13, 11 factors, as the reference


@register("zoom_blur", "blur", ZOOM, SENSOR_MOVEMENT, stochastic=False)
def zoom_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) * np.float32(1 / 255)
    factors = zoom_factors(severity)
    out = np.zeros_like(x)
    for factor in factors:
        out += clipped_zoom(x, factor)
    return unit_to_uint8((x + out) / np.float32(len(factors) + 1))


@register("gaussian_blur", "blur", GAUSSIAN_SIGMA, stochastic=False)
def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32) * np.float32(1 / 255)
    return np.clip(gaussian(x, GAUSSIAN_SIGMA[severity - 1]), 0, 1) * 255
