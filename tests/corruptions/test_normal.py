"""The ziggurat's normals against closed forms: the normal CDF, its tail mass, and its tail's shape."""

from __future__ import annotations

import numpy as np
from scipy import stats

from corruptions.normal import TAIL, standard_normal, ziggurat_tables


def test_a_seed_decides_the_draws():
    a = standard_normal(np.random.default_rng(5), 1000)
    assert a.dtype == np.float32 and np.array_equal(a, standard_normal(np.random.default_rng(5), 1000))
    assert not np.array_equal(a, standard_normal(np.random.default_rng(6), 1000))


def test_the_tables_are_marsaglia_tsangs():
    k, w, f = ziggurat_tables()
    assert k[1] == 0 and np.all(np.diff(f[1:]) < 0) and f[0] == 1.0
    assert f[-1] == np.exp(-0.5 * TAIL * TAIL) and w[-1] * 2**23 == TAIL
    # Every layer has the same area v: layer i >= 1 is x_i wide, from f_i up to f_(i-1).
    x = w * 2**23
    assert np.allclose(x[1:] * (f[:-1] - f[1:]), 0.00492867323399, rtol=1e-9)
    # The base layer: the strip under f(r) out to r, plus the tail, also has area v.
    assert np.isclose(TAIL * f[-1] + stats.norm.sf(TAIL) * np.sqrt(2 * np.pi), 0.00492867323399, rtol=1e-9)


def test_matches_the_normal_distribution():
    z = standard_normal(np.random.default_rng(1), 2_000_000).astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    edges = np.linspace(-4, 4, 161)
    counts, _ = np.histogram(z, edges)
    expected = np.diff(stats.norm.cdf(edges))
    assert stats.chisquare(counts, expected / expected.sum() * counts.sum()).pvalue > 1e-3
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.var() - 1) < 4 * np.sqrt(2 / z.size)


def test_the_tail_beyond_r_has_its_mass_and_shape():
    """The tail is sampled until accepted; restarting from a fresh layer instead thins it by about
    4%, which 40M draws show at more than 4 standard errors."""
    z = np.abs(standard_normal(np.random.default_rng(2), 40_000_000).astype(np.float64))
    tail = z[z > TAIL]
    expected = 2 * stats.norm.sf(TAIL) * z.size
    assert abs(tail.size - expected) < 3 * np.sqrt(expected)
    truncated = stats.truncnorm(TAIL, np.inf)
    assert stats.kstest(tail, truncated.cdf).pvalue > 1e-3
