import numpy as np

from dataengine.core.catalog import Partition
from dataengine.core.rng import sample_rng
from dataengine.run.build import apply_limit


def test_sample_rng_depends_only_on_its_arguments():
    np.random.seed(123)
    first = sample_rng(7, "key-1", "layout").random(5)
    np.random.seed(999)
    np.random.random(100)
    assert np.array_equal(first, sample_rng(7, "key-1", "layout").random(5))


def test_streams_differ_by_seed_key_and_purpose():
    base = sample_rng(7, "key-1", "layout").random(4)
    for other in (sample_rng(8, "key-1", "layout"), sample_rng(7, "key-2", "layout"), sample_rng(7, "key-1", "light")):
        assert not np.array_equal(base, other.random(4))


def test_apply_limit_keeps_the_first_items_of_each_split():
    parts = [Partition("train", 0, (0, 1, 2)), Partition("train", 1, (3, 4, 5)), Partition("val", 0, (0, 1))]
    assert apply_limit(parts, None) == parts
    assert apply_limit(parts, 4) == [Partition("train", 0, (0, 1, 2)), Partition("train", 1, (3,)), Partition("val", 0, (0, 1))]
    assert apply_limit(parts, 1) == [Partition("train", 0, (0,)), Partition("val", 0, (0,))]
