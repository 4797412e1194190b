"""Catalogs: YAML files that say what a release is; validated into a `BuildSpec` before any work."""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dataengine.core.fields import encode_json
from dataengine.core.png import DEFAULT_LEVEL as DEFAULT_PNG_LEVEL


class CatalogError(ValueError):
    """The catalog (or an override of it) is wrong; the message names the key and how to fix it."""


_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}

CATALOG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "version", "builder", "seed", "splits"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"},
        "version": {"type": "string", "minLength": 1},
        "builder": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "license": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0},
        "params": {"type": "object"},
        "sources": {"type": "object", "additionalProperties": {"type": "string"}},
        "splits": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z][a-z0-9_]*$"},
            "additionalProperties": {"type": "object"},
        },
        "validate": {"type": "object", "description": "the reference trainer's recipe and gate (dataengine validate)"},
        "shards": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "max_samples": {"type": "integer", "minimum": 1},
                "max_bytes": {"type": ["integer", "string"]},
                "png_level": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 9,
                    "description": "deflate level of the PNGs written (0 none .. 9 smallest); see benchmarks/kitti_c_build.py --png-levels",
                },
            },
        },
    },
}

DEFAULT_SHARDS = {"max_samples": 1000, "max_bytes": "1GB", "png_level": DEFAULT_PNG_LEVEL}
# A catalog is small: more values than this (after YAML aliases are expanded) or deeper nesting is a
# mistake or an alias bomb, refused before validation (which would repr the whole instance).
MAX_CATALOG_VALUES = 100_000
MAX_CATALOG_DEPTH = 64


@dataclass(frozen=True)
class ShardLimits:
    max_samples: int
    max_bytes: int
    png_level: int = DEFAULT_PNG_LEVEL


@dataclass(frozen=True)
class Partition:
    """A deterministic unit of work: some planned items of one split, written to their own shard(s)."""

    split: str
    index: int
    items: tuple[Any, ...]

    @property
    def id(self) -> str:
        return f"{self.split.replace('/', '__')}-{self.index:06d}"


@dataclass(frozen=True)
class BuildSpec:
    """A validated, fully resolved catalog plus the command-line choices that shape the build."""

    name: str
    version: str
    builder: str
    seed: int
    description: str
    license: str
    params: dict[str, Any]
    sources: dict[str, Path]
    splits: dict[str, dict[str, Any]]
    shards: ShardLimits
    resolved: dict[str, Any]
    limit: int | None = None
    overrides: tuple[str, ...] = ()
    path: str = ""
    sha256: str = field(default="")

    def partition(self, split: str, items: Sequence[Any]) -> list[Partition]:
        """Cut one split's ordered items into partitions of at most `shards.max_samples` items."""
        size = self.shards.max_samples
        if self.limit is not None:  # --limit keeps each split's first items: never plan past them (num_samples may be huge)
            items = items[: self.limit]
        return [Partition(split, i, tuple(items[start : start + size])) for i, start in enumerate(range(0, len(items), size))]


