"""Classical stereo depth: OpenCV semi-global matching on a rectified pair, disparity -> metres.

Z = f * B / (d + doffs), with f the focal length in pixels, B the baseline in metres and doffs
the principal-point offset between the two cameras (0 for most rigs; Middlebury gives it).
Pixels without a confident match get depth 0 (no measurement).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class StereoDepth:
    """A depth source for rectified stereo pairs."""

    focal_px: float
    baseline_m: float
    doffs: float = 0.0
    max_disparity: int = 256
    block_size: int = 5

    def disparity(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Left-image disparity in pixels (float32); NaN where matching failed."""
        if left.shape != right.shape:
            raise ValueError(f"a rectified pair has equal sizes, got {left.shape} and {right.shape}")
        grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) if im.ndim == 3 else im for im in (left, right)]
        numbers = max(16, int(np.ceil(self.max_disparity / 16)) * 16)
        channels = 1
        matcher = cv2.StereoSGBM_create(
            minDisparity=0,
            numDisparities=numbers,
            blockSize=self.block_size,
            P1=8 * channels * self.block_size**2,
            P2=32 * channels * self.block_size**2,
            disp12MaxDiff=1,
            uniquenessRatio=10,
            speckleWindowSize=100,
            speckleRange=2,
            mode=cv2.STEREO_SGBM_MODE_SGBM_3WAY,
        )
        disparity = matcher.compute(grey[0], grey[1]).astype(np.float32) / 16.0
        disparity[disparity <= 0] = np.nan
        return disparity

    def depth(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Metric depth of the left image (float32 metres, 0 = no measurement)."""
        disparity = self.disparity(left, right)
        with np.errstate(invalid="ignore", divide="ignore"):
            depth = self.focal_px * self.baseline_m / (disparity + self.doffs)
        return np.where(np.isfinite(depth) & (depth > 0), depth, 0).astype(np.float32)


def read_middlebury_calib(path: Path) -> dict[str, float]:
    """focal and principal point (px), baseline (m) and doffs from a Middlebury `calib.txt`
    (`cam0=[f 0 cx; 0 f cy; 0 0 1]`, baseline in mm); a ValueError that says what is wrong otherwise."""
    shape = "cam0=[f 0 cx; 0 f cy; 0 0 1], baseline=<mm>"
    values = dict(line.split("=", 1) for line in path.read_text(errors="replace").splitlines() if "=" in line)
    try:
        cam0 = [float(v) for v in re.findall(r"[-+\d.eE]+", values["cam0"])]
        baseline_mm, doffs = float(values["baseline"]), float(values.get("doffs", 0.0))
    except KeyError as exc:
        raise ValueError(f"{path} is not a Middlebury calibration ({shape}): no {exc.args[0]}= line") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not a Middlebury calibration ({shape}): {exc}") from None
    if len(cam0) != 9:
        raise ValueError(f"{path} is not a Middlebury calibration ({shape}): cam0 has {len(cam0)} numbers, not 9")
    calib = {"focal_px": cam0[0], "cx": cam0[2], "cy": cam0[5], "baseline_m": baseline_mm / 1000.0, "doffs": doffs}
    if not all(math.isfinite(v) for v in calib.values()) or calib["focal_px"] <= 0 or calib["baseline_m"] <= 0:
        raise ValueError(f"{path} needs a finite positive focal length and baseline, got {calib}")
    return calib
