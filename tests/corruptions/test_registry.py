"""The contract every registered corruption keeps, parametrised over the registry itself."""

import numpy as np
import pytest

from corruptions import REGISTRY, category, corrupt, get, names, parse_severities

ALL = sorted(REGISTRY)


def test_sets_follow_the_spec():
    kitti = names("kitti-c")
    assert kitti == [
        "brightness",
        "dark",
        "fog",
        "frost",
        "snow",
        "contrast",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "elastic_transform",
        "color_quant",
        "gaussian_noise",
        "impulse_noise",
        "shot_noise",
        "iso_noise",
        "pixelate",
        "jpeg_compression",
    ]
    assert names("nyu-c") == [n for n in kitti if n not in ("fog", "frost", "snow")] and len(names("nyu-c")) == 15
    assert len(names("imagenet-c")) == 19 and names("imagenet-c")[-4:] == ["speckle_noise", "gaussian_blur", "spatter", "saturate"]
    assert sorted(names("all")) == ALL and len(ALL) == 22
    assert [category(n) for n in kitti[:6]] == ["weather_lighting"] * 6
    assert {category(n) for n in kitti[6:12]} == {"sensor_movement"}
    assert {category(n) for n in kitti[12:]} == {"data_processing"}
    assert category("spatter") == "weather" and category("speckle_noise") == "noise"
    assert all(len(get(n).params) == 5 for n in ALL)


@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_and_determinism(name, small_photo):
    out = corrupt(small_photo, name, 3, seed=7)
    assert out.shape == small_photo.shape and out.dtype == np.uint8
    assert np.array_equal(out, corrupt(small_photo, name, 3, seed=7))
    assert np.array_equal(out, corrupt(small_photo, name, 3, seed=np.random.default_rng(7)))
    assert not np.array_equal(out, small_photo)


@pytest.mark.parametrize("name", ALL)
def test_seed_does_not_depend_on_call_order_or_global_state(name, small_photo):
    first = corrupt(small_photo, name, 2, seed=11)
    np.random.seed(0)
    np.random.random(1000)
    corrupt(small_photo, "gaussian_noise", 5, seed=3)
    corrupt(small_photo, "fog", 1, seed=4)
    assert np.array_equal(first, corrupt(small_photo, name, 2, seed=11))


@pytest.mark.parametrize("name", ALL)
def test_stochastic_corruptions_vary_with_the_seed(name, small_photo):
    a, b = corrupt(small_photo, name, 4, seed=1), corrupt(small_photo, name, 4, seed=2)
    assert (not np.array_equal(a, b)) == get(name).stochastic


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(40, 56), (40, 56, 1)])
def test_greyscale_in_greyscale_out(name, shape):
    rng = np.random.default_rng(0)
    image = (rng.random(shape) * 255).astype(np.uint8)
    out = corrupt(image, name, 2, seed=0)
    assert out.shape == shape and out.dtype == np.uint8


def test_errors_say_what_is_allowed(small_photo):
    with pytest.raises(ValueError, match=r"unknown corruption 'glass_blurr' \(did you mean 'glass_blur'\?\)"):
        corrupt(small_photo, "glass_blurr", 1, seed=0)
    for bad in (0, 6, 2.5, "3", True):
        with pytest.raises(ValueError, match="severity must be an integer from 1 to 5"):
            corrupt(small_photo, "fog", bad, seed=0)
    with pytest.raises(ValueError, match="must be uint8"):
        corrupt(small_photo.astype(np.float32), "fog", 1, seed=0)
    with pytest.raises(ValueError, match="HxW, HxWx1 or HxWx3"):
        corrupt(np.zeros((40, 40, 4), np.uint8), "fog", 1, seed=0)
    with pytest.raises(ValueError, match="at least 32x32"):
        corrupt(np.zeros((31, 64, 3), np.uint8), "fog", 1, seed=0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        corrupt(small_photo, "fog", 1, seed=-1)
    with pytest.raises(ValueError, match="unknown corruption set"):
        names("kitti")


def test_parse_severities():
    assert parse_severities("1-5") == [1, 2, 3, 4, 5]
    assert parse_severities("1,3-4") == [1, 3, 4]
    assert parse_severities([4, 2, 2]) == [2, 4]
    with pytest.raises(ValueError):
        parse_severities("0-3")
    with pytest.raises(ValueError, match="write a range"):
        parse_severities("one")


@pytest.mark.parametrize("name", ALL)
def test_smallest_allowed_image(name):
    image = (np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)
    for severity in range(1, 6):
        assert corrupt(image, name, severity, seed=0).shape == (32, 32, 3)


def test_frost_reads_the_textures_without_importing_the_reference():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from corruptions import corrupt; "
        "corrupt(np.zeros((64, 64, 3), np.uint8), 'frost', 3, seed=0); "
        "print('imagecorruptions' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