def parse_size(value: int | str, where: str = "shards.max_bytes") -> int:
    """`1000000`, `"500MB"`, `"1 GiB"` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?I?B)?\s*", str(value).upper())
        if not match:
            raise CatalogError(f"{where}: '{value}' is not a size; write bytes or e.g. '500MB', '2GB', '1GiB'")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"])
    if size < 1024:
        raise CatalogError(f"{where}: {size} bytes is too small for a shard; use at least 1KB")
    return size


def apply_override(document: dict[str, Any], assignment: str) -> None:
    """Apply one `dotted.key=value` override in place; the value is parsed as YAML (`640` -> int)."""
    if "=" not in assignment:
        raise CatalogError(f"--set '{assignment}': expected dotted.key=value, e.g. --set params.width=640")
    dotted, raw = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise CatalogError(f"--set '{assignment}': '{dotted}' is not a dotted key like params.width")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise CatalogError(f"--set '{assignment}': value is not valid YAML ({exc})") from None
    except RecursionError:
        raise CatalogError(f"--set '{assignment}': value nests too deeply to read; give a flat value") from None
    node = document
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            here = ".".join(parts[: depth + 1])
            raise CatalogError(f"--set '{assignment}': '{here}' holds {type(child).__name__}, not a mapping")
        node = child
    node[parts[-1]] = value


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: str, where: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}`; an unset variable without default is an error."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise CatalogError(f"{where}: environment variable ${{{name}}} is not set; export it or write ${{{name}:-default}}")

    return _ENV.sub(substitute, value)


def error_paths(error: jsonschema.ValidationError, prefix: str = "") -> list[str]:
    """The dotted keys a validation error is about (each unknown key of an additionalProperties error)."""
    path = ".".join(([prefix] if prefix else []) + [str(part) for part in error.absolute_path])
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        return [".".join(filter(None, [path, str(key)])) for key in error.instance if key not in allowed]
    return [path]


def describe_error(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """A validation error as `key.path: what is wrong`, suggesting the closest key for typos."""
    path = ".".join(([prefix] if prefix else []) + [str(part) for part in error.absolute_path])
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in allowed]
        notes = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            notes.append(f"{'.'.join(filter(None, [path, key]))}: unknown key{hint}; allowed here: {', '.join(allowed)}")
        return "; ".join(notes)
    return f"{path or '<top level>'}: {error.message}"


def blamed_override(path: str, overrides: Sequence[str]) -> str | None:
    """The `--set` assignment that a problem at the dotted key `path` comes from, if any (the last one
    whose key is the path, or lies above or below it)."""
    for assignment in reversed(overrides):
        key = assignment.split("=", 1)[0].strip()
        if path and (key == path or key.startswith(f"{path}.") or path.startswith(f"{key}.")):
            return assignment
    return None


def raise_problems(problems: Sequence[tuple[str, str]], source: str, overrides: Sequence[str] = ()) -> None:
    """One CatalogError for (dotted key, message) problems: those a `--set` caused are reported as
    `--set` errors, the rest as errors of the catalog file."""
    if not problems:
        return
    by_override = [(blamed_override(path, overrides), message) for path, message in problems]
    lines = [f"--set '{assignment}': {message}" for assignment, message in by_override if assignment]
    in_file = [message for assignment, message in by_override if not assignment]
    if in_file:
        lines.append(f"{source}: invalid catalog\n  " + "\n  ".join(in_file))
    raise CatalogError("\n".join(lines))


def validate_against(schema: Mapping[str, Any], instance: Any, prefix: str, source: str, overrides: Sequence[str] = ()) -> None:
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    problems = []
    for error in errors:
        paths = error_paths(error, prefix)
        problems.append((paths[0] if paths else "", describe_error(error, prefix)))
    raise_problems(problems, source, overrides)


def check_size(document: Any, source: str) -> None:
    """Refuse a document with more than MAX_CATALOG_VALUES values once aliases are expanded, nesting
    deeper than MAX_CATALOG_DEPTH, or a value that contains itself; counts each shared (aliased)
    value once, so an alias bomb is refused without being expanded."""
    sizes: dict[int, int] = {}
    open_ids: set[int] = set()

    def size(value: Any, depth: int) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        if id(value) in sizes:
            return sizes[id(value)]
        if id(value) in open_ids:
            raise CatalogError(f"{source}: a YAML alias refers to a value that contains it; write the value out instead")
        if depth > MAX_CATALOG_DEPTH:
            raise CatalogError(f"{source}: values nest deeper than {MAX_CATALOG_DEPTH} levels; a catalog is flat YAML, simplify it")
        open_ids.add(id(value))
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_CATALOG_VALUES:
                raise CatalogError(
                    f"{source}: more than {MAX_CATALOG_VALUES} values once YAML aliases are expanded (an alias bomb?); "
                    "write a smaller catalog without nested aliases"
                )
        open_ids.discard(id(value))
        sizes[id(value)] = total
        return total

    size(document, 0)


def fill_defaults(schema: Mapping[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level `default`s of an object schema (recursing into nested objects that exist)."""
    filled = copy.deepcopy(values)
    for name, sub in schema.get("properties", {}).items():
        if name not in filled and "default" in sub:
            filled[name] = copy.deepcopy(sub["default"])
        elif isinstance(filled.get(name), dict) and sub.get("type") == "object":
            filled[name] = fill_defaults(sub, filled[name])
    return filled


