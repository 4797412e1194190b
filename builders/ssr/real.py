"""SSR-CoT records from real sources: Visual-CoT, VoCoT and LLaVA-CoT style annotations over images,
with depth from the chosen source and rationales that state the measured facts.

Depth per `params.depth_source`:
- `gt`: a 16-bit millimetre PNG in the SSR-CoT layout under `sources.depth` (default: the image
  root): `<first folder>_d/<rest>.png`.
- `stereo`: a Middlebury-style folder: the image is `im0.png`, its partner `im1.png`, and `calib.txt`
  gives the focal length, baseline and doffs.
- `model:<...>`: a learned monocular model, run in batches.

Intrinsics come from the calibration when there is one, else from the model's own focal estimate
(Depth Pro), else from `default_hfov_deg`, and the record says which.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from builders.ssr import rationale
from builders.ssr.export import depth_path_for
from builders.ssr.facts import FactError, Region
from builders.ssr.pipeline import (
    PARAMS_SCHEMA,
    Question,
    check_params,
    chunks,
    depth_source_id,
    describe_depth_source,
    make_sample,
    measure_stored,
    predict_depth,
)
from builders.ssr.sources import FORMATS, read_records
from dataengine.core.builder import Builder, Context, Sample, register_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.depth_png import MM_PER_M, decode_source_depth
from dataengine.core.fields import refuse_exif_orientation
from dataengine.core.rejects import Reject
from dataengine.depth.geometry import Intrinsics
from dataengine.depth.sources import parse_spec
from dataengine.depth.stereo import StereoDepth, read_middlebury_calib
from dataengine.io.paths import safe_join

MAX_OBJECTS = 4


@register_builder("ssr_cot")
class SSRCoTBuilder(Builder):
    sample_kind = "ssr_cot"
    required_sources = ("images",)
    task_categories = ("visual-question-answering",)
    params_schema = {"type": "object", "additionalProperties": False, "properties": PARAMS_SCHEMA}
    split_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["inputs"],
        "properties": {
            "inputs": {
                "type": "array",
                "minItems": 1,
                "items": {"enum": list(FORMATS)},
                "description": "annotation sources (catalog sources of these names)",
            }
        },
    }

    def sample_overlay(self, record: Mapping[str, Any]) -> tuple[str, list[list[float]]]:
        return record.get("question", ""), []

    def parse_rationale(self, text: str) -> list[dict[str, Any]]:
        return rationale.parse(text)

    def describe_depth(self, spec: BuildSpec) -> str:
        return describe_depth_source(spec.params, "from the source's ground truth")

    def fields(self, spec: BuildSpec) -> dict[str, str]:
        return {"image.jpg": "image", "depth.png": "depth", "json": "json"}

    def _records(self, spec: BuildSpec) -> tuple[dict[str, list[dict[str, Any]]], list[Reject]]:
        by_split, rejects = {}, []
        for split, values in spec.splits.items():
            records = []
            for fmt in values["inputs"]:
                if fmt not in spec.sources:
                    raise ValueError(f"splits.{split}.inputs names '{fmt}', so the catalog needs sources.{fmt} (the annotation file)")
                found, bad = read_records(spec.sources[fmt], fmt)
                records += found
                rejects += bad
            by_split[split] = records
        return by_split, rejects

    def plan(self, spec: BuildSpec) -> list[Partition]:
        check_params(spec.params)
        by_split, _ = self._records(spec)
        # Records of one image sit together, so a partition computes that image's depth once.
        return [part for split, records in by_split.items() for part in spec.partition(split, sorted(records, key=lambda r: r["image"]))]

    def planning_rejects(self, spec: BuildSpec) -> list[Reject]:
        return self._records(spec)[1]

    def item_key(self, item: dict[str, Any], ctx: Context) -> str:
        return re.sub(r"[^A-Za-z0-9_-]+", "_", item["id"])

    def item_source(self, item: dict[str, Any], ctx: Context) -> str:
        return item["image"]

    def process(self, part: Partition, ctx: Context) -> Iterator[Sample]:
        """Records a chunk at a time (one depth-model batch per chunk); a record that fails is one reject
        with its reason, and the others go on."""
        p = ctx.spec.params
        kind, _ = parse_spec(p["depth_source"])
        source_id = depth_source_id(p)
        cache: dict[str, Any] = {}  # image -> model prediction, within this partition
        for chunk in chunks(part.items, p["batch_size"]):
            loaded = []
            for record in chunk:
                try:
                    loaded.append((record, *self._load(record, ctx.spec, kind)))
                except Exception as exc:  # one unreadable input is one reject, whatever it raises
                    if ctx.sink.policy == "raise" and not isinstance(exc, (OSError, ValueError, KeyError)):
                        raise
                    code = "missing_file" if isinstance(exc, FileNotFoundError) else "unreadable_input"
                    ctx.reject(key=self.item_key(record, ctx), source=record["image"], code=code, reason=f"{type(exc).__name__}: {exc}")
                    ctx.item_done()
            if kind == "model" and loaded:
                todo = {e[0]["image"]: e[2] for e in loaded if e[0]["image"] not in cache}
                for image, prediction in zip(todo, predict_depth(p["depth_source"], list(todo.values()), p)):
                    cache[image] = prediction
                for entry in loaded:
                    entry[3]["depth"], entry[3]["focal_px"] = cache[entry[0]["image"]].depth, cache[entry[0]["image"]].focal_px
            for record, image_bytes, rgb, depth in loaded:
                sample = None
                with ctx.sink.guard(key=self.item_key(record, ctx), source=record["image"]):
                    try:
                        sample = self._sample(record, ctx, image_bytes, rgb, depth, source_id, trim=0.0 if kind == "gt" else 0.01)
                    except FactError as exc:
                        ctx.reject(key=self.item_key(record, ctx), source=record["image"], code=exc.code, reason=str(exc))
                if sample is not None:
                    yield sample
                ctx.item_done()

    def _load(self, record: dict[str, Any], spec: BuildSpec, kind: str) -> tuple[bytes, np.ndarray, dict[str, Any]]:
        """Original image bytes (JPEG kept as is, others re-encoded), RGB pixels, and depth + calibration."""
        path = safe_join(spec.sources["images"], record["image"])
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            refuse_exif_orientation(image, f"image {record['image']}")  # its boxes and depth could match either orientation
            is_jpeg = image.format == "JPEG"
            rgb = np.asarray(image.convert("RGB"))
        if not is_jpeg:
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format="JPEG", quality=95)
            data = buffer.getvalue()
        depth: dict[str, Any] = {"depth": None, "focal_px": None, "calib": None}
        if kind == "gt":
            root = spec.sources.get("depth", spec.sources["images"])
            depth_file = safe_join(root, depth_path_for(record["image"]))
            depth["depth"] = decode_source_depth(depth_file.read_bytes(), MM_PER_M, f"depth {depth_path_for(record['image'])}")
            if depth["depth"].shape != rgb.shape[:2]:
                raise ValueError(f"depth map {depth['depth'].shape} and image {rgb.shape[:2]} differ in size")
        calib = path.parent / "calib.txt"
        if calib.is_file():
            depth["calib"] = read_middlebury_calib(calib)
        if kind == "stereo":
            if depth["calib"] is None:
                raise FileNotFoundError(f"stereo needs a Middlebury-style folder: no calib.txt beside {record['image']}")
            with Image.open(path.parent / "im1.png") as right:
                right_rgb = np.asarray(right.convert("RGB"))
            calib = depth["calib"]
            source = StereoDepth(calib["focal_px"], calib["baseline_m"], calib["doffs"], max_disparity=int(rgb.shape[1] // 4))
            depth["depth"] = source.depth(rgb, right_rgb)
        return data, rgb, depth

    def _sample(
        self, record: dict[str, Any], ctx: Context, image_bytes: bytes, rgb: np.ndarray, depth: dict[str, Any], source_id: str, trim: float
    ) -> Sample | None:
        p = ctx.spec.params
        key = self.item_key(record, ctx)
        height, width = rgb.shape[:2]
        if not record["objects"]:
            raise FactError(
                "the record names no objects with boxes, so there is nothing to measure (add a grounding step's `objects`)", "no_objects"
            )
        regions = []
        for obj in record["objects"][:MAX_OBJECTS]:
            box = obj["box"]
            scale = (width, height, width, height) if obj.get("normalized", max(box) <= 1.0) else (1, 1, 1, 1)
            regions.append(Region(obj["name"], tuple(float(v) * s for v, s in zip(box, scale))))
        if depth["calib"]:
            calib = depth["calib"]
            intrinsics, origin = Intrinsics(calib["focal_px"], calib["focal_px"], calib["cx"], calib["cy"]), "calibration"
        elif depth["focal_px"]:
            intrinsics, origin = Intrinsics(depth["focal_px"], depth["focal_px"], (width - 1) / 2, (height - 1) / 2), "model"
        else:
            intrinsics, origin = Intrinsics.from_fov(width, height, p["default_hfov_deg"]), f"default_hfov_{p['default_hfov_deg']:g}"
        measured = measure_stored(depth["depth"], intrinsics, origin, regions, 0.0, trim, ctx.spec.shards.png_level)
        names = [r.name for r in regions]
        pairs = [(names[0], other) for other in names[1:]]
        question = Question(record["question"], record["answer"], "open", names, pairs, lead=tuple(record["lead"]))
        image_path = record["image"] if len(PurePosixPath(record["image"]).parts) > 1 else f"{record['format']}/{record['image']}"
        return make_sample(
            key,
            ctx,
            image_bytes,
            "jpg",
            str(PurePosixPath(image_path).with_suffix(".jpg")),
            measured,
            question,
            {"dataset": record["format"], "id": record["id"], "format": record["format"]},
            source_id,
        )
