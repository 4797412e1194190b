"""pixelate's resizes against the oracle, Pillow itself: identical pixels, whatever the shape."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from corruptions.digital import PIXELATE
from corruptions.pixelation import box_down_nearest_up, box_spans, vertical_first


def pillow(image: np.ndarray, small_size: tuple[int, int]) -> np.ndarray:
    small = Image.fromarray(image).resize(small_size, Image.Resampling.BOX)
    return np.asarray(small.resize((image.shape[1], image.shape[0]), Image.Resampling.NEAREST))


def shapes(count: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [tuple(int(v) for v in rng.integers(8, 600, 2)) for _ in range(count)]


@pytest.mark.parametrize("channels", [3, None])
def test_identical_to_pillow_at_random_shapes(channels):
    rng = np.random.default_rng(channels or 1)
    for h, w in shapes(40, seed=channels or 1) + [(192, 640), (375, 1242), (480, 640), (600, 40), (41, 600)]:
        image = rng.integers(0, 256, (h, w, channels) if channels else (h, w), dtype=np.uint8)
        for factor in PIXELATE:
            small = (int(w * factor), int(h * factor))
            assert np.array_equal(box_down_nearest_up(image, small), pillow(image, small)), (h, w, factor)


def test_tall_images_take_pillows_column_first_order():
    """A resize that shrinks the height much more than the width filters columns first in Pillow 13:
    the rounding then differs from rows first, so a wrong order shows as mismatches."""
    image = np.random.default_rng(2).integers(0, 256, (300, 50, 3), dtype=np.uint8)
    assert vertical_first((50, 300), (25, 150)) and not vertical_first((300, 50), (150, 25))
    assert np.array_equal(box_down_nearest_up(image, (25, 150)), pillow(image, (25, 150)))


def test_box_spans_partition_the_source_with_pillows_weights():
    for in_size, out_size in [(640, 384), (640, 160), (375, 112), (7, 3), (10, 10)]:
        spans = box_spans(in_size, out_size)
        first, count, weight = spans[:, 0], spans[:, 1], spans[:, 2]
        assert first[0] == 0 and first[-1] + count[-1] == in_size
        assert np.array_equal(first[1:], first[:-1] + count[:-1])  # consecutive, no gap, no overlap
        assert np.array_equal(weight, np.floor(0.5 + 2**22 / count).astype(np.int64))


def test_constant_image_stays_constant():
    image = np.full((50, 70, 3), 201, dtype=np.uint8)
    assert np.all(box_down_nearest_up(image, (17, 12)) == 201)


def test_refuses_what_it_does_not_reproduce():
    with pytest.raises(ValueError, match="HxWx3"):
        box_down_nearest_up(np.zeros((40, 40, 4), np.uint8), (20, 20))
    with pytest.raises(ValueError, match="too small"):
        box_down_nearest_up(np.zeros((3, 40, 3), np.uint8), (20, 0))