def load_catalog(path: str | Path, overrides: Iterable[str] = (), limit: int | None = None) -> BuildSpec:
    """Read, override, expand and validate a catalog; every problem is reported before any work."""
    from dataengine.core.builder import create_builder

    path = Path(path)
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{source}: catalog file not found") from None
    except IsADirectoryError:
        raise CatalogError(f"{source}: is a folder; give a catalog .yaml file") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(
            f"{source}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}: {exc.reason}); save the catalog as UTF-8"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise CatalogError(f"{source}: values nest too deeply to read; a catalog is flat YAML, simplify it") from None
    if not isinstance(document, dict):
        raise CatalogError(f"{source}: a catalog is a YAML mapping with keys name, version, builder, seed, splits")
    check_size(document, source)
    overrides = tuple(overrides)
    for assignment in overrides:
        apply_override(document, assignment)
    if overrides:
        check_size(document, f"{source} with --set")
    if limit is not None and limit < 1:
        raise CatalogError(f"--limit {limit}: give a positive number of samples per split")

    validate_against(CATALOG_SCHEMA, document, "", source, overrides)
    try:
        builder = create_builder(document["builder"])
    except KeyError as exc:
        raise_problems([("builder", f"builder: {exc.args[0]}")], source, overrides)

    params = fill_defaults(builder.params_schema, document.get("params") or {})
    validate_against(builder.params_schema, params, "params", source, overrides)
    splits = {}
    for split, values in document["splits"].items():
        splits[split] = fill_defaults(builder.split_schema, values)
        validate_against(builder.split_schema, splits[split], f"splits.{split}", source, overrides)

    sources: dict[str, Path] = {}
    for name, raw in (document.get("sources") or {}).items():
        try:
            expanded = Path(expand_env(raw, f"sources.{name}")).expanduser()
        except CatalogError as exc:
            raise_problems([(f"sources.{name}", str(exc))], source, overrides)
        if not expanded.is_absolute():
            expanded = (path.parent / expanded).resolve()
        if not expanded.exists():
            raise_problems([(f"sources.{name}", f"sources.{name}: path '{expanded}' does not exist (from '{raw}')")], source, overrides)
        sources[name] = expanded
    missing = [name for name in builder.required_sources if name not in sources]
    if missing:
        raise CatalogError(f"{source}: sources: builder '{builder.name}' needs {', '.join('sources.' + m for m in missing)}")

    shard_values = {**DEFAULT_SHARDS, **(document.get("shards") or {})}
    shards = ShardLimits(shard_values["max_samples"], parse_size(shard_values["max_bytes"]), shard_values["png_level"])
    resolved = {
        "name": document["name"],
        "version": str(document["version"]),
        "builder": builder.name,
        "description": document.get("description", ""),
        "license": document.get("license", "other"),
        "seed": document["seed"],
        "params": params,
        "sources": {name: str(p) for name, p in sources.items()},
        "splits": splits,
        "shards": {"max_samples": shards.max_samples, "max_bytes": shards.max_bytes, "png_level": shards.png_level},
        **({"validate": document["validate"]} if "validate" in document else {}),
    }
    digest = hashlib.sha256(encode_json({"catalog": resolved, "limit": limit})).hexdigest()
    return BuildSpec(
        name=resolved["name"],
        version=resolved["version"],
        builder=builder.name,
        seed=resolved["seed"],
        description=resolved["description"],
        license=resolved["license"],
        params=params,
        sources=sources,
        splits=splits,
        shards=shards,
        resolved=resolved,
        limit=limit,
        overrides=overrides,
        path=source,
        sha256=digest,
    )
