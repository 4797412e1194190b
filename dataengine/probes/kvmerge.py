"""KV-cache merging across depth (MiniCache).

For adjacent layers l-1 and l, every token's state x (per head: the last axis) is split into its norm
and unit direction u, and the two directions are interpolated with SLERP,
Omega = angle(u(l-1), u(l)), e = sin((1-t) Omega)/sin Omega u(l-1) + sin(t Omega)/sin Omega u(l).
One direction e and both norms are stored; x(l) is restored as ||x(l)|| e.

Token retention (gamma): a token's normalised angular distance is d = Omega / pi in [0, 1]. In each
stream (every leading index: batch row and head) the floor(gamma * N) tokens with the largest d among
the N tokens are the outliers: both of their original states are kept and restored exactly. Ties are
broken by position (earlier first). gamma = 0 retains none, gamma = 1 retains all. The rule keeps the
storage overhead a known fraction gamma (MiniCache's "minimal additional storage"); the paper's
default is gamma = 0.05, t = 0.6.

Numerics: Omega = 2 atan2(|u1 - u2|, |u1 + u2|) (accurate near 0 and pi); the SLERP weights are
a sinc(a Omega) / sinc(Omega) (a = 1-t, t), which tend to the linear weights as Omega -> 0, and e is
renormalised - no NaN for identical or nearly identical states. A zero state takes the other state's
direction (both zero: the first basis vector); exactly opposite states (no unique great circle) take
u(l-1) for t <= 1/2, else u(l).

Works on numpy arrays (numpy out) and torch tensors (torch out).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

Array = Any  # numpy.ndarray or torch.Tensor

_ANTIPODAL = 1e-6  # radians from pi below which SLERP has no unique path


def _is_torch(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def _norm(x: Array) -> Array:
    return torch.linalg.vector_norm(x, dim=-1) if _is_torch(x) else np.linalg.norm(x, axis=-1)


def _where(condition: Array, a: Array, b: Array) -> Array:
    return torch.where(condition, a, b) if _is_torch(condition) else np.where(condition, a, b)


def _sinc(x: Array) -> Array:
    """sin(x) / x with the value 1 at 0."""
    return torch.sinc(x / math.pi) if _is_torch(x) else np.sinc(x / math.pi)


def _directions(x: Array, norm: Array, other: Array, other_norm: Array) -> Array:
    """x / |x|; a zero x takes `other`'s direction, and both zero the first basis vector."""
    basis = torch.zeros_like(x) if _is_torch(x) else np.zeros_like(x)
    basis[..., 0] = 1
    safe = _where(norm > 0, norm, 1)[..., None]
    other_safe = _where(other_norm > 0, other_norm, 1)[..., None]
    own = (norm > 0)[..., None]
    fallback = _where((other_norm > 0)[..., None], other / other_safe, basis)
    return _where(own, x / safe, fallback)


def angle(u: Array, v: Array) -> Array:
    """Angle in [0, pi] between unit vectors along the last axis: 2 atan2(|u - v|, |u + v|)."""
    if _is_torch(u):
        return 2 * torch.atan2(_norm(u - v), _norm(u + v))
    return 2 * np.arctan2(_norm(u - v), _norm(u + v))


def retention_mask(distance: Array, gamma: float) -> Array:
    """True for the floor(gamma * N) tokens of largest `distance` along the token axis (the last axis of
    `distance`, shape (..., N)) in every stream; ties go to the earlier token."""
    n = distance.shape[-1]
    count = int(math.floor(gamma * n + 1e-9))
    if _is_torch(distance):
        mask = torch.zeros(distance.shape, dtype=torch.bool, device=distance.device)
        if count > 0:
            order = torch.argsort(-distance, dim=-1, stable=True)[..., :count]
            mask.scatter_(-1, order, True)
        return mask
    mask = np.zeros(distance.shape, dtype=bool)
    if count > 0:
        order = np.argsort(-distance, axis=-1, kind="stable")[..., :count]
        np.put_along_axis(mask, order, True, axis=-1)
    return mask


