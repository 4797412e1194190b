"""Trainers, registered by name and chosen by what a release holds: a trainer made for the release's
sample kind first (`ssr_cot`, `vqa` -> `spatial`), else one that accepts its members (image + depth -> `depth`).

Like builders, user trainers register with `@register_trainer` in a module named by the
`dataengine.trainers` entry point group.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from dataengine.release.reader import Manifest

TRAINER_GROUP = "dataengine.trainers"
_TRAINERS: dict[str, type[Trainer]] = {}


class Trainer(ABC):
    """A reference recipe: `accepts` a release's manifest, `run`s and returns the validation result."""

    name: str = ""
    params_schema: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": False}
    primary: str = ""  # the metric the learnability and truth checks compare
    lower_is_better: dict[str, bool] = {}  # per metric, its direction (regression checks)
    sample_kinds: tuple[str, ...] = ()  # the sample kinds it is made for: chosen before others that merely accept them
    gate_defaults: dict[str, Any] = {}  # gate settings of its own, under the catalog's `validate.gate`

    @classmethod
    @abstractmethod
    def accepts(cls, manifest: Manifest) -> bool:
        """Whether this trainer can learn from a release with this manifest."""

    @abstractmethod
    def run(self, job: Any) -> dict[str, Any]:
        """Train and evaluate; returns metrics, baselines and diagnostics for validation.json."""


def register_trainer(name: str) -> Callable[[type[Trainer]], type[Trainer]]:
    def decorate(cls: type[Trainer]) -> type[Trainer]:
        if name in _TRAINERS and _TRAINERS[name] is not cls:
            raise ValueError(f"trainer '{name}' is already registered by {_TRAINERS[name].__module__}")
        cls.name = name
        _TRAINERS[name] = cls
        return cls

    return decorate


@lru_cache(maxsize=1)
def _discover() -> None:
    import dataengine.validate.depth
    import dataengine.validate.spatial  # noqa: F401 - registers the shipped trainers

    for entry in entry_points(group=TRAINER_GROUP):
        entry.load()


def available_trainers() -> list[str]:
    _discover()
    return sorted(_TRAINERS)


def trainer_class(name: str | None, manifest: Manifest) -> type[Trainer]:
    """The named trainer, or the one that accepts the release (a shipped one before user trainers)."""
    _discover()
    if name is not None:
        if name not in _TRAINERS:
            close = difflib.get_close_matches(name, list(_TRAINERS), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise KeyError(f"unknown trainer '{name}'{hint}; trainers: {', '.join(sorted(_TRAINERS))}")
        if not _TRAINERS[name].accepts(manifest):
            raise ValueError(f"trainer '{name}' cannot learn from a '{manifest.sample_kind}' release (members {sorted(manifest.fields)})")
        return _TRAINERS[name]
    accepting = sorted(
        (cls for cls in _TRAINERS.values() if cls.accepts(manifest)),
        key=lambda cls: (manifest.sample_kind not in cls.sample_kinds, not cls.__module__.startswith("dataengine."), cls.name),
    )
    if accepting:  # one made for the sample kind, then the shipped reference trainer; others by --trainer NAME
        return accepting[0]
    raise ValueError(
        f"no trainer learns from a '{manifest.sample_kind}' release (members {sorted(manifest.fields)}); "
        f"trainers: {', '.join(sorted(_TRAINERS))}"
    )
