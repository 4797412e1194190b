import numpy as np
import pytest
from scipy import stats

from corruptions.poisson import cdf_tables, poisson_by_value


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.7, 4.2, 25.0, 60.0, 359.0])
def test_draws_follow_the_poisson_law(rate):
    """Chi-square against scipy's Poisson pmf, bins merged to an expected count of at least 20."""
    rates = np.full(256, rate)
    draws = poisson_by_value(np.zeros(200_000, np.uint8), rates, np.random.default_rng(1))
    if rate == 0:
        assert not draws.any()
        return
    low, high = int(stats.poisson.ppf(1e-4, rate)), int(stats.poisson.ppf(1 - 1e-4, rate))
    edges = np.arange(low, high + 2)
    observed = np.histogram(np.clip(draws, low, high), bins=edges)[0]
    expected = np.diff(stats.poisson.cdf(edges - 1, rate)) * draws.size
    expected[0] += stats.poisson.cdf(low - 1, rate) * draws.size
    expected[-1] += stats.poisson.sf(high, rate) * draws.size
    merged_o, merged_e, acc_o, acc_e = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        if acc_e >= 20:
            merged_o.append(acc_o), merged_e.append(acc_e)
            acc_o = acc_e = 0.0
    merged_o[-1] += acc_o
    merged_e[-1] += acc_e
    merged_e = np.array(merged_e) * sum(merged_o) / sum(merged_e)
    assert stats.chisquare(merged_o, merged_e).pvalue > 1e-4


def test_each_value_draws_at_its_own_rate():
    image = np.repeat(np.arange(256, dtype=np.uint8), 400).reshape(256, 400)
    draws = poisson_by_value(image, 60.0, np.random.default_rng(2))
    rates = np.arange(256, dtype=np.float32) * np.float32(1 / 255) * np.float32(60)
    z = (draws.mean(axis=1) - rates) / np.sqrt(np.maximum(rates, 1e-9) / 400)
    assert np.all(np.abs(z[1:]) < 5) and not draws[0].any()


def test_the_same_generator_state_gives_the_same_draws_and_shape():
    image = np.random.default_rng(3).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    a = poisson_by_value(image, 12.0, np.random.default_rng(4))
    b = poisson_by_value(image, 12.0, np.random.default_rng(4))
    assert a.shape == image.shape and a.dtype == np.int32 and np.array_equal(a, b)


def test_the_guide_never_starts_past_the_answer():
    cdf, guide = cdf_tables(np.linspace(0, 400, 256))
    for v in (0, 1, 128, 255):
        for j in range(guide.shape[1]):
            start = guide[v, j]
            assert cdf[v, start] > j / guide.shape[1]
            assert start == 0 or cdf[v, start - 1] <= j / guide.shape[1] + 1e-12


@pytest.mark.parametrize("rates", [np.array([-1.0] * 256), np.array([np.nan] * 256), np.array([])])
def test_bad_rates_are_refused(rates):
    with pytest.raises(ValueError, match="rates"):
        cdf_tables(rates)


def test_a_non_uint8_image_is_refused():
    with pytest.raises(ValueError, match="uint8"):
        poisson_by_value(np.zeros(4, np.float32), 3.0, np.random.default_rng(0))
