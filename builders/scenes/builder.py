"""Procedural 3D scenes with exact metric depth, instance masks and 3D object annotations.

The offline source every other builder, test and demo can stand on: nothing to download, and every
number in a record is ground truth by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from builders.scenes.geometry import Camera, Rendering, Shape, render, sample_layout, sample_light
from dataengine.core.builder import Builder, Context, Sample, register_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.depth_png import encode_depth_png
from dataengine.core.fields import encode_image, encode_mask

_PAIR = {"type": "array", "minItems": 2, "maxItems": 2}


@register_builder("scenes")
class ScenesBuilder(Builder):
    """Renders `num_samples` scenes per split; the scene of a sample depends only on (seed, key)."""

    task_categories = ("depth-estimation", "object-detection", "image-segmentation")

    sample_kind = "scene"
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "width": {"type": "integer", "minimum": 32, "maximum": 8192, "default": 640},
            "height": {"type": "integer", "minimum": 32, "maximum": 8192, "default": 480},
            "hfov_deg": {"type": "number", "exclusiveMinimum": 10, "exclusiveMaximum": 150, "default": 70.0},
            "camera_height_m": {"type": "number", "minimum": 0.2, "maximum": 20, "default": 1.6},
            "camera_pitch_deg": {"type": "number", "minimum": -10, "maximum": 60, "default": 8.0},
            "objects": {**_PAIR, "items": {"type": "integer", "minimum": 1, "maximum": 64}, "default": [2, 6]},
            "depth_range_m": {**_PAIR, "items": {"type": "number", "exclusiveMinimum": 0}, "default": [3.0, 25.0]},
            "min_visible_pixels": {"type": "integer", "minimum": 1, "default": 40},
            "image_format": {"enum": ["png", "jpg"], "default": "png"},
            "shadows": {"type": "boolean", "default": True},
            "ambient": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.35},
        },
    }
    split_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["num_samples"],
        "properties": {"num_samples": {"type": "integer", "minimum": 0}},
    }

    def sample_overlay(self, record: Mapping[str, Any]) -> tuple[str, list[list[float]]]:
        return "", [obj["box_2d"] for obj in record.get("objects", [])]

    def describe_depth(self, spec: BuildSpec) -> str:
        return "from the renderer (exact)"

    def fields(self, spec: BuildSpec) -> dict[str, str]:
        return {f"rgb.{spec.params['image_format']}": "image", "depth.png": "depth", "mask.png": "mask", "json": "json"}

    def plan(self, spec: BuildSpec) -> list[Partition]:
        lo, hi = spec.params["objects"]
        near, far = spec.params["depth_range_m"]
        if lo > hi or near >= far:
            raise ValueError("params.objects and params.depth_range_m must be [low, high] with low <= high")
        return [part for split, values in spec.splits.items() for part in spec.partition(split, range(values["num_samples"]))]

    def item_key(self, item: int, ctx: Context) -> str:
        return f"scene-{ctx.partition.split}-{item:07d}"

    def item_source(self, item: int, ctx: Context) -> str:
        return f"procedural:{item}"

    def render_scene(self, item: int, ctx: Context) -> tuple[Camera, list[Shape], np.ndarray, Rendering]:
        """The scene of one item: camera, the visible shapes, the light and the rendering."""
        p = ctx.spec.params
        key = ScenesBuilder.item_key(self, item, ctx)
        camera = Camera.from_fov(p["width"], p["height"], p["hfov_deg"], p["camera_height_m"], p["camera_pitch_deg"])
        rng = ctx.rng(key, "layout")
        count = int(rng.integers(p["objects"][0], p["objects"][1] + 1))
        shapes = sample_layout(rng, camera, p["hfov_deg"], count, tuple(p["depth_range_m"]))
        light = sample_light(ctx.rng(key, "light"))
        shapes, rendering = self._render_visible(camera, shapes, light, p)
        return camera, shapes, light, rendering

    def process_item(self, item: int, ctx: Context) -> Iterable[Sample]:
        p = ctx.spec.params
        key = self.item_key(item, ctx)
        camera, shapes, light, rendering = self.render_scene(item, ctx)
        level = ctx.spec.shards.png_level
        depth_png, clipped = encode_depth_png(rendering.depth, png_level=level)
        ctx.counters["depth_clipped_pixels"] += clipped
        record = {
            "key": key,
            "split": ctx.partition.split,
            "index": item,
            "camera": camera.as_dict(),
            "light": [float(v) for v in light],
            "depth": {"unit": "mm", "scale_m": 0.001, "invalid_value": 0, "source": "render", "clipped_pixels": clipped},
            "objects": [self.annotate(shape, camera, rendering) for shape in shapes],
        }
        yield {
            "__key__": key,
            f"rgb.{p['image_format']}": encode_image(rendering.rgb, p["image_format"], level),
            "depth.png": depth_png,
            "mask.png": encode_mask(rendering.mask, level),
            "json": record,
        }

    @staticmethod
    def _render_visible(camera: Camera, shapes: list[Shape], light: np.ndarray, p: dict[str, Any]) -> tuple[list[Shape], Rendering]:
        """Render, then drop shapes hidden below `min_visible_pixels` and render again (ids renumbered)."""
        for _ in range(3):
            rendering = render(camera, shapes, light, ambient=p["ambient"], shadows=p["shadows"])
            counts = np.bincount(rendering.mask.ravel(), minlength=len(shapes) + 1)
            keep = [s for s in shapes if counts[s.id] >= p["min_visible_pixels"]]
            if len(keep) == len(shapes):
                break
            shapes = [Shape(i + 1, s.category, s.color, s.center, s.size, s.yaw_deg) for i, s in enumerate(keep)]
        else:
            rendering = render(camera, shapes, light, ambient=p["ambient"], shadows=p["shadows"])
        return shapes, rendering

    @staticmethod
    def annotate(shape: Shape, camera: Camera, rendering: Rendering) -> dict[str, Any]:
        rows, cols = np.nonzero(rendering.mask == shape.id)
        box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1] if len(rows) else [0, 0, 0, 0]
        return {**shape.as_dict(camera), "box_2d": box, "box_2d_amodal": shape.amodal_box(camera), "pixels": int(len(rows))}
