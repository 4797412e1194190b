import numpy as np

from corruptions import corrupt
from corruptions.weather import BRIGHTNESS


def hsv_lift_in_numpy(image: np.ndarray, severity: int) -> np.ndarray:
    """brightness as whole-array float32 NumPy: V' = min(V + c, 1), RGB scaled by V'/V, black -> grey."""
    x = image.astype(np.float32) * np.float32(1 / 255)
    value = x.max(axis=2, keepdims=True)
    boosted = np.minimum(value + np.float32(BRIGHTNESS[severity - 1]), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(value > 0, x * (boosted / value), boosted)
    return (np.clip(out, 0, 1) * np.float32(255)).astype(np.uint8)


def test_brightness_is_the_float32_hsv_lift_exactly(kitti_size_photo):
    noise = np.random.default_rng(0).integers(0, 256, (61, 47, 3), dtype=np.uint8)
    black = np.zeros((40, 40, 3), dtype=np.uint8)
    for image in (kitti_size_photo, noise, black):
        for severity in range(1, 6):
            assert np.array_equal(corrupt(image, "brightness", severity, seed=0), hsv_lift_in_numpy(image, severity))


def test_brightness_turns_black_grey():
    assert np.all(corrupt(np.zeros((40, 40, 3), np.uint8), "brightness", 5, seed=0) == 127)
