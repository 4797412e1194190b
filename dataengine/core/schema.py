"""Sample schemas: one JSON Schema file per sample kind in `schemas/`.

The schema validates a *sample view*: `{"__key__": str, "members": [sorted member names], "json":
record}`. Its `x-members` map gives the kind of every member it allows (see `dataengine.core.fields`).
The same file drives validation before writing, `verify`, decoding and the `datasets` features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema

from dataengine.core.fields import field_kind
from dataengine.core.resources import data_dir


class SchemaError(ValueError):
    """A sample does not match its schema."""


class SampleSchema:
    """A loaded sample schema with a compiled validator."""

    def __init__(self, document: dict[str, Any]):
        jsonschema.Draft202012Validator.check_schema(document)
        self.document = document
        self.name: str = document.get("title", "sample")
        # member name -> the kinds it may have (a string, or a list of alternatives)
        self.members: dict[str, list[str]] = {
            name: [kinds] if isinstance(kinds, str) else list(kinds) for name, kinds in document.get("x-members", {}).items()
        }
        for kinds in self.members.values():
            for kind in kinds:
                field_kind(kind)
        self._validator = jsonschema.Draft202012Validator(document)

    @classmethod
    def load(cls, name_or_path: str | Path) -> SampleSchema:
        path = Path(name_or_path)
        if not path.suffix:
            path = data_dir("schemas") / f"{name_or_path}.json"
        if not path.exists():
            known = sorted(p.stem for p in data_dir("schemas").glob("*.json"))
            raise FileNotFoundError(f"no sample schema '{name_or_path}'; known: {', '.join(known)}")
        return cls(json.loads(path.read_text()))

    def check_fields(self, fields: Mapping[str, str]) -> None:
        """A builder's declared members and kinds must be ones the schema allows."""
        for name, kind in fields.items():
            if name not in self.members or kind not in self.members[name]:
                allowed = ", ".join(f"{m} ({'|'.join(k)})" for m, k in self.members.items())
                raise SchemaError(f"member '{name}' of kind '{kind}' is not allowed by schema '{self.name}'; allowed: {allowed}")

    def check(self, key: str, members: Mapping[str, Any], record: Any) -> None:
        """Raise SchemaError naming every problem of one sample."""
        unknown = sorted(set(members) - set(self.members))
        problems = [f"member '{m}' is not allowed by schema '{self.name}'" for m in unknown]
        view = {"__key__": key, "members": sorted(members), "json": record}
        for error in sorted(self._validator.iter_errors(view), key=lambda e: list(e.absolute_path)):
            where = ".".join(str(part) for part in error.absolute_path) or "<sample>"
            problems.append(f"{where}: {error.message}")
        if problems:
            raise SchemaError("; ".join(problems))

    @cached_property
    def record_schema(self) -> dict[str, Any]:
        return self.document.get("properties", {}).get("json", {})

    def hf_features(self, members: Mapping[str, str]) -> Any:
        """`datasets.Features` for a release whose samples have exactly `members` (name -> kind)."""
        import datasets

        features: dict[str, Any] = {}
        for name in sorted(members):
            kind = members[name]
            features[name] = (
                hf_feature_from_json_schema(self.record_schema, self.document.get("$defs", {}))
                if kind == "json"
                else field_kind(kind).hf_feature()
            )
        features["__key__"] = datasets.Value("string")
        features["__url__"] = datasets.Value("string")
        return datasets.Features(features)


_SCALARS = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}


def hf_feature_from_json_schema(node: dict[str, Any], defs: Mapping[str, Any]) -> Any:
    """Translate a JSON Schema node into the `datasets` feature type that holds its values."""
    import datasets

    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    types = node.get("type")
    if isinstance(types, list):
        non_null = [t for t in types if t != "null"]
        if len(non_null) != 1:
            raise ValueError(f"cannot map JSON Schema type {types} to one datasets feature")
        types = non_null[0]
    if types == "object":
        properties = node.get("properties", {})
        return {name: hf_feature_from_json_schema(sub, defs) for name, sub in properties.items()}
    if types == "array":
        item = hf_feature_from_json_schema(node.get("items", {"type": "string"}), defs)
        length = node.get("minItems") if node.get("minItems") == node.get("maxItems") else None
        return datasets.List(item, length=length if length is not None else -1)
    if types in _SCALARS:
        return datasets.Value(_SCALARS[types])
    if "enum" in node and all(isinstance(v, str) for v in node["enum"]):
        return datasets.Value("string")
    raise ValueError(f"JSON Schema node {node} has no datasets feature mapping; give it a 'type'")
