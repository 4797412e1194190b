"""The release gate: learnability, truth and regression checks, each failure a reason in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _worse(value: float, than: float, lower_is_better: bool) -> float:
    """Relative worsening of `value` against `than` (0 when not worse)."""
    if than == 0:
        return 0.0 if (value <= 0 if lower_is_better else value >= 0) else float("inf")
    change = (value - than) / abs(than)
    return max(change, 0.0) if lower_is_better else max(-change, 0.0)


def gate(
    result: Mapping[str, Any],
    settings: Mapping[str, Any],
    lower_is_better: Mapping[str, bool],
    primary: str,
    previous: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every failed check as one sentence; empty when the release passes.

    - learnability: the model beats the prior baseline (no image information) by the relative margin
      (and, for higher-is-better scores, by `learnability_gain` in absolute terms);
    - truth: on `--reference` (a trusted release), the model beats that release's own prior, which
      catches labels that are wrong in a self-consistent way (flipped, wrong unit);
    - regression: against a previous release's validation.json, no metric worsens beyond its tolerance;
    - limit: a metric is worse than its `limits` entry (the result's `explain` may say what that means).
    """
    reasons = []
    direction = lower_is_better[primary]
    ours, prior = result["metrics"][primary], result["prior"][primary]
    margin = settings["learnability_margin"]
    gain = 0.0 if direction else settings.get("learnability_gain", 0.0)
    needed = prior * (1 - margin) if direction else max(prior * (1 + margin), prior + gain)
    if (ours > needed) if direction else (ours < needed):
        absolute = f" and {gain:.2f}" if gain else ""
        reasons.append(
            f"learnability: the model's {primary} {ours:.4f} does not beat the prior baseline's {prior:.4f} by {margin:.0%}{absolute} "
            f"(needs {'<=' if direction else '>='} {needed:.4f}): the images do not predict the labels"
        )
    reference = result.get("reference")
    if reference is not None:
        theirs, their_prior = reference["metrics"][primary], reference["prior"][primary]
        margin = settings["reference_margin"]
        needed = their_prior * (1 - margin) if direction else their_prior * (1 + margin)
        if (theirs > needed) if direction else (theirs < needed):
            reasons.append(
                f"truth: on the reference release {reference['release']} the model's {primary} is {theirs:.4f}, worse than that "
                f"release's prior baseline {their_prior:.4f}: the labels disagree with trusted ones (flipped, shifted or in another unit?)"
            )
    if previous is not None:
        for metric, tolerance in sorted(settings["regression"].items()):
            if metric not in result["metrics"] or metric not in previous.get("metrics", {}):
                continue
            worse = _worse(result["metrics"][metric], previous["metrics"][metric], lower_is_better.get(metric, True))
            if worse > tolerance:
                reasons.append(
                    f"regression: {metric} {result['metrics'][metric]:.4f} is {worse:.1%} worse than the previous release's "
                    f"{previous['metrics'][metric]:.4f} (tolerance {tolerance:.0%})"
                )
    for metric, limit in sorted(settings.get("limits", {}).items()):
        if metric not in result["metrics"]:
            continue
        value, lower = result["metrics"][metric], lower_is_better.get(metric, True)
        if (value > limit) if lower else (value < limit):
            why = result.get("explain", {}).get(metric)
            reasons.append(
                f"limit: {metric} {value:.4f} is {'above' if lower else 'below'} its limit {limit:.4f}" + (f": {why}" if why else "")
            )
    return reasons
