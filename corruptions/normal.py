"""Standard normal float32 draws by the ziggurat method (Marsaglia & Tsang 2000, 256 layers), in numba.

Gaussian noise draws one normal per channel value, and NumPy's float32 normals were nearly all of
gaussian_noise's time (8 ns each here). NumPy's uniforms cost a quarter of that, and each carries 53
random bits: the ziggurat turns one of them into a normal 99% of the time (a table lookup, a
multiply and a compare) and takes one or two more for the rest (the wedges and the tail beyond
r = 3.654). The draws are exact normals up to float32 rounding and 2^-23 spacing, and a function of
the generator's stream, so a seed still decides them.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import njit

from corruptions.scratch import scratch

LAYERS = 256
TAIL = 3.6541528853610088  # r: where the base layer's tail starts
VOLUME = 0.00492867323399  # v: the area of each layer
MAGNITUDE_BITS = 23


@lru_cache(maxsize=1)
def ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, w, f): per layer, the largest accepted 23-bit magnitude, the magnitude's scale to x, and
    the density at the layer's edge (Marsaglia & Tsang's construction)."""
    m = float(1 << MAGNITUDE_BITS)
    k = np.zeros(LAYERS, dtype=np.int64)
    w = np.zeros(LAYERS, dtype=np.float64)
    f = np.zeros(LAYERS, dtype=np.float64)
    dn = tn = TAIL
    q = VOLUME / math.exp(-0.5 * dn * dn)
    k[0] = int(dn / q * m)
    w[0], w[-1] = q / m, dn / m
    f[0], f[-1] = 1.0, math.exp(-0.5 * dn * dn)
    for i in range(LAYERS - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(VOLUME / dn + math.exp(-0.5 * dn * dn)))
        k[i + 1] = int(dn / tn * m)
        tn = dn
        f[i] = math.exp(-0.5 * dn * dn)
        w[i] = dn / m
    return k, w, f


@njit(cache=True, nogil=True)
def _ziggurat(uniforms: np.ndarray, k: np.ndarray, w: np.ndarray, f: np.ndarray, out: np.ndarray, done: int) -> int:
    """Fill out[done:] from NumPy's float64 uniforms, consumed in order; returns how many are filled
    when the uniforms run out (an attempt cut short is dropped, which does not bias the rest)."""
    p = 0
    while done < out.size and p < uniforms.size:
        bits = np.int64(uniforms[p] * 9007199254740992.0)  # exactly the 53 random bits
        p += 1
        layer = bits & 0xFF
        negative = (bits >> 8) & 1
        magnitude = (bits >> 9) & 0x7FFFFF
        x = magnitude * w[layer]
        if magnitude >= k[layer]:  # outside the layer's rectangle: the wedge, or the tail
            if layer == 0:  # the tail beyond r: sample it until accepted (restarting would thin it)
                tail = -1.0
                while p + 2 <= uniforms.size:
                    candidate = -math.log1p(-uniforms[p]) / TAIL
                    height = -math.log1p(-uniforms[p + 1])
                    p += 2
                    if height + height > candidate * candidate:
                        tail = candidate
                        break
                if tail < 0:
                    break
                x = TAIL + tail
            else:
                if p + 1 > uniforms.size:
                    break
                y = f[layer] + (f[layer - 1] - f[layer]) * uniforms[p]
                p += 1
                if y >= math.exp(-0.5 * x * x):
                    continue
        out[done] = -x if negative else x
        done += 1
    return done


def standard_normal(rng: np.random.Generator, size: int, out: np.ndarray | None = None) -> np.ndarray:
    """`size` float32 draws from N(0, 1), from `rng`'s uniforms (into `out` when given)."""
    out = np.empty(size, dtype=np.float32) if out is None else out
    k, w, f = ziggurat_tables()
    uniforms = scratch("normal.uniforms", (size + size // 32 + 16,), np.float64)
    done = 0
    while done < size:
        left = size - done
        drawn = rng.random(out=uniforms[: left + left // 32 + 16])
        done = _ziggurat(drawn, k, w, f, out, done)
    return out
