"""Measured spatial facts of the objects in one image: boxes, 3D extents, distances, relations.

`measure` back-projects each object's pixels (its mask, or its box with the background behind it
trimmed) and returns raw values for checks; `Measurement.as_facts()` gives the structured record,
rounded exactly as the rationale states it (boxes to 3 decimals, metres to 2).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataengine.depth.geometry import Intrinsics, backproject, box_mask, distance, level, relations

MIN_POINTS = 10
MAX_POINTS = 4096


class FactError(ValueError):
    """An object cannot be measured (box outside the image, no valid depth); `code` names why."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Region:
    """One object to measure: a display name, a pixel-edge box [x0, y0, x1, y1], an optional mask."""

    name: str
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None


@dataclass
class ObjectFacts:
    name: str
    box_norm: list[float]
    width_m: float
    height_m: float
    nearest_m: float
    center_m: list[float]
    points: int


@dataclass
class Measurement:
    objects: list[ObjectFacts]
    pairs: list[dict[str, Any]] = field(default_factory=list)

    def object(self, name: str) -> ObjectFacts:
        return next(o for o in self.objects if o.name == name)

    def pair(self, a: str, b: str) -> dict[str, Any]:
        """Relations of A to B (derived from the stored B-to-A pair when needed)."""
        for p in self.pairs:
            if (p["a"], p["b"]) == (a, b):
                return p
            if (p["a"], p["b"]) == (b, a):
                return flip(p)
        raise KeyError(f"no measured pair {a!r}, {b!r}")

    def as_facts(self) -> dict[str, Any]:
        return {
            "objects": [
                {
                    "name": o.name,
                    "box": [round(v, 3) for v in o.box_norm],
                    "width_m": round(o.width_m, 2),
                    "height_m": round(o.height_m, 2),
                    "nearest_m": round(o.nearest_m, 2),
                    "center_m": [round(v, 2) for v in o.center_m],
                    "points": o.points,
                }
                for o in self.objects
            ],
            "relations": [{**p, "distance_m": round(p["distance_m"], 2)} for p in self.pairs],
        }


def flip(pair: dict[str, Any]) -> dict[str, Any]:
    """B-to-A relations from A-to-B ones (the clock is measured from the other object: +6 hours)."""
    return {
        "a": pair["b"],
        "b": pair["a"],
        "distance_m": pair["distance_m"],
        "left_of": not pair["left_of"],
        "above": not pair["above"],
        "nearer": not pair["nearer"],
        "clock": (pair["clock"] + 5) % 12 + 1,
    }


def measure(depth: np.ndarray, intrinsics: Intrinsics, regions: list[Region], pitch_deg: float = 0.0, trim: float = 0.0) -> Measurement:
    """Facts for every region and every pair. `trim` drops that fraction of points at each end of
    each axis before taking extents (0 for exact depth; ~0.01 for noisy sources)."""
    height, width = depth.shape
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise ValueError(f"object names must be unique to be stated in text, got {names}")
    objects, clouds = [], []
    for region in regions:
        x0, y0, x1, y1 = region.box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise FactError(f"the box of '{region.name}' {list(region.box)} falls outside the {width}x{height} image", "box_outside_image")
        if region.mask is not None:
            mask = region.mask.astype(bool).copy()
            inside = np.zeros_like(mask)
            inside[int(np.floor(y0)) : int(np.ceil(y1)), int(np.floor(x0)) : int(np.ceil(x1))] = True
            mask &= inside
        else:
            mask = box_mask(depth, region.box)
        camera_points = backproject(depth, intrinsics, mask)
        if len(camera_points) < MIN_POINTS:
            raise FactError(f"'{region.name}' has {len(camera_points)} pixels with valid depth (need {MIN_POINTS})", "no_valid_depth")
        points = level(camera_points, pitch_deg)
        lo, hi = np.quantile(points, [trim, 1 - trim], axis=0) if trim > 0 else (points.min(axis=0), points.max(axis=0))
        span = hi - lo
        objects.append(
            ObjectFacts(
                region.name,
                [x0 / width, y0 / height, x1 / width, y1 / height],
                float(span[0]),
                float(span[1]),
                float(camera_points[:, 2].min()),
                [float(v) for v in points.mean(axis=0)],
                int(len(points)),
            )
        )
        clouds.append(points[:: max(1, len(points) // MAX_POINTS)])
    pairs = []
    for i, j in itertools.combinations(range(len(regions)), 2):
        rel = relations(clouds[i], clouds[j])
        pairs.append(
            {
                "a": names[i],
                "b": names[j],
                "distance_m": distance(clouds[i], clouds[j]),
                "left_of": rel["left_of"],
                "above": rel["above"],
                "nearer": objects[i].nearest_m < objects[j].nearest_m,
                "clock": rel["clock_of_b_from_a"],
            }
        )
    return Measurement(objects, pairs)
