"""Depth codec: metric depth <-> 16-bit PNG, in millimetres (NYU convention, the default) or in
1/256 m (KITTI's ground-truth convention, up to 256 m at 3.9 mm steps).

0 means "no measurement" (sky, invalid). Depth beyond the top code (65.535 m in millimetres) is
clipped to 65535 and counted, never wrapped around.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MM_PER_M = 1000.0
KITTI_UNITS_PER_M = 256.0
MAX_DEPTH_MM = 65535
MAX_DEPTH_M = MAX_DEPTH_MM / MM_PER_M
PNG_COMPRESS_LEVEL = 3


def depth_to_mm(depth_m: np.ndarray, units_per_m: float = MM_PER_M) -> tuple[np.ndarray, int]:
    """Quantise metres to uint16 codes (millimetres by default); returns (codes, clipped pixels)."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array of metres, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.rint(depth[valid] * units_per_m)
    clipped = int(np.count_nonzero(scaled > MAX_DEPTH_MM))
    mm = np.zeros(depth.shape, dtype=np.uint16)
    # A positive depth below 0.5 mm still is a measurement: keep it at 1 mm rather than "invalid".
    mm[valid] = np.clip(scaled, 1, MAX_DEPTH_MM).astype(np.uint16)
    return mm, clipped


def encode_depth_png(depth_m: np.ndarray, units_per_m: float = MM_PER_M) -> tuple[bytes, int]:
    """Encode metres as a 16-bit PNG; returns (png bytes, number of clipped pixels)."""
    mm, clipped = depth_to_mm(depth_m, units_per_m)
    buffer = io.BytesIO()
    Image.fromarray(mm).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue(), clipped


def decode_depth_png(data: bytes, units_per_m: float = MM_PER_M) -> np.ndarray:
    """Decode a 16-bit depth PNG to float32 metres (0 where there is no measurement)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"depth PNG must be 16-bit greyscale, got mode {image.mode}")
        mm = np.asarray(image).astype(np.float32)
    return mm / np.float32(units_per_m)


def decode_kitti_depth_png(data: bytes) -> np.ndarray:
    return decode_depth_png(data, KITTI_UNITS_PER_M)
