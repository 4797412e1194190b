import albumentations as A
import numpy as np
import pytest

from corruptions import corrupt
from corruptions.albu import Corruption, RandomCorruption


@pytest.fixture
def sample(small_photo):
    depth = np.random.default_rng(0).uniform(1, 80, small_photo.shape[:2]).astype(np.float32)
    mask = (depth > 40).astype(np.uint8)
    return {"image": small_photo, "mask": mask, "depth": depth}


def test_fixed_seed_equals_the_functional_api(sample):
    pipeline = A.Compose([Corruption("fog", severity=3, seed=5)], additional_targets={"depth": "mask"})
    out = pipeline(**sample)
    assert np.array_equal(out["image"], corrupt(sample["image"], "fog", 3, seed=5))
    assert np.array_equal(out["depth"], sample["depth"]) and out["depth"].dtype == np.float32
    assert np.array_equal(out["mask"], sample["mask"])


def test_compose_seed_makes_random_corruptions_reproducible(sample):
    def run(seed):
        pipeline = A.Compose([RandomCorruption(names="kitti-c", severities=(1, 5))], additional_targets={"depth": "mask"}, seed=seed)
        return [pipeline(**sample)["image"] for _ in range(4)]

    first, again, other = run(3), run(3), run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert len({a.tobytes() for a in first}) > 1  # successive calls differ


def test_random_corruption_respects_its_choices(sample):
    transform = RandomCorruption(names=["gaussian_noise", "pixelate"], severities=(2, 3))
    transform.set_random_seed(0)
    params = [transform.get_params() for _ in range(50)]
    assert {p["corruption"] for p in params} == {"gaussian_noise", "pixelate"}
    assert {p["severity"] for p in params} == {2, 3}
    with pytest.raises(ValueError, match="unknown corruption"):
        RandomCorruption(names=["fogg"])
    with pytest.raises(ValueError, match="low <= high"):
        RandomCorruption(severities=(4, 2))


def test_probability_zero_leaves_the_image(sample):
    out = A.Compose([Corruption("snow", severity=5, p=0.0)])(image=sample["image"])
    assert np.array_equal(out["image"], sample["image"])
