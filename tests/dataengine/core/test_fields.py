"""EXIF orientation: what readers that honour it would show, so builders can apply or refuse it."""

import io

import numpy as np
import pytest
from PIL import Image

from dataengine.core.fields import exif_orientation, refuse_exif_orientation


def _jpeg(orientation: int | None) -> Image.Image:
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(buffer, format="JPEG", exif=exif)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize(("orientation", "expected"), [(None, 1), (1, 1), (6, 6), (3, 3), (0, 1), (9, 1)])
def test_exif_orientation(orientation, expected):
    assert exif_orientation(_jpeg(orientation)) == expected


def test_a_rotated_image_is_refused_with_how_to_fix_it():
    refuse_exif_orientation(_jpeg(1), "upright.jpg")
    with pytest.raises(ValueError, match=r"rotated.jpg has EXIF orientation 8 .*exif_transpose"):
        refuse_exif_orientation(_jpeg(8), "rotated.jpg")
