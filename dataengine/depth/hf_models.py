"""Hugging Face `depth-estimation` models through transformers (Depth Anything V2 Metric, Depth Pro,
ZoeDepth, GLPN...), from a local folder or a Hub id.

Spatial facts need metres, so models known to predict relative (inverse) depth are refused with a
pointer to their metric variants.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dataengine.depth.sources import DepthPrediction, MonocularDepth

# Model families whose checkpoints predict relative inverse depth (MiDaS-style DPT).
_RELATIVE_TYPES = {"dpt"}


class HFDepthModel(MonocularDepth):
    def __init__(self, model, processor, device: str, batch_size: int, name: str) -> None:
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self.batch_size = batch_size
        self.id = f"model:{name}"

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str = "cpu", batch_size: int = 4) -> HFDepthModel:
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError as exc:  # pragma: no cover - transformers is in the models extra
            raise ImportError("Hugging Face depth models need transformers: pip install 'dataengine[models]'") from exc
        model = AutoModelForDepthEstimation.from_pretrained(name_or_path)
        config = model.config
        if getattr(config, "depth_estimation_type", None) == "relative" or config.model_type in _RELATIVE_TYPES:
            raise ValueError(
                f"{name_or_path} predicts relative depth, but spatial facts need metres; use a metric model such as "
                "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf, apple/DepthPro-hf or Intel/zoedepth-nyu-kitti"
            )
        processor = AutoImageProcessor.from_pretrained(name_or_path)
        local = Path(name_or_path)
        return cls(model, processor, device, batch_size, local.name if local.is_dir() else str(name_or_path))

    def predict_batch(self, images: Sequence[np.ndarray]) -> list[DepthPrediction]:
        import torch

        by_size: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for index, image in enumerate(images):
            by_size[image.shape].append(index)
        out: list[DepthPrediction | None] = [None] * len(images)
        for indices in by_size.values():  # the processor stacks a batch only when sizes agree
            group = [images[i] for i in indices]
            inputs = self.processor(images=group, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                outputs = self.model(**inputs)
            results = self.processor.post_process_depth_estimation(outputs, target_sizes=[im.shape[:2] for im in group])
            for i, result in zip(indices, results):
                focal = result.get("focal_length")
                depth = result["predicted_depth"].float().cpu().numpy()
                out[i] = DepthPrediction(
                    np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32), float(focal) if focal is not None else None
                )
        return out
