"""`dataengine score-depth`: score a depth model's predictions on a robustness release.

Predictions mirror the export layout, one `.npy` per frame (depth or, with `disparity=True`,
disparity): `<predictions>/clean/<path>.npy` and `<predictions>/<corruption>/<severity>/<path>.npy`,
where `<path>` is the exported path (for KITTI, `kitti_data/<date>/<drive>/image_02/data/<frame>`)
or the record's frame; or one array per split in split order: `<predictions>/clean.npz` and
`<predictions>/<corruption>/<severity>.npz`, each holding `pred` (N x H x W). A corruption with no
predictions at all is skipped (and listed); a partial or misaligned one is refused.

Scores follow RoboDepth's scripts by default (metrics rounded to 3 decimals per split, DEE rounded
to 3 decimals), so mCE, RmCE and mRR equal what its code prints; `exact=True` keeps full precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builders.robustness.export import robodepth_frame_path
from dataengine.core.fields import decode_member
from dataengine.metrics.depth import depth_metrics, mean_metrics, resilience_rates, robodepth_dee, robustness_scores
from dataengine.release.reader import Release

DEFAULTS = {"kitti_c": ("kitti", "monodepth2"), "nyu_c": ("nyu", "adabins")}


class PredictionError(ValueError):
    """Predictions do not match the release."""


@dataclass
class DepthScores:
    protocol: str
    baseline: str | None
    exact: bool = False
    per_split: dict[str, dict[str, float]] = field(default_factory=dict)
    dee: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    robustness: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "baseline": self.baseline,
            "rounding": "none (exact)" if self.exact else "RoboDepth: 3 decimals per split and per DEE",
            "per_split": self.per_split,
            "dee": self.dee,
            "skipped": self.skipped,
            **self.robustness,
        }


def _split_folder(split: str) -> tuple[str, str]:
    corruption, _, level = split.partition("/")
    return (corruption, "clean") if corruption == "clean" else (corruption, f"{corruption}/{level.removeprefix('severity_')}")


def _frame_files(root: Path, folder: str, frames: list[str]) -> list[Path] | None:
    """Per-frame `.npy` files in the export layout or, failing that, under the record's frame
    paths; None when neither layout has any file."""
    layouts = [[robodepth_frame_path(frame) for frame in frames], frames]
    for paths in layouts:
        files = [root / folder / Path(path).with_suffix(".npy") for path in paths]
        if any(f.exists() for f in files):
            return files
    return None


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
    files = _frame_files(root, folder, frames)
    if files is None:
        return None
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise PredictionError(f"{len(missing)} of {len(files)} predictions missing for {folder}, e.g. {missing[0]}")
    return [np.load(f, allow_pickle=False) for f in files]


def score_release(
    release: str | Path,
    predictions: str | Path,
    protocol: str | None = None,
    baseline: str | None = "default",
    disparity: bool = False,
    exact: bool = False,
) -> DepthScores:
    """Per-split metrics, DEE per corruption and mCE / RmCE / mRR of predictions on a release.

    `disparity`: predictions are disparities, resized to the ground truth and then inverted.
    `exact`: no RoboDepth rounding (see the module docstring).
    """
    source, predictions = Release.open(release), Path(predictions)
    manifest = source.manifest
    if manifest.sample_kind != "depth_c" or "depth.png" not in manifest.fields:
        raise PredictionError(f"{release} is not a robustness release with ground-truth depth")
    default_protocol, default_baseline = DEFAULTS.get(manifest.builder, ("kitti", None))
    protocol = protocol or default_protocol
    baseline = default_baseline if baseline == "default" else baseline
    scores = DepthScores(protocol, baseline, exact)
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
            gt = decode_member(manifest.fields["depth.png"], members["depth.png"])
            try:
                rows.append(depth_metrics(gt, np.asarray(pred).squeeze(), protocol, disparity=disparity))
            except ValueError as exc:
                raise PredictionError(f"{split}, frame {record['frame']}: {exc}") from None
        scores.per_split[split] = mean_metrics(rows)
        by_corruption.setdefault(corruption, []).append(scores.per_split[split])
    if "clean" not in by_corruption:
        raise PredictionError(f"no predictions for the clean split under {predictions} (clean/ or clean.npz)")
    scores.dee = robodepth_dee(by_corruption, exact=exact)
    dee2 = {name: values["dee2"] for name, values in scores.dee.items()}
    if baseline and len(dee2) > 1:
        scores.robustness = robustness_scores(dee2, baseline).as_dict()
    elif len(dee2) > 1:
        rr = resilience_rates(dee2)
        scores.robustness = {"mRR": 100 * float(np.mean(list(rr.values()))), "RR": rr}
    return scores
