import cv2
import numpy as np
import pytest

from corruptions.blur import DEFOCUS
from corruptions.disk import disk
from corruptions.filters import nonzero_core


@pytest.mark.parametrize("radius, alias", DEFOCUS)
def test_the_cropped_disk_filters_like_the_whole_one(radius, alias):
    kernel = disk(radius, alias)
    core = nonzero_core(kernel)
    assert core.shape[0] % 2 == 1 and core.shape[1] % 2 == 1
    assert core.sum() == pytest.approx(kernel.sum()) and np.count_nonzero(core) == np.count_nonzero(kernel)
    image = np.random.default_rng(radius).random((40, 52, 3), dtype=np.float32)
    assert np.allclose(cv2.filter2D(image, -1, core), cv2.filter2D(image, -1, kernel), atol=1e-5)


def test_an_off_centre_kernel_keeps_its_centre():
    kernel = np.zeros((7, 7), np.float32)
    kernel[3, 5] = 1.0  # a shift by two columns: the core must stay centred on (3, 3)
    core = nonzero_core(kernel)
    assert core.shape == (1, 5) and core[0, 4] == 1.0
