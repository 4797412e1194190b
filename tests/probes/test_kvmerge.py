"""MiniCache merging: SLERP geometry in closed form, exact restoration, stability as Omega -> 0, the
retention rule and the stored-element count."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dataengine.probes import compress_cache_, compression_ratio, merge_cache, merge_pair, restore, slerp_merge, stored_elements
from dataengine.probes.kvmerge import merged_pairs


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def arccos_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((unit(u) * unit(v)).sum(-1), -1.0, 1.0))


def states(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x_prev = rng.normal(size=shape) * rng.uniform(0.5, 3.0, size=shape[:-1] + (1,))
    x_cur = x_prev + 0.8 * rng.normal(size=shape)  # correlated, as adjacent layers are
    return x_prev, x_cur


@pytest.mark.parametrize("t", [0.25, 0.6, 0.9])
def test_direction_is_unit_and_at_t_omega(t):
    x_prev, x_cur = states((3, 20, 16))
    e, norm_prev, norm_cur, retained = slerp_merge(x_prev, x_cur, t=t, gamma=0.05)
    omega = arccos_angle(x_prev, x_cur)
    assert np.allclose(np.linalg.norm(e, axis=-1), 1.0, atol=1e-12)
    assert np.allclose(arccos_angle(e, x_prev), t * omega, atol=1e-7)
    assert np.allclose(arccos_angle(e, x_cur), (1 - t) * omega, atol=1e-7)
    assert np.allclose(norm_prev, np.linalg.norm(x_prev, axis=-1)) and np.allclose(norm_cur, np.linalg.norm(x_cur, axis=-1))
    assert retained.shape == (3, 20) and retained.dtype == bool


def test_endpoints():
    x_prev, x_cur = states((4, 8, 6), seed=1)
    assert np.allclose(slerp_merge(x_prev, x_cur, t=0.0)[0], unit(x_prev), atol=1e-12)
    assert np.allclose(slerp_merge(x_prev, x_cur, t=1.0)[0], unit(x_cur), atol=1e-12)


def test_restore_gives_exact_norms_and_retained_tokens():
    x_prev, x_cur = states((2, 30, 8), seed=2)
    pair = merge_pair(x_prev, x_cur, t=0.6, gamma=0.1)
    got_prev, got_cur = pair.restore()
    assert np.allclose(np.linalg.norm(got_prev, axis=-1), np.linalg.norm(x_prev, axis=-1), rtol=1e-13)
    assert np.allclose(np.linalg.norm(got_cur, axis=-1), np.linalg.norm(x_cur, axis=-1), rtol=1e-13)
    assert pair.retained.sum() == 2 * 3  # floor(0.1 * 30) per stream
    assert np.array_equal(got_prev[pair.retained], x_prev[pair.retained]) and np.array_equal(got_cur[pair.retained], x_cur[pair.retained])
    merged = ~pair.retained
    assert np.allclose(unit(got_prev[merged]), pair.e[merged]) and np.allclose(unit(got_cur[merged]), pair.e[merged])
    # the functional form gives the same
    e, n_prev, n_cur, retained = slerp_merge(x_prev, x_cur, 0.6, 0.1)
    again = restore(e, n_prev, n_cur, retained, x_prev[retained], x_cur[retained])
    assert np.array_equal(again[0], got_prev) and np.array_equal(again[1], got_cur)


def test_parallel_states_restore_losslessly():
    rng = np.random.default_rng(3)
    x_prev = rng.normal(size=(5, 12, 16))
    x_cur = x_prev * rng.uniform(0.1, 4.0, size=(5, 12, 1))
    got_prev, got_cur = restore(*slerp_merge(x_prev, x_cur, t=0.6, gamma=0.0))
    assert np.allclose(got_prev, x_prev, rtol=1e-12, atol=1e-12) and np.allclose(got_cur, x_cur, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gap", [0.0, 1e-15, 1e-12, 1e-9, 1e-6])
@pytest.mark.parametrize("backend", ["numpy", "torch32", "torch64"])
def test_no_nan_as_omega_goes_to_zero(gap, backend):
    rng = np.random.default_rng(4)
    x_prev = rng.normal(size=(6, 32))
    x_cur = x_prev + gap * rng.normal(size=(6, 32))
    if backend != "numpy":
        dtype = torch.float32 if backend == "torch32" else torch.float64
        x_prev, x_cur = torch.tensor(x_prev, dtype=dtype), torch.tensor(x_cur, dtype=dtype)
    e, *_ = slerp_merge(x_prev, x_cur, t=0.6, gamma=0.0)
    e = np.asarray(e, dtype=float)
    assert np.isfinite(e).all()
    assert np.allclose(np.linalg.norm(e, axis=-1), 1.0, atol=1e-6)
    assert np.allclose(e, unit(np.asarray(x_prev, dtype=float)), atol=1e-5)


def test_degenerate_states_stay_finite():
    x_prev = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    x_cur = np.array([[0.0, 3.0, 4.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    e, norm_prev, norm_cur, _ = slerp_merge(x_prev, x_cur, t=0.6, gamma=0.0)
    assert np.isfinite(e).all() and np.allclose(np.linalg.norm(e, axis=-1), 1.0)
    got_prev, got_cur = restore(e, norm_prev, norm_cur)
    assert np.allclose(got_prev[:3], x_prev[:3]) and np.allclose(got_cur[:3], x_cur[:3])  # zeros restore as zeros
    assert np.allclose(e[3], [-1.0, 0.0, 0.0])  # opposite states: u_cur for t > 1/2


def test_retention_keeps_the_largest_normalised_distances():
    """Tokens at known angles Omega_k = k pi / 50 (k = 0..39): gamma = 0.05 retains floor(2) = 2 tokens,
    the two of largest Omega / pi; gamma = 0 none, gamma = 1 all."""
    angles = np.arange(40) * math.pi / 50
    rng = np.random.default_rng(5)
    order = rng.permutation(40)
    angles = angles[order]
    x_prev = np.stack([np.ones(40), np.zeros(40), np.zeros(40)], axis=-1)
    x_cur = np.stack([np.cos(angles), np.sin(angles), np.zeros(40)], axis=-1) * 2.0
    retained = slerp_merge(x_prev, x_cur, t=0.6, gamma=0.05)[3]
    assert set(np.flatnonzero(retained)) == {int(np.flatnonzero(order == 39)[0]), int(np.flatnonzero(order == 38)[0])}
    assert not slerp_merge(x_prev, x_cur, gamma=0.0)[3].any() and slerp_merge(x_prev, x_cur, gamma=1.0)[3].all()
    assert slerp_merge(x_prev, x_cur, gamma=0.1)[3].sum() == 4


def test_backends_round_trip():
    x_prev, x_cur = states((7, 5), seed=6)
    out = slerp_merge(x_prev, x_cur)
    assert all(isinstance(part, np.ndarray) for part in out)
    tout = slerp_merge(torch.tensor(x_prev), torch.tensor(x_cur))
    assert all(isinstance(part, torch.Tensor) for part in tout)
    assert all(np.allclose(a, b.numpy()) for a, b in zip(out, tout))
    e, n_prev, n_cur, kept = slerp_merge(x_prev[0], x_cur[0])  # one state: one token, never an outlier at 5%
    assert e.shape == (5,) and np.ndim(n_prev) == 0 and not bool(kept)


def test_stored_elements_from_l_n_d_and_the_retained_set():
    # L = 8 merges from layer 4: pairs (4, 5), (6, 7); 4 whole layers of N d, 2 pairs of N d + 2 N, 2 d per retained
    assert merged_pairs(8) == [(4, 5), (6, 7)] and merged_pairs(6) == [(3, 4)] and merged_pairs(7) == [(3, 4), (5, 6)]
    assert stored_elements(8, 10, 4, retained=3) == 4 * 40 + 2 * (40 + 20) + 2 * 4 * 3 == 304
    assert stored_elements(8, 10, 4, retained=[1, 2]) == 304
    assert stored_elements(6, 10, 4, retained=0) == 4 * 40 + (40 + 20)  # layers 0-2 and 5 whole
    assert compression_ratio(8, 10, 4, 3) == pytest.approx(320 / 304)
    # a real cache: B = 2, H = 3, T = 10, D = 4, L = 8; gamma = 0.2 retains 2 tokens per stream and pair
    generator = torch.Generator().manual_seed(7)
    cache = [{"k": torch.randn(2, 3, 10, 4, generator=generator), "v": torch.randn(2, 3, 10, 4, generator=generator)} for _ in range(8)]
    merged = merge_cache(cache, t=0.6, gamma=0.2)
    streams = 2 * 3 * 2  # batch rows x heads x (K, V)
    assert merged.retained() == [2 * streams, 2 * streams]
    assert merged.stored_elements() == streams * stored_elements(8, 10, 4, retained=[2, 2])
    assert merged.dense_elements() == streams * 8 * 10 * 4
    assert merged.compression() == pytest.approx(compression_ratio(8, 10, 4, [2, 2]))


def test_compress_cache_in_place():
    generator = torch.Generator().manual_seed(8)
    base = torch.randn(1, 2, 6, 8, generator=generator)
    cache = [{"k": base + 0.1 * l * torch.randn(1, 2, 6, 8, generator=generator), "v": base.flip(-1).clone()} for l in range(4)]
    original = [{name: layer[name].clone() for name in ("k", "v")} for layer in cache]
    stats = compress_cache_(cache, t=0.6, gamma=0.0)
    assert stats["pairs"] == [(2, 3)] and stats["compression"] == pytest.approx(4 * 48 / (2 * 48 + 48 + 12))
    for index in (0, 1):
        assert all(torch.equal(cache[index][n], original[index][n]) for n in ("k", "v"))
    for index in (2, 3):
        assert torch.allclose(cache[index]["k"].norm(dim=-1), original[index]["k"].norm(dim=-1))
        assert torch.allclose(cache[index]["v"], original[index]["v"], atol=1e-5)  # identical values merge losslessly
