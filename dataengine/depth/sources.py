"""Depth sources: one interface over ground truth, stereo and learned monocular models.

A source spec is a short string, chosen per catalog and recorded per sample:

- `gt`: the depth the source itself carries (rendered, LiDAR, Kinect); read by the builder.
- `stereo`: OpenCV semi-global matching on a rectified pair with its focal length and baseline.
- `model:<path or hub id>`: a learned monocular model. A local folder written by
  `dataengine.depth.learned.save_depth_model` (a timm backbone plus a light dense decoder) is loaded
  as such; any other folder or a Hub id goes to Hugging Face transformers (`depth-estimation` models
  such as Depth Anything V2 Metric or Depth Pro).

Monocular models are loaded once per process (cached by spec and device), run in batches and use
CUDA when it is there.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SPEC_HELP = "a depth source is 'gt', 'stereo' or 'model:<checkpoint folder or Hugging Face hub id>'"


@dataclass
class DepthPrediction:
    """Metric depth of one image (float32 metres, 0 = no measurement), and the focal length in
    pixels when the model estimates it (Depth Pro does)."""

    depth: np.ndarray
    focal_px: float | None = None


class MonocularDepth(ABC):
    """A learned model that turns RGB images into metric depth."""

    id: str
    batch_size: int = 4

    @abstractmethod
    def predict_batch(self, images: Sequence[np.ndarray]) -> list[DepthPrediction]:
        """Depth for a batch of HxWx3 uint8 RGB images (sizes may differ), each at its own size."""

    def predict(self, images: Sequence[np.ndarray]) -> list[DepthPrediction]:
        """Depth for any number of images, `batch_size` at a time."""
        out: list[DepthPrediction] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self.predict_batch(images[start : start + self.batch_size]))
        return out


def parse_spec(spec: str) -> tuple[str, str]:
    """('gt' | 'stereo' | 'model', argument); a wrong spec fails with what is allowed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty depth source; {SPEC_HELP}")
    kind, _, argument = spec.strip().partition(":")
    if kind in ("gt", "stereo") and not argument:
        return kind, ""
    if kind == "model" and argument:
        return kind, argument
    raise ValueError(f"unknown depth source {spec!r}; {SPEC_HELP}")


def pick_device(device: str | None = None) -> str:
    """`device` as given, else CUDA when torch sees a GPU, else the CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def is_dataengine_checkpoint(path: str | Path) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("format") == "dataengine-depth"
    except (OSError, ValueError):
        return False


@lru_cache(maxsize=4)
def _load_model(argument: str, device: str, batch_size: int) -> MonocularDepth:
    if is_dataengine_checkpoint(argument):
        from dataengine.depth.learned import TimmDepthModel

        return TimmDepthModel.from_checkpoint(argument, device=device, batch_size=batch_size)
    from dataengine.depth.hf_models import HFDepthModel

    return HFDepthModel.from_pretrained(argument, device=device, batch_size=batch_size)


def load_monocular(spec: str, device: str | None = None, batch_size: int = 4) -> MonocularDepth:
    """The model behind a `model:<...>` spec, loaded once per process and device."""
    kind, argument = parse_spec(spec)
    if kind != "model":
        raise ValueError(f"{spec!r} is not a learned model; {SPEC_HELP}")
    return _load_model(argument, pick_device(device), int(batch_size))
