"""A corruption's uint8 output in one pass: clip, scale and truncate as the reference's `np.uint8`.

The reference ends every corruption with `np.uint8(np.clip(x, 0, 1) * 255)` (or the clip to 255):
four NumPy passes over the image, 30-50% of a fast corruption's time. One numba loop does the same
float32 operations in the same order, so the result is identical.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def unit_byte(x: np.float32) -> np.uint8:
    """One float32 value in [0, 1] as the reference casts it: uint8(clip(x, 0, 1) * 255), truncated."""
    return np.uint8(min(max(x, np.float32(0)), np.float32(1)) * np.float32(255))


@njit(cache=True, nogil=True)
def _clip_scale(x: np.ndarray, high: np.float32, scale: np.float32, out: np.ndarray) -> None:
    for i in range(x.size):
        out[i] = np.uint8(min(max(x[i], np.float32(0)), high) * scale)


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """uint8(clip(x, 0, 1) * 255) of a float32 image in [0, 1] (values outside are clipped)."""
    return _cast(x, np.float32(1), np.float32(255))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """uint8(clip(x, 0, 255)) of a float32 image in [0, 255]."""
    return _cast(x, np.float32(255), np.float32(1))


def _cast(x: np.ndarray, high: np.float32, scale: np.float32) -> np.ndarray:
    if x.dtype != np.float32:
        raise ValueError(f"expected a float32 image, got {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.size, dtype=np.uint8)
    _clip_scale(flat, high, scale, out)
    return out.reshape(x.shape)
