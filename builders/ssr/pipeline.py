"""The part of an SSR-CoT builder every source shares: running the depth source in batches, and
turning (image, depth, objects, question, answer) into a checked, encoded sample."""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from builders.ssr import rationale
from builders.ssr.facts import Measurement, Region, measure
from builders.ssr.gate import contradiction
from builders.ssr.rewrite import RewriteConfig, check_endpoint, lost_facts, rewrite
from dataengine.core.builder import Context, Sample
from dataengine.core.depth_png import decode_depth_png, encode_depth_png
from dataengine.core.png import DEFAULT_LEVEL as DEFAULT_PNG_LEVEL
from dataengine.depth.geometry import Intrinsics
from dataengine.depth.sources import DepthPrediction, load_monocular, parse_spec

PARAMS_SCHEMA: dict[str, Any] = {
    "depth_source": {"type": "string", "default": "gt", "description": "gt | stereo | model:<checkpoint folder or hub id>"},
    "device": {"type": ["string", "null"], "default": None, "description": "torch device for model sources (default: cuda when present)"},
    "batch_size": {"type": "integer", "minimum": 1, "default": 4},
    "tolerance": {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": 0.02,
        "description": "relative tolerance between an answer's number and the measured one",
    },
    "default_hfov_deg": {"type": "number", "exclusiveMinimum": 10, "exclusiveMaximum": 170, "default": 60.0},
    "rewrite": {
        "type": ["object", "null"],
        "default": None,
        "additionalProperties": False,
        "required": ["endpoint", "model"],
        "properties": {
            "endpoint": {"type": "string"},
            "model": {"type": "string"},
            "api_key_env": {"type": "string"},
            "timeout_s": {"type": "number"},
        },
    },
}


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_depth(spec: str, images: list[np.ndarray], params: dict[str, Any]) -> list[DepthPrediction]:
    """Depth of a batch of RGB images from a `model:` source (loaded once per worker process)."""
    return load_monocular(spec, device=params.get("device"), batch_size=params["batch_size"]).predict(images)


def check_params(params: dict[str, Any]) -> None:
    """Plan-time checks every SSR builder shares: the depth source spec and the rewrite endpoint."""
    parse_spec(params["depth_source"])
    if params.get("rewrite"):
        check_endpoint(params["rewrite"]["endpoint"])


def depth_source_id(params: dict[str, Any]) -> str:
    kind, _ = parse_spec(params["depth_source"])
    if kind == "model":
        return load_monocular(params["depth_source"], device=params.get("device"), batch_size=params["batch_size"]).id
    return "stereo-sgbm" if kind == "stereo" else "gt"


def describe_depth_source(params: dict[str, Any], truth: str) -> str:
    """The card's words for where an SSR release's depth comes from."""
    kind, argument = parse_spec(params["depth_source"])
    if kind == "model":
        return f"predicted by the depth model `{argument}`"
    return "computed from stereo pairs (OpenCV SGBM)" if kind == "stereo" else truth


@dataclass
class Question:
    text: str
    answer: str
    kind: str
    names: list[str]  # objects whose facts the rationale states
    pairs: list[tuple[str, str]]  # ordered pairs whose relations it states
    claim: dict[str, Any] | None = None  # what the answer asserts about the facts, checked by the gate
    sizes: bool = True
    vertical: bool = False
    lead: tuple[str, ...] = ()  # original reasoning that comes before the measured facts
    absent: str | None = None  # what a "no" / zero answer did not find; `names` are what was seen instead
    counted: tuple[int, str] | None = None  # (how many, of what noun) for a counting answer above zero


@dataclass
class Measured:
    """An image with its depth as stored (decoded back from the 16-bit PNG) and its measured facts."""

    depth_png: bytes
    clipped: int
    measurement: Measurement
    intrinsics: dict[str, Any]


