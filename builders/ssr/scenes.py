"""SSR-CoT records over rendered scenes: SSRBench-kind questions with answers known from the scene,
rationales from the facts measured with the chosen depth source, and agreement with the truth.

Truth per scene: object heights and widths in closed form from each shape (for objects that are
neither occluded nor cut by the image border), left/right from the shapes' centres, and distances,
nearer/farther and above/below measured on the renderer's exact float depth with exact instance
masks. Relations are only asked where the truth is clear by a margin.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from builders.scenes.builder import ScenesBuilder
from builders.scenes.geometry import CATEGORIES, COLORS, Camera, Rendering, Shape
from builders.ssr import rationale
from builders.ssr.facts import FactError, Measurement, Region, measure
from builders.ssr.gate import agreement, agreement_rates
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
from builders.ssr.rationale import plural
from dataengine.core.builder import Context, Sample, register_builder
from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.fields import encode_image
from dataengine.depth.geometry import Intrinsics
from dataengine.depth.sources import parse_spec

KINDS = ("existence", "counting", "position", "depth_order", "distance", "size", "attribute")
# SSR-CoT is a spatial set: by default the spatial kinds weigh three times the general ones.
DEFAULT_QUESTION_MIX = {"distance": 3, "depth_order": 3, "size": 3, "position": 3, "existence": 1, "counting": 1, "attribute": 1}
QUESTION_MIX_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {kind: {"type": "number", "minimum": 0} for kind in KINDS},
    "default": DEFAULT_QUESTION_MIX,
    "description": "relative weight of each question kind; a kind left out weighs 0",
}
# Pixel centres fall short of an object's edges by up to a pixel in all, so a size is checkable to
# 2% only across about 100 pixels.
MIN_SIZE_PIXELS = 100
SIDE_MARGIN_M = 0.2
ORDER_MARGIN_M = 0.1
VERTICAL_MARGIN_M = 0.3


def _cap_reach(centre: np.ndarray, radius: float, axis: np.ndarray) -> float:
    """How far (in radii) the part of a sphere (or, in 2-D, a circle) that the camera at the origin
    sees reaches from its centre along the unit `axis`: 1 when the extreme point faces the camera,
    else the reach of the silhouette (the circle where the line of sight grazes)."""
    d = float(np.linalg.norm(centre))
    cos_axis = float(axis @ centre) / d
    if cos_axis <= -radius / d:
        return 1.0
    return -(radius / d) * cos_axis + math.sqrt(1 - (radius / d) ** 2) * math.sqrt(max(0.0, 1 - cos_axis**2))


def _box_side_width(centre: np.ndarray, w: float, l: float, yaw: float) -> float:
    """x span of the side faces of a yawed box whose outward normals point to the camera (origin)."""
    x_axis, z_axis = np.array([math.cos(yaw), 0.0, -math.sin(yaw)]), np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    xs = []
    for normal, half, along, half_along in ((x_axis, w / 2, z_axis, l / 2), (z_axis, l / 2, x_axis, w / 2)):
        for sign in (-1, 1):
            face = centre + sign * half * normal
            if sign * normal @ face < 0:
                xs += [(face + half_along * along)[0], (face - half_along * along)[0]]
    return float(np.ptp(xs))


def analytic_extent(obj: dict[str, Any], camera_height_m: float) -> tuple[float | None, float]:
    """(width, height) of the visible part of a shape in the level frame, in closed form.

    Side surfaces: a box shows the faces turned towards the camera; a sphere's and a cylinder's
    visible surface reaches the silhouette (where the line of sight grazes) on the far side. A top
    face seen from above may reach farther, but it is seen at a grazing angle and pixel centres miss
    its far corners; so where the top would change the width by over 1%, the width is None (not
    checkable) rather than a guess.
    """
    w, h, l = obj["size"]
    centre = np.asarray(obj["center_world"]) - np.array([0.0, camera_height_m, 0.0])
    top_visible = centre[1] + h / 2 < 0
    if obj["category"] == "box":
        yaw = math.radians(obj["yaw_deg"])
        width = _box_side_width(centre, w, l, yaw)
        x_axis, z_axis = np.array([math.cos(yaw), 0.0, -math.sin(yaw)]), np.array([math.sin(yaw), 0.0, math.cos(yaw)])
        top = float(np.ptp([(centre + sx * w / 2 * x_axis + sz * l / 2 * z_axis)[0] for sx in (-1, 1) for sz in (-1, 1)]))
        return (width if not top_visible or top <= 1.01 * width else None), h
    r = w / 2
    x_axis, y_axis = np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    if obj["category"] == "sphere":
        return (
            r * (_cap_reach(centre, r, x_axis) + _cap_reach(centre, r, -x_axis)),
            r * (_cap_reach(centre, r, y_axis) + _cap_reach(centre, r, -y_axis)),
        )
    ground = np.array([centre[0], centre[2]])
    width = r * (_cap_reach(ground, r, np.array([1.0, 0.0])) + _cap_reach(ground, r, np.array([-1.0, 0.0])))
    return (width if not top_visible or w <= 1.01 * width else None), h


def _unoccluded(obj: dict[str, Any], camera: Camera) -> bool:
    visible, amodal = obj["box_2d"], obj["box_2d_amodal"]
    inside = amodal[0] > 1 and amodal[1] > 1 and amodal[2] < camera.width - 1 and amodal[3] < camera.height - 1
    return inside and all(abs(a - b) <= 1.0 for a, b in zip(visible, amodal))


def _draw(rng: np.random.Generator, kinds: list[str], weights: dict[str, float]) -> str:
    """One kind, drawn with probability proportional to its weight."""
    p = np.array([weights[kind] for kind in kinds])
    return kinds[int(rng.choice(len(kinds), p=p / p.sum()))]


@register_builder("ssr_cot_scenes")
class SSRScenesBuilder(ScenesBuilder):
    """`questions_per_scene` records per rendered scene, their kinds drawn by `question_mix`; depth from
    `depth_source` (gt or a model)."""

    sample_kind = "ssr_cot"
    task_categories = ("visual-question-answering",)
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **{k: v for k, v in ScenesBuilder.params_schema["properties"].items() if k != "image_format"},
            **PARAMS_SCHEMA,
            "questions_per_scene": {"type": "integer", "minimum": 1, "maximum": 16, "default": 2},
            "question_mix": QUESTION_MIX_SCHEMA,
        },
    }

    def sample_overlay(self, record: Mapping[str, Any]) -> tuple[str, list[list[float]]]:
        return record.get("question", ""), []

    def parse_rationale(self, text: str) -> list[dict[str, Any]]:
        return rationale.parse(text)

    def describe_depth(self, spec: BuildSpec) -> str:
        return describe_depth_source(spec.params, "from the renderer (exact)")

    def statistics(self, counters: Mapping[str, int]) -> dict[str, Any]:
        rates = agreement_rates(counters)
        return {"agreement": rates} if rates else {}

    def fields(self, spec: BuildSpec) -> dict[str, str]:
        return {"image.png": "image", "depth.png": "depth", "json": "json"}

    def plan(self, spec: BuildSpec) -> list[Partition]:
        check_params(spec.params)
        kind, _ = parse_spec(spec.params["depth_source"])
        if kind == "stereo":
            raise ValueError(
                "params.depth_source: rendered scenes have one view; use 'gt' or 'model:<path>' (stereo needs a rectified pair)"
            )
        if not any(spec.params["question_mix"].values()):
            raise ValueError(f"params.question_mix: every weight is 0; give at least one of {', '.join(KINDS)} a positive weight")
        return super().plan(spec)

    def item_key(self, item: int, ctx: Context) -> str:
        return f"ssr-scene-{ctx.partition.split}-{item:07d}"

    def process(self, part: Partition, ctx: Context) -> Iterator[Sample]:
        """Scenes a chunk at a time (one depth-model batch per chunk); a scene that fails is one reject
        with its reason, and the others go on."""
        p = ctx.spec.params
        model = parse_spec(p["depth_source"])[0] == "model"
        source_id = depth_source_id(p)
        for chunk in chunks(part.items, p["batch_size"]):
            scenes = []
            for item in chunk:
                with ctx.sink.guard(key=self.item_key(item, ctx), source=f"procedural:{item}"):
                    scenes.append((item, *self.render_scene(item, ctx)))
            failed = len(chunk) - len(scenes)
            if failed:
                ctx.item_done(failed)  # scenes that did not render: already rejects
            predictions = predict_depth(p["depth_source"], [s[4].rgb for s in scenes], p) if model and scenes else [None] * len(scenes)
            for (item, camera, shapes, _, rendering), prediction in zip(scenes, predictions):
                depth = rendering.depth if prediction is None else prediction.depth
                key, source = self.item_key(item, ctx), f"procedural:{item}"
                samples: list[Sample] = []
                with ctx.sink.guard(key=key, source=source):
                    try:
                        samples = list(
                            self._samples(item, ctx, camera, shapes, rendering, depth, source_id, trim=0.0 if prediction is None else 0.01)
                        )
                    except FactError as exc:
                        ctx.reject(key=key, source=source, code=exc.code, reason=str(exc))
                yield from samples
                ctx.item_done()

    def _samples(
        self,
        item: int,
        ctx: Context,
        camera: Camera,
        shapes: list[Shape],
        rendering: Rendering,
        depth: np.ndarray,
        source_id: str,
        trim: float,
    ) -> Iterator[Sample]:
        key = self.item_key(item, ctx)
        objects = [self.annotate(shape, camera, rendering) for shape in shapes]
        names = Counter(f"{o['color']} {o['category']}" for o in objects)
        named = {f"{o['color']} {o['category']}": o for o in objects if names[f"{o['color']} {o['category']}"] == 1}
        regions = [Region(name, tuple(o["box_2d"]), rendering.mask == o["id"]) for name, o in named.items()]
        intrinsics = Intrinsics(camera.fx, camera.fy, camera.cx, camera.cy)
        measured = measure_stored(depth, intrinsics, "camera", regions, camera.pitch_deg, trim, ctx.spec.shards.png_level)
        exact = measure(rendering.depth, intrinsics, regions, pitch_deg=camera.pitch_deg)
        truth = self._truth(named, exact, camera)
        for kind, (agree, checked) in agreement(truth, measured.measurement, ctx.spec.params["tolerance"]).items():
            ctx.counters[f"agreement.{kind}.agree"] += agree
            ctx.counters[f"agreement.{kind}.checked"] += checked
        image = encode_image(rendering.rgb, "png", ctx.spec.shards.png_level)
        rng = ctx.rng(key, "questions")
        questions = self._questions(rng, objects, named, exact, truth, ctx.spec.params)
        if not questions:
            raise FactError(
                f"the scene shows {len(objects)} object(s) and none that a question can name alone, so it asks nothing", "no_question"
            )
        for index, question in enumerate(questions):
            sample = make_sample(
                f"{key}-q{index}",
                ctx,
                image,
                "png",
                f"scenes/{key}.png",
                measured,
                question,
                {"dataset": "scenes", "id": key, "format": "procedural"},
                source_id,
            )
            if sample is not None:
                yield sample

    @staticmethod
    def _truth(named: dict[str, dict[str, Any]], exact: Measurement, camera: Camera) -> list[dict[str, Any]]:
        """True claims about the scene that the measured facts are checked against."""
        truth = []
        for name, obj in named.items():
            if _unoccluded(obj, camera):
                width, height = analytic_extent(obj, camera.height_m)
                x0, y0, x1, y1 = obj["box_2d"]
                if width is not None and x1 - x0 >= MIN_SIZE_PIXELS:
                    truth.append({"fact": "width", "name": name, "value": width})
                if y1 - y0 >= MIN_SIZE_PIXELS:
                    truth.append({"fact": "height", "name": name, "value": height})
        for pair in exact.pairs:
            a, b = named[pair["a"]], named[pair["b"]]
            truth.append({"fact": "distance", "a": pair["a"], "b": pair["b"], "value": pair["distance_m"]})
            dx = a["center_world"][0] - b["center_world"][0]
            if abs(dx) > SIDE_MARGIN_M:
                truth.append({"fact": "side", "a": pair["a"], "b": pair["b"], "value": "left" if dx < 0 else "right"})
            oa, ob = exact.object(pair["a"]), exact.object(pair["b"])
            if abs(oa.nearest_m - ob.nearest_m) > ORDER_MARGIN_M:
                truth.append({"fact": "depth_order", "a": pair["a"], "b": pair["b"], "value": "closer" if pair["nearer"] else "farther"})
            if abs(oa.center_m[1] - ob.center_m[1]) > VERTICAL_MARGIN_M:
                truth.append({"fact": "vertical", "a": pair["a"], "b": pair["b"], "value": "above" if pair["above"] else "below"})
        return truth

    def _questions(
        self,
        rng: np.random.Generator,
        objects: list[dict[str, Any]],
        named: dict[str, dict[str, Any]],
        exact: Measurement,
        truth: list[dict[str, Any]],
        params: dict[str, Any],
    ) -> list[Question]:
        weights = {kind: float(params["question_mix"].get(kind, 0)) for kind in KINDS}
        questions: list[Question] = []
        for _ in range(4 * params["questions_per_scene"]):
            kinds = [kind for kind in KINDS if weights[kind] > 0]
            if len(questions) == params["questions_per_scene"] or not kinds:
                break
            kind = _draw(rng, kinds, weights)
            question = getattr(self, f"_ask_{kind}")(rng, objects, named, exact, truth)
            if question is None:
                weights[kind] = 0.0  # this scene has nothing of this kind to ask about
            elif all(question.text != q.text for q in questions):
                questions.append(question)
        return questions

    @staticmethod
    def _pick(rng: np.random.Generator, options: list[Any]) -> Any:
        return options[int(rng.integers(len(options)))] if options else None

    def _ask_existence(self, rng, objects, named, exact, truth) -> Question | None:
        if not named:
            return None  # alike objects only: neither a "yes" nor what was seen instead can be named
        if rng.random() < 0.5 or len(named) < len(objects):  # a "no" names everything seen instead
            name = self._pick(rng, sorted(named))
            return Question(f"Is there a {name} in the image?", "Yes", "existence", [name], [], sizes=False)
        present = {(o["color"], o["category"]) for o in objects}
        color, category = self._pick(rng, sorted({(c, k) for c in COLORS for k in CATEGORIES} - present))
        what = f"{color} {category}"
        return Question(f"Is there a {what} in the image?", "No", "existence", sorted(named), [], sizes=False, absent=what)

    def _ask_counting(self, rng, objects, named, exact, truth) -> Question | None:
        members = {category: [f"{o['color']} {category}" for o in objects if o["category"] == category] for category in CATEGORIES}
        # Every object counted is named in the rationale, so alike objects cannot be counted; a zero
        # count names everything seen instead, so it needs every object named (and at least one object).
        countable = [
            c for c, names in members.items() if all(n in named for n in names) and (names or (named and len(named) == len(objects)))
        ]
        category = self._pick(rng, countable)
        if category is None:
            return None
        names, text = sorted(members[category]), f"How many {plural(category)} are there in the image?"
        if not names:
            return Question(text, "0", "counting", sorted(named), [], sizes=False, absent=category)
        return Question(text, str(len(names)), "counting", names, [], sizes=False, counted=(len(names), category))

    def _claimed(self, rng, truth, fact) -> dict[str, Any] | None:
        return self._pick(rng, [c for c in truth if c["fact"] == fact])

    @staticmethod
    def _has(truth: list[dict[str, Any]], fact: str) -> bool:
        return any(c["fact"] == fact for c in truth)

    def _ask_position(self, rng, objects, named, exact, truth) -> Question | None:
        claim = self._claimed(rng, truth, self._pick(rng, [f for f in ("side", "side", "vertical") if self._has(truth, f)]))
        if claim is None:
            return None
        a, b = claim["a"], claim["b"]
        if claim["fact"] == "side":
            text = f"Is the {a} to the left or to the right of the {b}?"
        else:
            text = f"Is the {a} above or below the {b}?"
        return Question(text, claim["value"], "position", [a, b], [(a, b)], claim=claim, sizes=False, vertical=claim["fact"] == "vertical")

    def _ask_depth_order(self, rng, objects, named, exact, truth) -> Question | None:
        claim = self._claimed(rng, truth, "depth_order")
        if claim is None:
            return None
        if rng.random() < 0.5:  # pairs come nearest first: name them in either order, or the wording gives the answer away
            claim = {**claim, "a": claim["b"], "b": claim["a"], "value": "farther" if claim["value"] == "closer" else "closer"}
        a, b = claim["a"], claim["b"]
        closer = a if claim["value"] == "closer" else b
        return Question(
            f"Which is closer to the camera, the {a} or the {b}?",
            f"the {closer}",
            "depth_order",
            [a, b],
            [(a, b)],
            claim=claim,
            sizes=False,
        )

    def _ask_distance(self, rng, objects, named, exact, truth) -> Question | None:
        claim = self._claimed(rng, truth, "distance")
        if claim is None:
            return None
        a, b = claim["a"], claim["b"]
        return Question(
            f"How far apart are the {a} and the {b}?",
            f"{claim['value']:.2f} meters",
            "distance",
            [a, b],
            [(a, b)],
            claim=claim,
            sizes=False,
        )

    def _ask_size(self, rng, objects, named, exact, truth) -> Question | None:
        claim = self._claimed(rng, truth, self._pick(rng, [f for f in ("height", "width") if self._has(truth, f)]))
        if claim is None:
            return None
        word = "tall" if claim["fact"] == "height" else "wide"
        return Question(f"How {word} is the {claim['name']}?", f"{claim['value']:.2f} meters", "size", [claim["name"]], [], claim=claim)

    def _ask_attribute(self, rng, objects, named, exact, truth) -> Question | None:
        by_category = Counter(o["category"] for o in objects)
        by_color = Counter(o["color"] for o in objects)
        if rng.random() < 0.5:
            category = self._pick(rng, sorted(c for c, n in by_category.items() if n == 1))
            if category:
                obj = next(o for o in objects if o["category"] == category)
                return Question(
                    f"What color is the {category}?", obj["color"], "attribute", [f"{obj['color']} {category}"], [], sizes=False
                )
        color = self._pick(rng, sorted(c for c, n in by_color.items() if n == 1))
        if color is None:
            return None
        obj = next(o for o in objects if o["color"] == color)
        return Question(f"What shape is the {color} object?", obj["category"], "attribute", [f"{color} {obj['category']}"], [], sizes=False)
