"""Metric facts from depth: back-projection, 3D extents, distances and spatial relations.

Camera frame: OpenCV (x right, y down, z forward), metres. A pixel (u, v) with depth z
back-projects to (z (u - cx) / fx, z (v - cy) / fy, z). Extents and relations are measured in the
*level* frame (x right, y up, z forward), which is the camera frame turned upright by the camera's
pitch when the source knows it (pitch 0 otherwise, as in the SSR paper). These are the measurements
SSR-CoT style rationales state, computed the way the SSR paper describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Intrinsics:
    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> Intrinsics:
        """Square pixels and a centred principal point, from a horizontal field of view (a stated default
        when the source gives no calibration)."""
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(fx, fx, (width - 1) / 2.0, (height - 1) / 2.0)


def backproject(depth: np.ndarray, intrinsics: Intrinsics, mask: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points of the masked pixels that have depth (> 0 and finite)."""
    if depth.shape != mask.shape:
        raise ValueError(f"depth {depth.shape} and mask {mask.shape} differ in size")
    rows, cols = np.nonzero(mask & np.isfinite(depth) & (depth > 0))
    z = depth[rows, cols].astype(np.float64)
    return np.stack([z * (cols - intrinsics.cx) / intrinsics.fx, z * (rows - intrinsics.cy) / intrinsics.fy, z], axis=1)


def level(points: np.ndarray, pitch_deg: float = 0.0) -> np.ndarray:
    """Camera-frame points in the level frame (x right, y up, z forward and horizontal) of a camera
    pitched down by `pitch_deg`."""
    p = math.radians(pitch_deg)
    to_camera = np.array([[1.0, 0.0, 0.0], [0.0, -math.cos(p), -math.sin(p)], [0.0, -math.sin(p), math.cos(p)]])
    return np.asarray(points, dtype=np.float64) @ to_camera


def box_mask(depth: np.ndarray, box: tuple[float, float, float, float], spread: float = 0.15) -> np.ndarray:
    """The pixels of a pixel-edge box [x0, y0, x1, y1] that belong to the object, not the background
    behind it: depths near the box's near mode (its 25th percentile), within `spread` of it or two
    median absolute deviations, whichever is wider."""
    h, w = depth.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box {list(box)} falls outside the {w}x{h} image")
    mask = np.zeros(depth.shape, dtype=bool)
    region = depth[y0:y1, x0:x1]
    valid = np.isfinite(region) & (region > 0)
    if not valid.any():
        return mask
    values = region[valid]
    reference = np.percentile(values, 25)
    mad = np.median(np.abs(values - np.median(values)))
    keep = valid & (np.abs(region - reference) <= max(spread * reference, 2 * mad))
    mask[y0:y1, x0:x1] = keep
    return mask


def extent(points: np.ndarray) -> dict[str, float]:
    """Width (x), height (y) and depth (z) of the points' axis-aligned 3D box, metres."""
    if len(points) == 0:
        raise ValueError("no 3D points: the object has no valid depth")
    span = points.max(axis=0) - points.min(axis=0)
    return {"width": float(span[0]), "height": float(span[1]), "depth": float(span[2])}


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean of the two directed nearest-neighbour distances (each a mean over its cloud), metres."""
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both objects need 3D points")
    a_to_b = cKDTree(b).query(a)[0].mean()
    b_to_a = cKDTree(a).query(b)[0].mean()
    return float((a_to_b + b_to_a) / 2)


def relations(a: np.ndarray, b: np.ndarray) -> dict[str, object]:
    """How A stands to B, both level-frame clouds: left/right (centre x), above/below (centre y, up),
    nearer/farther (nearest z), and the clock direction of B seen from A on the ground plane
    (12 o'clock = straight ahead, away from the camera)."""
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    angle = math.degrees(math.atan2(cb[0] - ca[0], cb[2] - ca[2])) % 360
    hour = int(round(angle / 30)) % 12 or 12
    return {
        "left_of": bool(ca[0] < cb[0]),
        "above": bool(ca[1] > cb[1]),
        "nearer": bool(a[:, 2].min() < b[:, 2].min()),
        "clock_of_b_from_a": hour,
    }
