"""Depth sources: spec parsing, and the learned (timm) and transformers models saved to and loaded
from disk (small, randomly initialised: no weights can be downloaded here)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dataengine.depth.learned import TimmDepthModel, build_model, model_config, save_depth_model  # noqa: E402
from dataengine.depth.sources import load_monocular, parse_spec  # noqa: E402


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), rng.integers(0, 256, (60, 200, 3), dtype=np.uint8)]


@pytest.mark.parametrize("spec", ["", "lidar", "model", "model:", "stereo:x"])
def test_bad_specs_say_what_is_allowed(spec):
    with pytest.raises(ValueError, match="'gt', 'stereo' or 'model:"):
        parse_spec(spec)


def test_spec_kinds():
    assert parse_spec("gt") == ("gt", "")
    assert parse_spec("model:depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf") == (
        "model",
        "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf",
    )


@pytest.fixture(scope="module")
def timm_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = model_config("test_resnet", input_size=[64, 96], max_depth=20.0, decoder_channels=16)
    net = build_model(config).eval()
    folder = save_depth_model(net, config, tmp_path_factory.mktemp("ckpt") / "tiny-depth")
    return folder, net, config


def test_timm_checkpoint_round_trip(timm_checkpoint):
    folder, net, config = timm_checkpoint
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    model = load_monocular(f"model:{folder}", device="cpu", batch_size=1)
    assert isinstance(model, TimmDepthModel) and model.id == "model:tiny-depth"
    assert load_monocular(f"model:{folder}", device="cpu", batch_size=1) is model  # loaded once per process
    images = _images()
    predictions = model.predict(images)
    for image, prediction in zip(images, predictions):
        assert prediction.depth.shape == image.shape[:2] and prediction.depth.dtype == np.float32
        assert (prediction.depth >= config["min_depth"]).all() and (prediction.depth <= config["max_depth"]).all()
    # The loaded weights are the saved ones: the same input gives the same output as the original net.
    reference = TimmDepthModel(net, config).predict(images)
    for a, b in zip(predictions, reference):
        np.testing.assert_allclose(a.depth, b.depth, rtol=1e-5)


def test_timm_checkpoint_errors(tmp_path, timm_checkpoint):
    folder, _, config = timm_checkpoint
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        TimmDepthModel.from_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "backbone": "test_efficientnet"}))
    (tmp_path / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="does not fit backbone"):
        TimmDepthModel.from_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="unknown depth model settings"):
        model_config("test_resnet", max_dept=3)


def _tiny_depth_anything(folder, kind="metric"):
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=14,
        image_size=98,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[16, 32, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        reassemble_hidden_size=32,
        depth_estimation_type=kind,
        max_depth=20,
    )
    torch.manual_seed(0)
    model = transformers.DepthAnythingForDepthEstimation(config).eval()
    processor = transformers.DPTImageProcessor(size={"height": 98, "width": 98}, keep_aspect_ratio=True, ensure_multiple_of=14)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return model, processor


def test_transformers_model_from_a_local_folder(tmp_path):
    model, processor = _tiny_depth_anything(tmp_path / "tiny-da")
    source = load_monocular(f"model:{tmp_path / 'tiny-da'}", device="cpu", batch_size=3)
    assert source.id == "model:tiny-da"
    images = _images() + [_images()[0][::-1].copy()]
    predictions = source.predict(images)
    assert [p.depth.shape for p in predictions] == [im.shape[:2] for im in images]
    # Independent path: the same checkpoint through transformers' own pipeline API, one image at a time.
    inputs = processor(images=[images[1]], return_tensors="pt")
    with torch.inference_mode():
        raw = model(**inputs)
    expected = processor.post_process_depth_estimation(raw, target_sizes=[images[1].shape[:2]])[0]["predicted_depth"].numpy()
    np.testing.assert_allclose(predictions[1].depth, expected, rtol=1e-4, atol=1e-5)
    assert all(p.focal_px is None for p in predictions)


def test_relative_depth_models_are_refused(tmp_path):
    _tiny_depth_anything(tmp_path / "relative", kind="relative")
    with pytest.raises(ValueError, match="relative depth"):
        load_monocular(f"model:{tmp_path / 'relative'}", device="cpu")
