"""Real photographs from scikit-image, resized like KITTI-C (Lanczos to 640x192) and at native size."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

PHOTOS = ("astronaut", "chelsea", "coffee")


def photo(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = getattr(data, name)()
    if size is not None:
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    return np.ascontiguousarray(image)


@pytest.fixture(scope="session", params=PHOTOS)
def kitti_size_photo(request) -> np.ndarray:
    return photo(request.param, (640, 192))


@pytest.fixture(scope="session")
def native_photo() -> np.ndarray:
    return photo("coffee")  # 400x600, as shipped


@pytest.fixture(scope="session")
def small_photo() -> np.ndarray:
    return photo("astronaut", (160, 96))