def slerp_merge(x_prev: Array, x_cur: Array, t: float = 0.6, gamma: float = 0.05) -> tuple[Array, Array, Array, Array]:
    """Merge two layers' states (..., N, D) token by token: (e, norm_prev, norm_cur, retained).

    e (..., N, D) is the unit SLERP direction at t between u_prev (t = 0) and u_cur (t = 1); the norms
    are (..., N); retained (..., N) is True for the outlier tokens (module docstring) whose originals
    must be kept. A single state (D,) counts as one token (N = 1)."""
    if _is_torch(x_prev) != _is_torch(x_cur):
        raise TypeError("x_prev and x_cur must both be numpy arrays or both torch tensors")
    if not _is_torch(x_prev):
        x_prev, x_cur = np.asarray(x_prev, dtype=float), np.asarray(x_cur, dtype=float)
    if x_prev.shape != x_cur.shape:
        raise ValueError(f"shapes differ: {tuple(x_prev.shape)} vs {tuple(x_cur.shape)}")
    if x_prev.ndim == 1:
        return tuple(part[0] for part in slerp_merge(x_prev[None], x_cur[None], t, gamma))  # type: ignore[return-value]
    norm_prev, norm_cur = _norm(x_prev), _norm(x_cur)
    u_prev = _directions(x_prev, norm_prev, x_cur, norm_cur)
    u_cur = _directions(x_cur, norm_cur, x_prev, norm_prev)
    omega = angle(u_prev, u_cur)
    antipodal = omega > math.pi - _ANTIPODAL
    safe = _where(antipodal, 0.0 * omega, omega)
    w_prev = ((1 - t) * _sinc((1 - t) * safe) / _sinc(safe))[..., None]
    w_cur = (t * _sinc(t * safe) / _sinc(safe))[..., None]
    e = w_prev * u_prev + w_cur * u_cur
    e = e / _norm(e)[..., None]
    e = _where(antipodal[..., None], u_prev if t <= 0.5 else u_cur, e)
    return e, norm_prev, norm_cur, retention_mask(omega / math.pi, gamma)


def restore(
    e: Array,
    norm_prev: Array,
    norm_cur: Array,
    retained: Array | None = None,
    kept_prev: Array | None = None,
    kept_cur: Array | None = None,
) -> tuple[Array, Array]:
    """Both layers' states from a merge: ||x|| e, with the retained tokens' originals put back.

    kept_prev / kept_cur are x_prev[retained] and x_cur[retained] (boolean-index order), as `merge_pair`
    stores them."""
    x_prev, x_cur = norm_prev[..., None] * e, norm_cur[..., None] * e
    if retained is not None and kept_prev is not None and kept_cur is not None:
        x_prev[retained] = kept_prev
        x_cur[retained] = kept_cur
    return x_prev, x_cur


@dataclass
class MergedPair:
    """What MiniCache stores for two adjacent layers: the shared directions, both norms, the retention
    mask and the retained tokens' original states."""

    e: Array
    norm_prev: Array
    norm_cur: Array
    retained: Array
    kept_prev: Array
    kept_cur: Array

    def restore(self) -> tuple[Array, Array]:
        """(x_prev, x_cur) as restored."""
        return restore(self.e, self.norm_prev, self.norm_cur, self.retained, self.kept_prev, self.kept_cur)

    def stored_elements(self) -> int:
        """Stored values: the directions, both norms and both originals of every retained token (the
        mask / indices are bookkeeping, not counted)."""
        return int(_size(self.e) + _size(self.norm_prev) + _size(self.norm_cur) + _size(self.kept_prev) + _size(self.kept_cur))


def _size(x: Array) -> int:
    return int(x.numel()) if _is_torch(x) else int(np.size(x))


def merge_pair(x_prev: Array, x_cur: Array, t: float = 0.6, gamma: float = 0.05) -> MergedPair:
    """`slerp_merge` plus the retained tokens' originals, ready to `restore`."""
    e, norm_prev, norm_cur, retained = slerp_merge(x_prev, x_cur, t, gamma)
    if not _is_torch(e):
        x_prev, x_cur = np.asarray(x_prev, dtype=float), np.asarray(x_cur, dtype=float)
    return MergedPair(e, norm_prev, norm_cur, retained, x_prev[retained], x_cur[retained])


