"""Image members: EXIF orientation as readers that honour it would show it, and one set of pixels whichever decoder reads a PNG."""

import io

import numpy as np
import pytest
from PIL import Image

from dataengine.core.fields import exif_orientation, field_kind, png_format, refuse_exif_orientation


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


def _png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _pil_reference(data: bytes) -> np.ndarray:
    """What PIL alone gives: RGB (alpha dropped, palette expanded) or 8-bit grey."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image if image.mode in ("RGB", "L") else image.convert("RGB"))


def test_images_decode_to_the_same_pixels_whichever_decoder_reads_them():
    rgb = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cases = {
        "rgb": _png(Image.fromarray(rgb)),
        "grey": _png(Image.fromarray(rgb[..., 0])),
        "rgba": _png(Image.fromarray(np.dstack([rgb, rgb[..., :1]]))),
        "palette": _png(Image.fromarray(rgb).convert("P")),
        "optimised": _png(Image.fromarray(rgb), optimize=True),
        "jpeg": None,
    }
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    cases["jpeg"] = buffer.getvalue()
    assert png_format(cases["rgb"]) == (8, 2) and png_format(cases["grey"]) == (8, 0) and png_format(cases["jpeg"]) is None
    for name, data in cases.items():
        decoded = field_kind("image").decode(data)
        assert decoded.dtype == np.uint8 and decoded.flags.writeable and decoded.flags.c_contiguous, name
        assert np.array_equal(decoded, _pil_reference(data)), name
