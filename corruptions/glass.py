"""glass_blur's pixel-swap sweeps: the reference's sequential process, compiled with numba.

Each sweep visits pixels from the bottom-right to the top-left and "swaps" each with a neighbour
at a random offset in [-delta, delta); later steps see earlier ones, so the order matters and the
loop stays sequential. Offsets are drawn up front (in visiting order) from the caller's generator.

The reference writes the swap as `x[h, w], x[h2, w2] = x[h2, w2], x[h, w]` on an HxWx3 array: both
sides are views, so the neighbour is copied into the pixel and the neighbour keeps its value. That
copy, not a true swap, is what ImageNet-C and KITTI-C images went through, and what we reproduce.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _sweeps(x: np.ndarray, offsets: np.ndarray, delta: int) -> None:
    h, w = x.shape[0], x.shape[1]
    channels = x.shape[2]
    for it in range(offsets.shape[0]):
        r = 0
        for hh in range(h - delta, delta, -1):
            c = 0
            for ww in range(w - delta, delta, -1):
                dx = offsets[it, r, c, 0]
                dy = offsets[it, r, c, 1]
                hp, wp = hh + dy, ww + dx
                for k in range(channels):
                    x[hh, ww, k] = x[hp, wp, k]
                c += 1
            r += 1


def swap_sweeps(x: np.ndarray, offsets: np.ndarray, delta: int) -> None:
    """Apply the sweeps in place; `offsets` has shape (iterations, h - 2 delta, w - 2 delta, 2)."""
    if offsets.size:
        _sweeps(x, offsets, delta)
