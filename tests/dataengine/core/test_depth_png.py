import numpy as np
import pytest

from dataengine.core.depth_png import MAX_DEPTH_M, decode_depth_png, encode_depth_png


def test_round_trip_within_half_a_millimetre():
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.05, 60.0, size=(40, 50)).astype(np.float32)
    data, clipped = encode_depth_png(depth)
    decoded = decode_depth_png(data)
    assert clipped == 0
    assert decoded.dtype == np.float32
    assert np.abs(decoded - depth).max() <= 0.0005 + 1e-6


def test_far_depth_is_clipped_and_counted_never_wrapped():
    depth = np.array([[10.0, 65.5, 65.6, 1000.0]], dtype=np.float32)
    data, clipped = encode_depth_png(depth)
    decoded = decode_depth_png(data)
    assert clipped == 2
    np.testing.assert_allclose(decoded[0], [10.0, 65.5, MAX_DEPTH_M, MAX_DEPTH_M], atol=1e-6)


def test_invalid_depth_becomes_zero():
    depth = np.array([[0.0, -1.0, np.nan, np.inf, 0.0001]], dtype=np.float32)
    decoded = decode_depth_png(encode_depth_png(depth)[0])
    np.testing.assert_array_equal(decoded[0, :4], 0.0)
    assert decoded[0, 4] == pytest.approx(0.001)  # a real but tiny measurement stays valid


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        encode_depth_png(np.zeros((2, 2, 2)))


def test_codes_follow_the_units_asked_for():
    from dataengine.core.depth_png import KITTI_UNITS_PER_M, UNITS_PER_M, depth_to_codes

    depth = np.array([[0.0, 1.0], [70.0, 300.0]])
    codes, clipped = depth_to_codes(depth, KITTI_UNITS_PER_M)
    np.testing.assert_array_equal(codes, [[0, 256], [17920, 65535]])
    assert clipped == 1 and UNITS_PER_M == {"depth": 1000.0, "depth_kitti": 256.0}
    assert decode_depth_png(encode_depth_png(depth[:1], KITTI_UNITS_PER_M)[0], KITTI_UNITS_PER_M)[0, 1] == 1.0


def _png(array: np.ndarray, **save) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, **{"format": "PNG", **save})
    return buffer.getvalue()


def test_a_source_depth_map_must_be_what_its_format_promises():
    from dataengine.core.depth_png import decode_source_depth

    mm = np.full((6, 8), 3500, np.uint16)
    np.testing.assert_array_equal(decode_source_depth(_png(mm), 1000.0, "d", (1.0, 20.0)), np.full((6, 8), 3.5, np.float32))
    with pytest.raises(ValueError, match="d is a 8-bit greyscale PNG; the source format's depth is a 16-bit greyscale PNG"):
        decode_source_depth(_png((mm // 20).astype(np.uint8)), 1000.0, "d")
    with pytest.raises(ValueError, match="8-bit palette PNG"):
        decode_source_depth(_palette_png(), 1000.0, "d")
    with pytest.raises(ValueError, match="d is not a PNG"):
        decode_source_depth(_png(mm.astype(np.float32) / 1000, format="TIFF"), 1000.0, "d")
    with pytest.raises(ValueError, match=r"farthest measurement is 0\.255 m, outside the plausible 1-20 m"):
        decode_source_depth(_png(np.full((6, 8), 255, np.uint16)), 1000.0, "d", (1.0, 20.0))
    with pytest.raises(ValueError, match="holds no measurement"):
        decode_source_depth(_png(np.zeros((6, 8), np.uint16)), 256.0, "d", (2.0, 256.0))


def _palette_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).convert("P").save(buffer, format="PNG")
    return buffer.getvalue()