def merged_pairs(layers: int, start: int | None = None) -> list[tuple[int, int]]:
    """Layer pairs (l-1, l) merged from `start` (default L // 2) on: (start, start+1), (start+2, start+3), ...;
    a last layer left without a partner stays whole."""
    start = layers // 2 if start is None else start
    return [(l, l + 1) for l in range(start, layers - 1, 2)]


def stored_elements(L: int, N: int, d: int, retained: int | Sequence[int], start: int | None = None) -> int:
    """Stored values of one K (or V) stream (one batch row, one head) of N tokens of width d over L
    layers, merging from `start` (default L // 2): every unmerged layer N d; every merged pair N d
    (directions) + 2 N (norms); plus 2 d per retained token (`retained`: the total, or one count per pair)."""
    pairs = merged_pairs(L, start)
    total_retained = retained if isinstance(retained, int) else sum(retained)
    unmerged = L - 2 * len(pairs)
    return unmerged * N * d + len(pairs) * (N * d + 2 * N) + 2 * d * total_retained


def compression_ratio(L: int, N: int, d: int, retained: int | Sequence[int], start: int | None = None) -> float:
    """Dense over stored values, L N d / stored_elements(...)."""
    return L * N * d / stored_elements(L, N, d, retained, start)


@dataclass
class MergedCache:
    """A per-layer KV cache ({"k", "v"} tensors (B, H, T, D)) with the layers from `start` on merged in pairs."""

    layers: list[dict[str, Any] | None]  # per layer: the original dict (unmerged layers) or None (merged)
    pairs: list[tuple[int, int]]
    merged: list[dict[str, MergedPair]]  # per pair: {"k": MergedPair, "v": MergedPair}
    layer_elements: int  # values of one layer's K and V unmerged

    def restore(self) -> list[dict[str, Any]]:
        """Per-layer {"k", "v"} caches, merged layers restored."""
        out = [dict(layer) if layer is not None else {} for layer in self.layers]
        for (low, high), pair in zip(self.pairs, self.merged):
            for name, merged in pair.items():
                out[low][name], out[high][name] = merged.restore()
        return out

    def stored_elements(self) -> int:
        """Values stored: unmerged layers' K and V plus every merged pair's storage."""
        dense = sum(_size(layer[name]) for layer in self.layers if layer is not None for name in ("k", "v"))
        return dense + sum(m.stored_elements() for pair in self.merged for m in pair.values())

    def dense_elements(self) -> int:
        """Values of the same cache unmerged."""
        return self.layer_elements * len(self.layers)

    def retained(self) -> list[int]:
        """Retained tokens per pair (K and V streams of every batch row and head together)."""
        return [int(sum(int(m.retained.sum()) for m in pair.values())) for pair in self.merged]

    def compression(self) -> float:
        """Dense over stored values."""
        return self.dense_elements() / self.stored_elements()


def merge_cache(cache: Sequence[dict[str, Any]], t: float = 0.6, gamma: float = 0.05, start: int | None = None) -> MergedCache:
    """Merge a per-layer {"k", "v"} cache (tensors (B, H, T, D)) from layer `start` (default L // 2) on,
    per token and head, keys and values separately."""
    pairs = merged_pairs(len(cache), start)
    merged_layers = {l for pair in pairs for l in pair}
    layers = [None if index in merged_layers else layer for index, layer in enumerate(cache)]
    merged = [{name: merge_pair(cache[low][name], cache[high][name], t, gamma) for name in ("k", "v")} for low, high in pairs]
    return MergedCache(layers, pairs, merged, sum(_size(cache[0][name]) for name in ("k", "v")) if cache else 0)


def compress_cache_(cache: list[dict[str, Any]], t: float = 0.6, gamma: float = 0.05, start: int | None = None) -> dict[str, Any]:
    """Merge `cache` and write the restored states back into its dicts in place (what attention then sees
    under MiniCache); returns stored, dense, compression, retained (per pair) and pairs."""
    merged = merge_cache(cache, t, gamma, start)
    for layer, restored in zip(cache, merged.restore()):
        layer.update(restored)
    return {
        "stored": merged.stored_elements(),
        "dense": merged.dense_elements(),
        "compression": merged.compression(),
        "retained": merged.retained(),
        "pairs": merged.pairs,
    }
