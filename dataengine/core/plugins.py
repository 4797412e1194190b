"""Families: plugins that bring builders, command-line commands, export layouts and demo steps.

A family is found through the `dataengine.families` entry point group: each entry names a `Family`
object. Everything a family offers is named by import path ("module:attribute") so that listing the
families stays cheap: nothing heavy is imported until it is used. Single builders without a family
can still register through the `dataengine.builders` entry point group.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

import click

FAMILY_GROUP = "dataengine.families"
BUILDER_GROUP = "dataengine.builders"


class CommandError(click.ClickException):
    """A command cannot go on; printed as one `error: ...` line with the given exit code."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.exit_code = code

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", fg="red", err=True)


@dataclass(frozen=True)
class DemoStep:
    """One release of `dataengine demo`: a shipped catalog built into `<demo out><suffix>`.

    `sources` ("module:function") writes the catalog's offline sources into
    `<demo out>-sources/<sources_dir>` first, and `env` tells the catalog where they are.
    `hints` are printed after the demo, with `{release}` and `{out}` filled in.
    """

    order: int
    catalog: str
    suffix: str = ""
    sources: str = ""
    sources_dir: str = ""
    env: str = ""
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """What a dataset family adds to dataengine."""

    name: str
    description: str
    builder_modules: tuple[str, ...]  # importing them registers the family's builders
    commands: tuple[str, ...] = ()  # "module:attribute" of click commands
    exporters: Mapping[str, str] = field(default_factory=dict)  # layout -> "module:function(release, out, **options) -> int"
    demo: tuple[DemoStep, ...] = ()


def load_object(path: str) -> Any:
    """The object at "package.module:attribute"."""
    module, _, attribute = path.partition(":")
    target = importlib.import_module(module)
    return getattr(target, attribute) if attribute else target


@lru_cache(maxsize=1)
def families() -> dict[str, Family]:
    """Every installed family, by name (entry point order)."""
    found: dict[str, Family] = {}
    for entry in entry_points(group=FAMILY_GROUP):
        family = entry.load()
        if not isinstance(family, Family):
            raise TypeError(f"entry point {entry.name!r} of {FAMILY_GROUP} must name a dataengine Family, got {type(family).__name__}")
        found[family.name] = family
    return found


@lru_cache(maxsize=1)
def import_builders() -> None:
    """Import every family's builder modules and the single builders of `dataengine.builders`."""
    for family in families().values():
        for module in family.builder_modules:
            importlib.import_module(module)
    for entry in entry_points(group=BUILDER_GROUP):
        entry.load()


def exporters() -> dict[str, str]:
    """Export layout -> "module:function", over every family."""
    return {layout: target for family in families().values() for layout, target in family.exporters.items()}


def demo_steps() -> list[DemoStep]:
    return sorted((step for family in families().values() for step in family.demo), key=lambda step: step.order)
