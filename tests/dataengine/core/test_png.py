import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from dataengine.api import build
from dataengine.core.catalog import CatalogError, load_catalog
from dataengine.core.png import encode_png, filter_rows
from dataengine.release.reader import Release
from tests.conftest import write_catalog

RNG = np.random.default_rng(7)
ARRAYS = {
    "rgb": RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8),
    "grey": RNG.integers(0, 256, (5, 7), dtype=np.uint8),
    "rgba": RNG.integers(0, 256, (9, 8, 4), dtype=np.uint8),
    "depth16": RNG.integers(0, 65536, (31, 17), dtype=np.uint16),
    "one_pixel": np.array([[[1, 2, 3]]], dtype=np.uint8),
    "smooth": np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (48, 1, 3)),
}


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("level", [0, 1, 3, 6, 9])
def test_pil_and_opencv_decode_the_same_pixels(name, level):
    array = ARRAYS[name]
    data = encode_png(array, level)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), array)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = array[..., ::-1] if array.ndim == 3 and array.shape[2] == 3 else array
    if array.ndim == 3 and array.shape[2] == 4:
        expected = array[..., [2, 1, 0, 3]]
    assert np.array_equal(decoded.reshape(expected.shape), expected)


def test_libpng_reads_every_chunk_crc_and_the_stream():
    data = encode_png(ARRAYS["rgb"], 2)
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = np.frombuffer(data[offset : offset + 4], ">u4")
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + int(length)]
        (crc,) = np.frombuffer(data[offset + 8 + int(length) : offset + 12 + int(length)], ">u4")
        assert crc == zlib.crc32(kind + body)
        chunks.append(kind)
        offset += 12 + int(length)
    assert chunks == [b"IHDR", b"IDAT", b"IEND"]


def test_each_row_takes_the_filter_with_the_smallest_signed_sum():
    """libpng's heuristic, checked against a plain per-row loop of the three filters."""
    rows = RNG.integers(0, 256, (6, 12), dtype=np.uint8)
    rows[2] = rows[1]  # Up makes this row zero
    rows[4] = np.arange(12, dtype=np.uint8) * 3  # Sub makes it nearly constant
    filtered = filter_rows(rows, bpp=3)
    for y in range(rows.shape[0]):
        prior = rows[y - 1] if y else np.zeros(12, np.uint8)
        left = np.concatenate([np.zeros(3, np.uint8), rows[y, :-3]])
        options = [rows[y], rows[y] - left, rows[y] - prior]
        sums = [int(np.abs(o.view(np.int8).astype(int)).sum()) for o in options]
        best = int(np.argmin(sums))
        assert filtered[y, 0] == best
        assert np.array_equal(filtered[y, 1:], options[best])
    assert filtered[2, 0] == 2 and filtered[4, 0] == 1


def test_same_pixels_same_bytes_and_higher_levels_are_not_larger():
    image = np.asarray(Image.open(io.BytesIO(encode_png(ARRAYS["smooth"]))))
    assert encode_png(image, 3) == encode_png(image.copy(), 3)
    sizes = [len(encode_png(ARRAYS["smooth"], level)) for level in (0, 3, 9)]
    assert sizes[0] > sizes[1] >= sizes[2]


@pytest.mark.parametrize(
    "array, level, message",
    [
        (ARRAYS["rgb"], 10, "level must be an integer from 0"),
        (ARRAYS["rgb"], True, "level must be an integer from 0"),
        (ARRAYS["rgb"].astype(np.float32), 3, "takes uint8"),
        (np.zeros((4, 4, 3), np.uint16), 3, "16-bit PNG encoding takes greyscale"),
        (np.zeros((0, 4), np.uint8), 3, "empty"),
    ],
)
def test_bad_arguments_say_what_is_accepted(array, level, message):
    with pytest.raises(ValueError, match=message):
        encode_png(array, level)


def test_png_level_is_a_catalog_setting_that_changes_bytes_not_pixels(tmp_path):
    with pytest.raises(CatalogError, match="shards.png_level"):
        load_catalog(write_catalog(tmp_path, shards={"max_samples": 4, "png_level": 12}))
    releases = {}
    for level in (0, 6):
        spec = load_catalog(write_catalog(tmp_path, name=f"level{level}", shards={"max_samples": 4, "png_level": level}))
        out = tmp_path / f"out{level}"
        assert build(spec, out, workers=0, progress=False).status == "built"
        releases[level] = Release.open(out)
        assert releases[level].manifest["catalog"]["shards"]["png_level"] == level
        assert releases[level].manifest["packages"]["zlib-ng"] != "not installed"
    stored = {level: sum(entry.num_bytes for entry in release.manifest.splits.values()) for level, release in releases.items()}
    assert stored[0] > stored[6]
    for a, b in zip(releases[0].samples("train"), releases[6].samples("train"), strict=True):
        assert a["__key__"] == b["__key__"]
        for member in ("rgb.png", "depth.png", "mask.png"):
            assert np.array_equal(a[member], b[member])
