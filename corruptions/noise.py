"""Noise corruptions: gaussian, shot, impulse, speckle (ImageNet-C) and iso_noise (RoboDepth)."""

from __future__ import annotations

import numpy as np
from numba import njit

from corruptions.normal import standard_normal
from corruptions.output import unit_byte, unit_to_uint8
from corruptions.poisson import poisson_by_value
from corruptions.registry import DATA_PROCESSING, register
from corruptions.scratch import scratch

GAUSSIAN_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
SHOT_SCALE = (60, 25, 12, 5, 3)
IMPULSE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)
SPECKLE_SCALE = (0.15, 0.2, 0.35, 0.45, 0.6)
ISO_SIGMA = tuple(round(0.7 * s, 3) for s in GAUSSIAN_SIGMA)
ISO_POISSON_SCALE = 25


def unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) * np.float32(1 / 255)


@njit(cache=True, nogil=True)
def _noisy(x: np.ndarray, scale: np.float32, noise: np.ndarray, sigma: np.float32, out: np.ndarray) -> None:
    for i in range(x.size):
        value = np.float32(x[i]) * scale + noise[i] * sigma
        out[i] = unit_byte(value)


def add_gaussian(x: np.ndarray, sigma: float, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """uint8 of clip(x * scale + N(0, sigma), 0, 1) * 255, truncated as the reference's cast; one fused
    pass (numba) over the float32 normals instead of five NumPy passes."""
    noise = standard_normal(rng, x.size, out=scratch("noise.normals", (x.size,), np.float32))
    out = np.empty(x.size, dtype=np.uint8)
    _noisy(np.ascontiguousarray(x).reshape(-1), np.float32(scale), noise, np.float32(sigma), out)
    return out.reshape(x.shape)


def poisson(image: np.ndarray, scale: float, rng: np.random.Generator, rates: np.ndarray | None = None) -> np.ndarray:
    """Poisson(scale * x) / scale clipped to [0, 1] (float32), x = value / 255 of the uint8 `image`;
    `rates` (256 values) replaces scale * x when the rate is another function of the value."""
    counts = poisson_by_value(image, scale if rates is None else rates, rng)
    return np.clip(counts.astype(np.float32) / np.float32(scale), 0, 1)


@register("gaussian_noise", "noise", GAUSSIAN_SIGMA, DATA_PROCESSING)
def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return add_gaussian(image, GAUSSIAN_SIGMA[severity - 1], rng, scale=1 / 255)


@register("shot_noise", "noise", SHOT_SCALE, DATA_PROCESSING)
def shot_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return unit_to_uint8(poisson(image, SHOT_SCALE[severity - 1], rng))


@register("impulse_noise", "noise", IMPULSE_AMOUNT, DATA_PROCESSING)
def impulse_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper per channel value: a fraction `amount` flipped, half to 0 and half to 1.

    One uniform u per value decides both: u < amount / 2 is salt, amount / 2 <= u < amount pepper.
    """
    amount = IMPULSE_AMOUNT[severity - 1]
    u = rng.random(image.size, dtype=np.float32)
    out = np.empty(image.size, dtype=np.uint8)
    _salt_and_pepper(np.ascontiguousarray(image).reshape(-1), u, np.float32(amount), out)
    return out.reshape(image.shape)


@njit(cache=True, nogil=True)
def _salt_and_pepper(image: np.ndarray, u: np.ndarray, amount: np.float32, out: np.ndarray) -> None:
    half = amount / np.float32(2)
    for i in range(image.size):
        out[i] = 255 if u[i] < half else (0 if u[i] < amount else image[i])


@register("speckle_noise", "noise", SPECKLE_SCALE)
def speckle_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = unit(image)
    noise = standard_normal(rng, x.size).reshape(x.shape)
    noise *= np.float32(SPECKLE_SCALE[severity - 1])
    return np.clip(x + x * noise, 0, 1) * 255


@register("iso_noise", "noise", ISO_SIGMA, DATA_PROCESSING)
def iso_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """RoboDepth: Poisson noise at a fixed photon scale of 25, then Gaussian noise of 0.7 x sigma."""
    x = poisson(image, ISO_POISSON_SCALE, rng)
    return add_gaussian(x, ISO_SIGMA[severity - 1], rng)
