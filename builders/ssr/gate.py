"""The quality gate: does an answer agree with the sample's own measured facts, and (where the
source has exact geometry) do the measured facts agree with the truth?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builders.ssr.facts import Measurement

# A claim is what a question's answer asserts about the facts, e.g.
# {"fact": "side", "a": "red box", "b": "blue sphere", "value": "left"} or
# {"fact": "height", "name": "red box", "value": 1.2}.
NUMERIC = ("height", "width", "distance")


def measured_value(claim: dict[str, Any], measurement: Measurement) -> Any:
    """The measured counterpart of a claim."""
    fact = claim["fact"]
    if fact in ("height", "width"):
        o = measurement.object(claim["name"])
        return o.height_m if fact == "height" else o.width_m
    pair = measurement.pair(claim["a"], claim["b"])
    if fact == "distance":
        return pair["distance_m"]
    if fact == "side":
        return "left" if pair["left_of"] else "right"
    if fact == "vertical":
        return "above" if pair["above"] else "below"
    if fact == "depth_order":
        return "closer" if pair["nearer"] else "farther"
    raise ValueError(f"unknown fact kind {fact!r}")


def agrees(claim: dict[str, Any], value: Any, tolerance: float) -> bool:
    if claim["fact"] in NUMERIC:
        return abs(float(value) - float(claim["value"])) <= tolerance * abs(float(claim["value"]))
    return value == claim["value"]


def contradiction(claim: dict[str, Any] | None, measurement: Measurement, tolerance: float) -> str | None:
    """Why the answer contradicts the measured facts, or None when it does not (or asserts none)."""
    if claim is None:
        return None
    value = measured_value(claim, measurement)
    if agrees(claim, value, tolerance):
        return None
    shown = f"{value:.2f}" if claim["fact"] in NUMERIC else value
    subject = claim.get("name") or f"{claim['a']} / {claim['b']}"
    return f"the answer says {claim['fact']} = {claim['value']} for {subject}, the measured facts say {shown} (tolerance {tolerance:.0%})"


def agreement(truth: list[dict[str, Any]], measurement: Measurement, tolerance: float) -> dict[str, tuple[int, int]]:
    """Per fact kind, (agreeing, checked) of measured facts against true claims."""
    counts: dict[str, list[int]] = {}
    for claim in truth:
        tally = counts.setdefault(claim["fact"], [0, 0])
        tally[0] += agrees(claim, measured_value(claim, measurement), tolerance)
        tally[1] += 1
    return {k: (v[0], v[1]) for k, v in counts.items()}


def agreement_rates(counters: Mapping[str, int]) -> dict[str, float]:
    """Per fact kind, the share of checked facts that agree with the truth (from the build counters
    `agreement.<kind>.agree` and `agreement.<kind>.checked`)."""
    return {
        name[len("agreement.") : -len(".checked")]: round(counters.get(name[: -len("checked")] + "agree", 0) / checked, 4)
        for name, checked in sorted(counters.items())
        if name.startswith("agreement.") and name.endswith(".checked") and checked
    }
