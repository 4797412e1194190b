"""`dataengine score-depth`: score a depth model's predictions on a robustness release.

Predictions mirror the export layout, one `.npy` per frame (depth or, with `disparity=True`,
disparity): `<predictions>/clean/<frame>.npy` and `<predictions>/<corruption>/<severity>/<frame>.npy`;
or one array per split in split order: `<predictions>/clean.npz` and
`<predictions>/<corruption>/<severity>.npz`, each holding `pred` (N x H x W). A corruption with no
predictions at all is skipped (and listed); a partial or misaligned one is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.core.fields import decode_member
from dataengine.metrics.depth import corruption_dee, dee, depth_metrics, mean_metrics, resilience_rates, robustness_scores
from dataengine.release.reader import Release

DEFAULTS = {"kitti_c": ("kitti", "monodepth2"), "nyu_c": ("nyu", "adabins")}


class PredictionError(ValueError):
    """Predictions do not match the release."""


@dataclass
class DepthScores:
    protocol: str
    baseline: str | None
    per_split: dict[str, dict[str, float]] = field(default_factory=dict)
    dee: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    robustness: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "baseline": self.baseline,
            "per_split": self.per_split,
            "dee": self.dee,
            "skipped": self.skipped,
            **self.robustness,
        }


def _split_folder(split: str) -> tuple[str, str]:
    corruption, _, level = split.partition("/")
    return (corruption, "clean") if corruption == "clean" else (corruption, f"{corruption}/{level.removeprefix('severity_')}")


def _predictions(root: Path, folder: str, frames: list[str]) -> list[np.ndarray] | None:
    """The predictions for one split, in sample order, or None when there are none at all."""
    bundle = root / f"{folder}.npz"
    if bundle.exists():
        with np.load(bundle, allow_pickle=False) as archive:
            if "pred" not in archive.files:
                raise PredictionError(f"{bundle} has no 'pred' array (keys: {', '.join(archive.files)})")
            preds = archive["pred"]
        if len(preds) != len(frames):
            raise PredictionError(f"{bundle} holds {len(preds)} predictions but the split has {len(frames)} frames, in release order")
        return list(preds)
    files = [root / folder / Path(frame).with_suffix(".npy") for frame in frames]
    present = [f.exists() for f in files]
    if not any(present):
        return None
    if not all(present):
        missing = [str(f) for f, ok in zip(files, present) if not ok]
        raise PredictionError(f"{len(missing)} of {len(files)} predictions missing for {folder}, e.g. {missing[0]}")
    return [np.load(f, allow_pickle=False) for f in files]


def score_release(
    release: str | Path, predictions: str | Path, protocol: str | None = None, baseline: str | None = "default", disparity: bool = False
) -> DepthScores:
    source, predictions = Release.open(release), Path(predictions)
    manifest = source.manifest
    if manifest.sample_kind != "depth_c" or "depth.png" not in manifest.fields:
        raise PredictionError(f"{release} is not a robustness release with ground-truth depth")
    default_protocol, default_baseline = DEFAULTS.get(manifest.builder, ("kitti", None))
    protocol = protocol or default_protocol
    baseline = default_baseline if baseline == "default" else baseline
    scores = DepthScores(protocol, baseline)
    by_corruption: dict[str, list[dict[str, float]]] = {}
    for split in source.splits:
        corruption, folder = _split_folder(split)
        samples = list(source.raw_samples(split))
        records = [decode_member("json", m["json"]) for m in samples]
        preds = _predictions(predictions, folder, [r["frame"] for r in records])
        if preds is None:
            scores.skipped.append(split)
            continue
        rows = []
        for members, record, pred in zip(samples, records, preds):
            pred = np.asarray(pred, dtype=np.float64).squeeze()
            if disparity:
                pred = np.where(pred > 0, 1.0 / np.maximum(pred, 1e-12), 0.0)
            gt = decode_member(manifest.fields["depth.png"], members["depth.png"])
            try:
                rows.append(depth_metrics(gt, pred, protocol))
            except ValueError as exc:
                raise PredictionError(f"{split}, frame {record['frame']}: {exc}") from None
        scores.per_split[split] = mean_metrics(rows)
        by_corruption.setdefault(corruption, []).append(scores.per_split[split])
    if "clean" not in by_corruption:
        raise PredictionError(f"no predictions for the clean split under {predictions} (clean/ or clean.npz)")
    scores.dee = {
        name: corruption_dee(rows) if name != "clean" else dee(rows[0]["abs_rel"], rows[0]["a1"]) for name, rows in by_corruption.items()
    }
    dee2 = {name: values["dee2"] for name, values in scores.dee.items()}
    if baseline and len(dee2) > 1:
        scores.robustness = robustness_scores(dee2, baseline).as_dict()
    elif len(dee2) > 1:
        rr = resilience_rates(dee2)
        scores.robustness = {"mRR": 100 * float(np.mean(list(rr.values()))), "RR": rr}
    return scores
