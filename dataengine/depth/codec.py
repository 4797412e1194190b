"""Depth codec: metric depth <-> 16-bit PNG in millimetres (KITTI / NYU convention).

0 means "no measurement" (sky, invalid). Depth beyond 65.535 m is clipped to 65535 and counted,
never wrapped around.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MM_PER_M = 1000.0
MAX_DEPTH_MM = 65535
MAX_DEPTH_M = MAX_DEPTH_MM / MM_PER_M
PNG_COMPRESS_LEVEL = 3


def depth_to_mm(depth_m: np.ndarray) -> tuple[np.ndarray, int]:
    """Quantise metres to uint16 millimetres; returns (mm, number of clipped pixels)."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array of metres, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.rint(depth[valid] * MM_PER_M)
    clipped = int(np.count_nonzero(scaled > MAX_DEPTH_MM))
    mm = np.zeros(depth.shape, dtype=np.uint16)
    # A positive depth below 0.5 mm still is a measurement: keep it at 1 mm rather than "invalid".
    mm[valid] = np.clip(scaled, 1, MAX_DEPTH_MM).astype(np.uint16)
    return mm, clipped


def encode_depth_png(depth_m: np.ndarray) -> tuple[bytes, int]:
    """Encode metres as a 16-bit PNG; returns (png bytes, number of clipped pixels)."""
    mm, clipped = depth_to_mm(depth_m)
    buffer = io.BytesIO()
    Image.fromarray(mm).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue(), clipped


def decode_depth_png(data: bytes) -> np.ndarray:
    """Decode a 16-bit millimetre PNG to float32 metres (0 where there is no measurement)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"depth PNG must be 16-bit greyscale, got mode {image.mode}")
        mm = np.asarray(image).astype(np.float32)
    return mm / np.float32(MM_PER_M)