def measure_stored(
    depth_m: np.ndarray,
    intrinsics: Intrinsics,
    intrinsics_source: str,
    regions: list[Region],
    pitch_deg: float,
    trim: float,
    png_level: int = DEFAULT_PNG_LEVEL,
) -> Measured:
    """Encode the depth, then measure on the decoded copy, so stored facts follow from stored depth."""
    depth_png, clipped = encode_depth_png(depth_m, png_level=png_level)
    measurement = measure(decode_depth_png(depth_png), intrinsics, regions, pitch_deg=pitch_deg, trim=trim)
    record = {
        "fx": intrinsics.fx,
        "fy": intrinsics.fy,
        "cx": intrinsics.cx,
        "cy": intrinsics.cy,
        "pitch_deg": pitch_deg,
        "source": intrinsics_source,
    }
    return Measured(depth_png, clipped, measurement, record)


def make_sample(
    key: str,
    ctx: Context,
    image: bytes,
    image_ext: str,
    image_path: str,
    measured: Measured,
    question: Question,
    source: dict[str, Any],
    depth_source: str,
) -> Sample | None:
    """The checked sample, or None after recording a reject (answer contradicts facts, unfaithful rewrite)."""
    params = ctx.spec.params
    problem = contradiction(question.claim, measured.measurement, params["tolerance"])
    if problem:
        ctx.reject(key=key, source=source.get("id", ""), code="answer_contradicts_facts", reason=problem)
        return None
    text = rationale_text(question, measured.measurement, ctx.rng(key, "wording"))
    rewrite_record = None
    if params.get("rewrite"):
        config = RewriteConfig(**params["rewrite"])
        try:
            rewritten = rewrite(text, config)
        except (OSError, ValueError, http.client.HTTPException) as exc:  # unreachable, redirected, not HTTP, or a malformed reply
            ctx.reject(
                key=key, source=source.get("id", ""), code="rewrite_failed", reason=f"rewrite endpoint failed: {type(exc).__name__}: {exc}"
            )
            return None
        lost = lost_facts(text, rewritten)
        if lost:
            ctx.reject(key=key, source=source.get("id", ""), code="rewrite_lost_facts", reason=lost)
            return None
        rewrite_record = {**config.record(), "template_rationale": text}
        text = rewritten
    ctx.counters["depth_clipped_pixels"] += measured.clipped
    ctx.counters[f"questions.{question.kind}"] += 1
    record = {
        "key": key,
        "split": ctx.partition.split,
        "source": source,
        "image_path": image_path,
        "question": question.text,
        "rationale": text,
        "answer": question.answer,
        "kind": question.kind,
        "depth": {"source": depth_source, "unit": "mm", "scale_m": 0.001, "invalid_value": 0, "clipped_pixels": measured.clipped},
        "intrinsics": measured.intrinsics,
        "facts": measured.measurement.as_facts(),
        "claim": stored_claim(question.claim),
        "rewrite": rewrite_record,
    }
    return {"__key__": key, f"image.{image_ext}": image, "depth.png": measured.depth_png, "json": record}


def rationale_text(question: Question, measurement: Measurement, rng: np.random.Generator) -> str:
    """The templated rationale: lead, what was found (or not), the measured facts, the answer."""
    finding = []
    if question.absent is not None:
        finding.append(rationale.absent_sentence(question.absent, question.names, rng))
    if question.counted is not None:
        finding.append(rationale.count_sentence(*question.counted, rng))
    facts = rationale.fact_sentences(measurement, question.names, question.pairs, rng, sizes=question.sizes, vertical=question.vertical)
    return rationale.compose([*question.lead, *finding], facts, question.answer, rng)


def stored_claim(claim: dict[str, Any] | None) -> dict[str, Any] | None:
    """A claim in the record's fixed shape (numbers as text with 4 decimals, absent names as null)."""
    if claim is None:
        return None
    value = claim["value"]
    return {
        "fact": claim["fact"],
        "name": claim.get("name"),
        "a": claim.get("a"),
        "b": claim.get("b"),
        "value": f"{value:.4f}" if isinstance(value, float) else str(value),
    }
