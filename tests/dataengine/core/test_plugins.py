"""Families arrive through entry points, and each offers what it declares."""

import click

from dataengine.core.builder import available_builders, create_builder
from dataengine.core.plugins import Family, demo_steps, exporters, families, load_object
from dataengine.core.resources import data_dir


def test_the_shipped_families_are_installed():
    found = families()
    assert set(found) == {"scenes", "robustness", "ssr", "vqa"}
    assert all(isinstance(family, Family) for family in found.values())


def test_every_shipped_builder_comes_from_its_family():
    shipped = {name for name in available_builders() if create_builder(name).__module__.startswith("builders.")}
    assert shipped == {"scenes", "kitti_c", "nyu_c", "depth_c", "ssr_cot_scenes", "ssr_cot", "vqa_knowledge"}
    modules = {module for family in families().values() for module in family.builder_modules}
    assert {create_builder(name).__module__ for name in shipped} == modules


def test_commands_and_exporters_resolve():
    for family in families().values():
        for path in family.commands:
            assert isinstance(load_object(path), click.Command)
    assert set(exporters()) == {"kitti-c", "nyu-c", "ssr-cot"}
    assert all(callable(load_object(target)) for target in exporters().values())


def test_demo_steps_are_ordered_and_name_shipped_catalogs():
    steps = demo_steps()
    assert [s.catalog for s in steps] == ["demo", "demo-vqa", "demo-ssr", "demo-ssr-real"]
    shipped = {p.stem for p in data_dir("catalogs").glob("*.yaml")}
    assert all(step.catalog in shipped for step in steps)
    assert all(callable(load_object(step.sources)) for step in steps if step.sources)
