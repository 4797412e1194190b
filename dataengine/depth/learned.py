"""A learned monocular depth model: a timm backbone with a light top-down dense decoder.

Checkpoints are folders with `config.json` (`"format": "dataengine-depth"`, the backbone name and
the input geometry) and `model.safetensors`: no pickle anywhere, so loading a checkpoint from
someone else cannot run code. The reference trainers write these; `save_depth_model` is the one
writer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dataengine.depth.sources import DepthPrediction, MonocularDepth

FORMAT = "dataengine-depth"
_CONFIG_DEFAULTS = {"decoder_channels": 64, "min_depth": 0.1, "max_depth": 80.0, "input_size": [192, 640]}


class DepthNet(nn.Module):
    """Backbone features (every stride) -> 1x1 laterals -> top-down sum with 3x3 smoothing -> a
    sigmoid head scaled to (min_depth, max_depth) metres, upsampled to the input size."""

    def __init__(
        self, backbone: str, decoder_channels: int = 64, min_depth: float = 0.1, max_depth: float = 80.0, pretrained: bool = False
    ) -> None:
        super().__init__()
        import timm

        self.encoder = timm.create_model(backbone, pretrained=pretrained, features_only=True)
        channels = self.encoder.feature_info.channels()
        self.laterals = nn.ModuleList(nn.Conv2d(c, decoder_channels, 1) for c in channels)
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(decoder_channels, decoder_channels, 3, padding=1), nn.ReLU(inplace=True)) for _ in channels
        )
        self.head = nn.Conv2d(decoder_channels, 1, 3, padding=1)
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 1, H, W) metres."""
        features = self.encoder(x)
        y = self.smooth[-1](self.laterals[-1](features[-1]))
        for index in range(len(features) - 2, -1, -1):
            skip = self.laterals[index](features[index])
            y = self.smooth[index](skip + F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False))
        y = F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.min_depth + (self.max_depth - self.min_depth) * torch.sigmoid(y)


def model_config(backbone: str, **overrides: Any) -> dict[str, Any]:
    """A complete checkpoint config: the backbone's own normalisation from timm, plus defaults."""
    import timm

    pretrained_cfg = timm.create_model(backbone, pretrained=False).pretrained_cfg
    config = {
        "format": FORMAT,
        "version": 1,
        "backbone": backbone,
        **_CONFIG_DEFAULTS,
        "mean": list(pretrained_cfg.get("mean", (0.485, 0.456, 0.406))),
        "std": list(pretrained_cfg.get("std", (0.229, 0.224, 0.225))),
    }
    unknown = set(overrides) - set(config)
    if unknown:
        raise ValueError(f"unknown depth model settings {sorted(unknown)}; allowed: {sorted(set(config) - {'format', 'version'})}")
    config.update(overrides)
    return config


def build_model(config: dict[str, Any], pretrained: bool = False) -> DepthNet:
    return DepthNet(config["backbone"], config["decoder_channels"], config["min_depth"], config["max_depth"], pretrained=pretrained)


def save_depth_model(model: DepthNet, config: dict[str, Any], folder: str | Path) -> Path:
    """Write `config.json` + `model.safetensors` to `folder` (created)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": FORMAT})
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder


class TimmDepthModel(MonocularDepth):
    """Inference wrapper: resize to the trained input size, normalise, run in batches, resize back."""

    def __init__(self, net: DepthNet, config: dict[str, Any], device: str = "cpu", batch_size: int = 4, name: str = "") -> None:
        self.net = net.to(device).eval()
        self.config = config
        self.device = device
        self.batch_size = batch_size
        self.id = f"model:{name or config['backbone']}"
        self._mean = torch.tensor(config["mean"], device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(config["std"], device=device).view(1, 3, 1, 1)

    @classmethod
    def from_checkpoint(cls, folder: str | Path, device: str = "cpu", batch_size: int = 4) -> TimmDepthModel:
        from safetensors.torch import load_file

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        if config.get("format") != FORMAT:
            raise ValueError(f"{folder} is not a dataengine depth checkpoint (config.json format {config.get('format')!r})")
        config = {**_CONFIG_DEFAULTS, **config}
        net = build_model(config)
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} is missing; a checkpoint folder holds config.json and model.safetensors")
        try:
            net.load_state_dict(load_file(str(weights)))
        except RuntimeError as exc:  # missing, unexpected or mis-shaped tensors
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise ValueError(f"{weights} does not fit backbone {config['backbone']} ({first})") from None
        return cls(net, config, device=device, batch_size=batch_size, name=folder.name)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[np.ndarray]) -> list[DepthPrediction]:
        height, width = self.config["input_size"]
        batch = torch.stack([torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1) for image in _as_rgb(images, height, width)])
        x = (batch.to(self.device).float() / 255.0 - self._mean) / self._std
        depth = self.net(x)
        out = []
        for image, prediction in zip(images, depth):
            full = F.interpolate(prediction[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
            out.append(DepthPrediction(full.float().cpu().numpy()))
        return out


def _as_rgb(images: Sequence[np.ndarray], height: int, width: int) -> list[np.ndarray]:
    """uint8 HxWx3 copies at the model's input size (area filter when shrinking)."""
    import cv2

    resized = []
    for image in images:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"a depth model takes HxWx3 uint8 RGB images, got {image.dtype} {image.shape}")
        shrink = image.shape[0] > height or image.shape[1] > width
        resized.append(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR))
    return resized
