"""The probes section of validation.json (`dataengine.validate.measures`) as rows for the card and the report."""

from __future__ import annotations

from typing import Any

TITLES = {
    "criticality": "Criticality at initialisation (PDLT)",
    "sparsity": "Activation sparsity, PPL-p% (Sparsing Law)",
    "minicache": "KV-cache merging across depth (MiniCache)",
    "mod": "Mixture-of-depths over vision tokens, PRD (p-MoD)",
}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return str(value)


def probe_rows(probes: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(probe title, measure, value) rows: scalars as they are, per-layer lists joined, tables summarised."""
    rows: list[tuple[str, str, str]] = []
    for name, section in probes.items():
        title = TITLES.get(name, name)
        for key, value in section.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):  # per-layer tables
                for column in [c for c in value[0] if c != "layer"]:
                    rows.append((title, f"{key} {column} per layer", _value([row.get(column) for row in value])))
            else:
                rows.append((title, key, _value(value)))
    return rows
