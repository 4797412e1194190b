"""Depth codec: metric depth <-> 16-bit PNG, in millimetres (NYU convention, the default) or in
1/256 m (KITTI's ground-truth convention, up to 256 m at 3.9 mm steps).

0 means "no measurement" (sky, invalid). Depth beyond the top code (65.535 m in millimetres) is
clipped to 65535 and counted, never wrapped around.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from dataengine.core.png import DEFAULT_LEVEL as DEFAULT_PNG_LEVEL
from dataengine.core.png import encode_png

MM_PER_M = 1000.0
KITTI_UNITS_PER_M = 256.0
MAX_CODE = 65535
MAX_DEPTH_M = MAX_CODE / MM_PER_M
UNITS_PER_M = {"depth": MM_PER_M, "depth_kitti": KITTI_UNITS_PER_M}  # member kind -> PNG codes per metre


def depth_to_codes(depth_m: np.ndarray, units_per_m: float = MM_PER_M) -> tuple[np.ndarray, int]:
    """Quantise metres to uint16 codes of 1/`units_per_m` m (millimetres by default); returns
    (codes, pixels clipped at the top code 65535)."""
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth must be a 2-D array of metres, got shape {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.rint(depth[valid] * units_per_m)
    clipped = int(np.count_nonzero(scaled > MAX_CODE))
    codes = np.zeros(depth.shape, dtype=np.uint16)
    # A positive depth below half a code still is a measurement: keep it at 1 rather than "invalid".
    codes[valid] = np.clip(scaled, 1, MAX_CODE).astype(np.uint16)
    return codes, clipped


def encode_depth_png(depth_m: np.ndarray, units_per_m: float = MM_PER_M, png_level: int = DEFAULT_PNG_LEVEL) -> tuple[bytes, int]:
    """Encode metres as a 16-bit PNG; returns (png bytes, number of clipped pixels)."""
    codes, clipped = depth_to_codes(depth_m, units_per_m)
    return encode_png(codes, png_level), clipped


def decode_depth_png(data: bytes, units_per_m: float = MM_PER_M) -> np.ndarray:
    """Decode a 16-bit depth PNG to float32 metres (0 where there is no measurement)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"depth PNG must be 16-bit greyscale, got mode {image.mode}")
        codes = np.asarray(image).astype(np.float32)
    return codes / np.float32(units_per_m)


def decode_kitti_depth_png(data: bytes) -> np.ndarray:
    return decode_depth_png(data, KITTI_UNITS_PER_M)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_layout(data: bytes) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR chunk, or None when `data` is not a PNG."""
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return data[24], data[25]


def decode_source_depth(data: bytes, units_per_m: float, what: str, plausible_max_m: tuple[float, float] | None = None) -> np.ndarray:
    """A source's depth map checked before it is trusted, as float32 metres (0 = no measurement).

    It must be what the source format promises: a 16-bit greyscale PNG of codes in 1/`units_per_m` m
    (an 8-bit, palette, colour or float map scaled as if it were right gives silently wrong depth).
    With `plausible_max_m` = (low, high), its farthest measurement must lie in that range. Raises
    ValueError naming `what` and the problem.
    """
    layout = png_layout(data)
    if layout is None:
        raise ValueError(f"{what} is not a PNG; the source format's depth is a 16-bit greyscale PNG")
    bits, colour = layout
    if (bits, colour) != (16, 0):
        kind = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}.get(colour, f"colour type {colour}")
        raise ValueError(f"{what} is a {bits}-bit {kind} PNG; the source format's depth is a 16-bit greyscale PNG")
    depth = decode_depth_png(data, units_per_m)
    if plausible_max_m is not None:
        low, high = plausible_max_m
        farthest = float(depth.max()) if depth.size else 0.0
        if farthest == 0.0:
            raise ValueError(f"{what} holds no measurement (every pixel is 0)")
        if not low <= farthest <= high:
            raise ValueError(
                f"{what}: its farthest measurement is {farthest:.3f} m, outside the plausible {low:g}-{high:g} m for this source "
                f"at {units_per_m:g} codes per metre (wrong units or a rescaled map?)"
            )
    return depth
