"""The validation settings: the catalog's `validate:` block, then command-line overrides.

```yaml
validate:
  trainer: depth                 # default: chosen from what the release holds
  recipe: {epochs: 12, backbone: resnet18, ...}   # the trainer's own settings (its params_schema)
  gate: {learnability_margin: 0.1, learnability_gain: 0.0, reference_margin: 0.0, regression: {abs_rel: 0.05},
         limits: {reference_rationale_facts: 0.9}}
```
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dataengine.core.catalog import CatalogError, apply_override, fill_defaults, validate_against

GATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "learnability_margin": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.1,
            "description": "the model's primary error must be at most (1 - margin) x the prior baseline's",
        },
        "learnability_gain": {
            "type": "number",
            "minimum": 0,
            "default": 0.0,
            "description": "and by at least this much in absolute terms (a score in [0, 1]: a small prior cannot be beaten by noise)",
        },
        "reference_margin": {
            "type": "number",
            "minimum": 0,
            "maximum": 1,
            "default": 0.0,
            "description": "on --reference: the model must beat that release's prior baseline by this margin",
        },
        "regression": {
            "type": "object",
            "additionalProperties": {"type": "number", "minimum": 0},
            "default": {"abs_rel": 0.05, "a1": 0.05, "accuracy": 0.05},
            "description": "per metric, the relative worsening allowed against --against's validation.json",
        },
        "limits": {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "default": {"reference_rationale_facts": 0.9},
            "description": "per metric, the worst value allowed (a minimum; a maximum where lower is better); absent metrics are skipped",
        },
    },
}
BLOCK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "trainer": {"type": ["string", "null"], "default": None},
        "recipe": {"type": "object", "default": {}},
        "gate": GATE_SCHEMA,
    },
}


@dataclass(frozen=True)
class ValidateConfig:
    trainer: str | None
    recipe: dict[str, Any]
    gate: dict[str, Any]


def resolve_config(
    catalog_block: Mapping[str, Any] | None,
    overrides: Iterable[str],
    recipe_schema: Mapping[str, Any] | None = None,
    trainer: str | None = None,
    gate_defaults: Mapping[str, Any] | None = None,
) -> ValidateConfig:
    """The catalog's block with `validate.<key>=<value>` overrides applied, validated, defaults filled.

    Without `recipe_schema` the trainer is not known yet: only the block's shape is checked.
    `gate_defaults` (the trainer's) fill gate settings the catalog leaves out.
    """
    document = {"validate": copy.deepcopy(dict(catalog_block or {}))}
    if gate_defaults:
        document["validate"]["gate"] = {**copy.deepcopy(dict(gate_defaults)), **dict(document["validate"].get("gate") or {})}
    for assignment in overrides:
        if not assignment.split("=", 1)[0].strip().startswith("validate."):
            raise CatalogError(f"--set '{assignment}': validate settings start with validate., e.g. --set validate.recipe.epochs=4")
        apply_override(document, assignment)
    block = fill_defaults(BLOCK_SCHEMA, document["validate"])
    block["gate"] = fill_defaults(GATE_SCHEMA, block.get("gate") or {})
    validate_against(BLOCK_SCHEMA, block, "validate", "validate settings")
    if trainer is not None:
        block["trainer"] = trainer
    recipe = block["recipe"]
    if recipe_schema is not None:
        recipe = fill_defaults(recipe_schema, recipe)
        validate_against(recipe_schema, recipe, "validate.recipe", "validate settings")
    return ValidateConfig(block["trainer"], recipe, block["gate"])
