"""Builders: what a dataset family knows (plan and process), registered by name.

A builder plans cheap, deterministic partitions on the client and processes one partition on a
worker, yielding samples: `{"__key__": str, "json": dict, "<field>.<ext>": bytes, ...}`. It never
writes files, talks to Dask or catches its own per-item errors: the engine does.
"""

from __future__ import annotations

import difflib
import time
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataengine.core.catalog import BuildSpec, Partition
from dataengine.core.rejects import Reject, RejectSink
from dataengine.core.rng import sample_rng

Sample = dict[str, Any]

_REGISTRY: dict[str, type[Builder]] = {}


def register_builder(name: str) -> Callable[[type[Builder]], type[Builder]]:
    """Class decorator: make a builder available to catalogs as `builder: <name>`."""

    def decorate(cls: type[Builder]) -> type[Builder]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"builder '{name}' is already registered by {_REGISTRY[name].__module__}")
        if not hasattr(cls, "process_item") and cls.process is Builder.process:
            raise TypeError(f"builder '{name}' ({cls.__name__}) must define process_item(item, ctx) or override process(part, ctx)")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _discover() -> None:
    """Import the builders of every installed family (entry points)."""
    from dataengine.core.plugins import import_builders

    import_builders()


def available_builders() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def create_builder(name: str) -> Builder:
    """Instantiate a registered builder; an unknown name suggests the closest one."""
    _discover()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise KeyError(f"unknown builder '{name}'{hint}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]()


def describe_builder(name: str) -> str:
    """One line about a registered builder: its `description`, else the first paragraph of its own
    docstring, else its family's description."""
    cls = type(create_builder(name))
    if cls.description:
        return cls.description
    doc = " ".join((cls.__dict__.get("__doc__") or "").strip().split("\n\n")[0].split())
    if doc:
        return doc.rstrip(".")
    from dataengine.core.plugins import families

    return next((family.description for family in families().values() if cls.__module__ in family.builder_modules), "")


@dataclass
class Context:
    """What `process` gets besides its partition: seeded randomness, a reject sink, counters, a cache."""

    spec: BuildSpec
    partition: Partition
    sink: RejectSink = field(default_factory=RejectSink)
    counters: Counter = field(default_factory=Counter)
    timings: defaultdict = field(default_factory=lambda: defaultdict(float))
    resources: dict[str, Any] = field(default_factory=dict)
    items_done: int = 0
    on_progress: Callable[[], None] | None = None  # set by the engine: shows the build's progress

    def item_done(self, count: int = 1) -> None:
        """Count planned items finished (written, rejected or yielding nothing), for the progress bar.
        `Builder.process` calls it per item; a builder that overrides `process` calls it itself."""
        self.items_done += count
        if self.on_progress is not None:
            self.on_progress()

    def rng(self, key: str, purpose: str) -> np.random.Generator:
        """The generator for one purpose of one sample, seeded by (release seed, key, purpose)."""
        return sample_rng(self.spec.seed, key, purpose)

    def reject(self, *, key: str, source: str, code: str, reason: str) -> None:
        """Record a sample that will not be written, with a short code and a human-readable reason."""
        self.sink.add(key=key, source=source, code=code, reason=reason)

    @property
    def rejects(self) -> list[Reject]:
        return self.sink.rejects


class Builder(ABC):
    """Base class: declare `sample_kind`, the parameter schemas, and implement plan/process_item."""

    name: str = ""
    description: str = ""  # one line for `dataengine builders` (default: the class docstring's first paragraph)
    sample_kind: str = ""
    required_sources: tuple[str, ...] = ()
    task_categories: tuple[str, ...] = ()  # Hugging Face Hub task categories for the card
    depth_protocol: str = "metric"  # how depth is evaluated (dataengine.metrics.depth protocols): metric, kitti, nyu
    params_schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    split_schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}

    @abstractmethod
    def fields(self, spec: BuildSpec) -> dict[str, str]:
        """Member name -> kind, identical for every sample of a release built from `spec`."""

    def output_splits(self, spec: BuildSpec) -> list[str]:
        """The splits a release holds, in order. A split may be `<config>/<split>`: then each
        config becomes a Hugging Face config (e.g. `fog/severity_3`)."""
        return list(spec.splits)

    @abstractmethod
    def plan(self, spec: BuildSpec) -> list[Partition]:
        """Deterministic partitions of every split; cheap (no pixels)."""

    def planning_rejects(self, spec: BuildSpec) -> list[Reject]:
        """Records refused while planning (malformed annotations, duplicates), for rejects.jsonl."""
        return []

    def summary(self, spec: BuildSpec) -> dict[str, Any]:
        """Dataset statistics for stats.json and the card (e.g. per-category counts)."""
        return {}

    def statistics(self, counters: Mapping[str, int]) -> dict[str, Any]:
        """Extra stats.json sections computed from the build's summed counters (e.g. agreement rates)."""
        return {}

    def describe_depth(self, spec: BuildSpec) -> str:
        """Where the depth members come from, for the card ("" when the release holds no depth)."""
        return ""

    def card_sections(self, manifest: Mapping[str, Any]) -> list[str]:
        """Markdown lines the family adds to the card's "How it was built" list."""
        return []

    def sample_overlay(self, record: Mapping[str, Any]) -> tuple[str, list[list[float]]]:
        """What the report draws on a sample's image: a caption and pixel boxes [x0, y0, x1, y1]."""
        return "", []

    def parse_rationale(self, text: str) -> list[dict[str, Any]] | None:
        """The facts a rationale of this family states (one dict per recognised sentence), for the
        reference trainer to check generated rationales against a record's facts; None: not readable."""
        return None

    def report_figures(self, release: Any, out: Any) -> list[tuple[str, str | None]]:
        """(title, file name in `out`) of the family's own report figures, given the opened Release."""
        return []

    def item_key(self, item: Any, ctx: Context) -> str:
        """The sample key an item will produce; used to name rejects when the item fails."""
        return f"{ctx.partition.id}:{item}"

    def item_source(self, item: Any, ctx: Context) -> str:
        """Where an item comes from (a path, a record id), for rejects."""
        return str(item)

    # A builder defines `process_item(self, item, ctx) -> Iterable[Sample]` (the samples of one planned
    # item), or overrides `process` when it works in batches (a depth model on a GPU);
    # `register_builder` refuses a class that does neither.

    def process(self, part: Partition, ctx: Context) -> Iterator[Sample]:
        """Process items one at a time; an item that raises becomes a reject and the rest go on."""
        for item in part.items:
            started = time.perf_counter()
            samples: list[Sample] = []
            with ctx.sink.guard(key=self.item_key(item, ctx), source=self.item_source(item, ctx)):
                samples = list(self.process_item(item, ctx))
            ctx.timings["process"] += time.perf_counter() - started
            yield from samples
            ctx.item_done()
