"""PNG encoding for shards: libpng's per-row filter choice in NumPy, deflate by zlib-ng.

A corruption set writes about 90 PNGs per source frame, and PIL's encoder (zlib, adaptive filters
in C) was 40% of a KITTI-C build. The bytes of a PNG are filters + deflate + three chunks: here the
filters are NumPy (None, Sub or Up per row, chosen by libpng's minimum-sum-of-absolute-differences
heuristic) and deflate is zlib-ng, which at the same level is 2-3x faster than zlib for the same size.
Any PNG reader decodes the result to the same pixels; the bytes depend only on the pixels, the level
and the zlib-ng version (recorded in the manifest).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from zlib_ng import zlib_ng

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_LEVEL = 2
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)
FILTERS = (0, 1, 2)  # None, Sub, Up


def encoder_version() -> str:
    """What produced the bytes: a release records it with the level."""
    return f"zlib-ng {zlib_ng.ZLIBNG_VERSION}"


def check_level(level: int) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"PNG compression level must be an integer from 0 (none) to 9 (smallest), got {level!r}")
    return int(level)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def filter_rows(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Filtered scanlines (filter byte first) of `rows` (H x row bytes, uint8), `bpp` bytes per pixel."""
    height = rows.shape[0]
    sub = rows.copy()
    np.subtract(rows[:, bpp:], rows[:, :-bpp], out=sub[:, bpp:])
    up = rows.copy()
    np.subtract(rows[1:], rows[:-1], out=up[1:])
    candidates = (rows, sub, up)
    # libpng's heuristic: the filter whose bytes, read as signed, have the smallest absolute sum.
    scores = np.stack([np.abs(c.view(np.int8), dtype=np.int16).sum(axis=1, dtype=np.int64) for c in candidates])
    choice = scores.argmin(axis=0)
    out = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = np.asarray(FILTERS, dtype=np.uint8)[choice]
    for index, candidate in enumerate(candidates):
        chosen = choice == index
        out[chosen, 1:] = candidate[chosen]
    return out


def encode_png(array: np.ndarray, level: int = DEFAULT_LEVEL) -> bytes:
    """A PNG of a uint8 (HxW, HxWx1/2/3/4) or uint16 (HxW, HxWx1) array; deterministic bytes."""
    level = check_level(level)
    image = np.asarray(array)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in COLOUR_TYPES or image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG encoding takes uint8 HxW, HxWx3 or HxWx4, or uint16 HxW, got {image.dtype} {np.asarray(array).shape}")
    if image.dtype == np.uint16 and image.shape[2] != 1:
        raise ValueError(f"16-bit PNG encoding takes greyscale HxW, got shape {np.asarray(array).shape}")
    height, width, channels = image.shape
    if height == 0 or width == 0:
        raise ValueError(f"cannot encode an empty {width}x{height} image as PNG")
    depth = 8 * image.dtype.itemsize
    raw = np.ascontiguousarray(image.astype(">u2", copy=False) if depth == 16 else image)
    rows = raw.view(np.uint8).reshape(height, width * channels * image.dtype.itemsize)
    filtered = filter_rows(rows, channels * image.dtype.itemsize)
    header = struct.pack(">IIBBBBB", width, height, depth, COLOUR_TYPES[channels], 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib_ng.compress(filtered, level)) + _chunk(b"IEND", b"")
