"""Rationale text from measured facts, in the published SSR-CoT style, and the parser that reads the
facts back out of it.

Every sentence comes from a template below; the wording is drawn with the sample's own generator,
so the same seed gives the same text on any worker. The templates are also the grammar: `parse`
turns each one into a regular expression, so any rationale we write can be checked against the
structured facts stored beside it.

As published, every object a rationale locates gets its box (`[x1,y1,x2,y2]`, 3 decimals, no
spaces) and at least one metric fact (height and width, or its depth from the camera; metres to 2
decimals), and a "no" or zero answer says what was seen instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from builders.ssr.facts import Measurement

TEMPLATES: dict[str, list[str]] = {
    "object": [
        "The {name} is located at {box}, with an estimated height of {height} meters and width of {width} meters.",
        "I find the {name} at {box}; it is about {height} meters tall and {width} meters wide.",
        "The {name} occupies the region {box} and measures roughly {height} meters in height and {width} meters in width.",
    ],
    "located": [
        "The {name} is located at {box}, {depth} meters in front of the camera.",
        "I find the {name} at {box}, at a depth of {depth} meters.",
        "The {name} occupies the region {box}, its nearest point {depth} meters in front of the camera.",
    ],
    "absent": [
        "There is no {what} in the image; what I see is {seen}.",
        "I find no {what} in the image, only {seen}.",
    ],
    "count": [
        "I count {count} {noun} in the image.",
        "In total I find {count} {noun} in the image.",
    ],
    "distance": [
        "The {a} and the {b} are {distance} meters apart.",
        "The distance between the {a} and the {b} is about {distance} meters.",
        "Measured in 3D, the {a} is {distance} meters from the {b}.",
    ],
    "side": [
        "The {a} is to the {side} of the {b}.",
        "Seen from the camera, the {a} lies to the {side} of the {b}.",
    ],
    "depth_order": [
        "The {a} is {order} the viewer than the {b}.",
        "Compared with the {b}, the {a} is {order} the viewer.",
    ],
    "vertical": [
        "The {a} is {vertical} the {b}.",
        "The center of the {a} sits {vertical} that of the {b}.",
    ],
    "clock": [
        "The {b} is roughly at {clock} o'clock from the {a}.",
        "From the {a}, the {b} lies at about {clock} o'clock.",
    ],
    "answer": [
        "So the answer is {answer}.",
        "Therefore, the answer is {answer}.",
        "Putting these measurements together, the answer is {answer}.",
    ],
}
_SLOTS = {
    "name": r"(?P<name>[^\[\]]+?)",
    "a": r"(?P<a>[^\[\]]+?)",
    "b": r"(?P<b>[^\[\]]+?)",
    "box": r"\[(?P<box>\d\.\d{3},\d\.\d{3},\d\.\d{3},\d\.\d{3})\]",
    "depth": r"(?P<depth>\d+\.\d{2})",
    "height": r"(?P<height>\d+\.\d{2})",
    "width": r"(?P<width>\d+\.\d{2})",
    "distance": r"(?P<distance>\d+\.\d{2})",
    "side": r"(?P<side>left|right)",
    "order": r"(?P<order>closer to|farther from)",
    "vertical": r"(?P<vertical>above|below)",
    "clock": r"(?P<clock>1[0-2]|[1-9])",
    "what": r"(?P<what>[^\[\];]+?)",
    "seen": r"(?P<seen>the [^\[\];]+?)",
    "count": r"(?P<count>\d+)",
    "noun": r"(?P<noun>[a-z][a-z ]*?)",
    "answer": r"(?P<answer>.+)",
}
_PATTERNS = [
    (kind, re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: _SLOTS[m.group(1)], re.escape(template)) + r"$"))
    for kind, templates in TEMPLATES.items()
    for template in templates
]
# Sentence ends: a period followed by a space (decimals never are).
_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z])")


def _box(values: Iterable[float]) -> str:
    """A normalised box as published: `[0.614,0.486,0.768,0.724]` (3 decimals, no spaces)."""
    return "[" + ",".join(f"{v:.3f}" for v in values) + "]"


def plural(noun: str, count: int = 2) -> str:
    """`noun` as English says it of `count` things: box -> boxes, sphere -> spheres, 1 box -> box."""
    if count == 1:
        return noun
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in ("a", "e", "i", "o", "u"):
        return noun[:-1] + "ies"
    return noun + "s"


def _listed(names: list[str]) -> str:
    """`the a`, `the a and the b`, `the a, the b and the c`."""
    said = [f"the {name}" for name in names]
    return said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]


def _say(kind: str, rng: np.random.Generator, **slots: Any) -> str:
    options = TEMPLATES[kind]
    return options[int(rng.integers(len(options)))].format(**slots)


def fact_sentences(
    measurement: Measurement,
    names: list[str],
    pairs: list[tuple[str, str]],
    rng: np.random.Generator,
    sizes: bool = True,
    vertical: bool = False,
) -> list[str]:
    """Sentences stating the facts of the named objects and of the given ordered pairs. Each object
    gets its box and a metric fact: its height and width (`sizes`), else its nearest depth."""
    out = []
    for name in names:
        o = measurement.object(name)
        if sizes:
            out.append(_say("object", rng, name=name, box=_box(o.box_norm), height=f"{o.height_m:.2f}", width=f"{o.width_m:.2f}"))
        else:
            out.append(_say("located", rng, name=name, box=_box(o.box_norm), depth=f"{o.nearest_m:.2f}"))
    for a, b in pairs:
        p = measurement.pair(a, b)
        out.append(_say("distance", rng, a=a, b=b, distance=f"{p['distance_m']:.2f}"))
        out.append(_say("side", rng, a=a, b=b, side="left" if p["left_of"] else "right"))
        out.append(_say("depth_order", rng, a=a, b=b, order="closer to" if p["nearer"] else "farther from"))
        if vertical:
            out.append(_say("vertical", rng, a=a, b=b, vertical="above" if p["above"] else "below"))
        out.append(_say("clock", rng, a=a, b=b, clock=p["clock"]))
    return out


def absent_sentence(what: str, seen: list[str], rng: np.random.Generator) -> str:
    """What a "no" or zero answer did not find, and the objects seen instead (located after it)."""
    if not seen:
        raise ValueError(f"a rationale for 'no {what}' must say what was seen instead; no object was named")
    return _say("absent", rng, what=what, seen=_listed(seen))


def count_sentence(count: int, noun: str, rng: np.random.Generator) -> str:
    """How many of `noun` were found (count >= 1; a zero count is an `absent_sentence`)."""
    return _say("count", rng, count=count, noun=plural(noun, count))


def compose(lead: list[str], facts: list[str], answer: str, rng: np.random.Generator) -> str:
    """The rationale: original reasoning (if any), then the measured facts, then the answer, last."""
    return " ".join([*lead, *facts, _say("answer", rng, answer=answer.rstrip(". "))])


def parse(text: str) -> list[dict[str, Any]]:
    """The facts a rationale states, one dict per recognised sentence (`kind` plus typed slots);
    sentences that no template matches (an original reasoning) are skipped."""
    found = []
    for sentence in _SENTENCE_END.split(text.strip()):
        for kind, pattern in _PATTERNS:
            match = pattern.match(sentence)
            if match:
                found.append({"kind": kind, **{k: _typed(k, v) for k, v in match.groupdict().items()}})
                break
    return found


def _typed(slot: str, value: str) -> Any:
    if slot == "box":
        return [float(v) for v in value.split(",")]
    if slot in ("height", "width", "distance", "depth"):
        return float(value)
    if slot in ("clock", "count"):
        return int(value)
    if slot == "seen":
        return [name.removeprefix("the ") for name in re.split(r", | and ", value)]
    return value


def stated_answer(text: str) -> str | None:
    """The answer the rationale ends with, or None when its last sentence states none."""
    sentences = _SENTENCE_END.split(text.strip())
    facts = parse(sentences[-1]) if sentences[-1] else []
    return facts[0]["answer"] if facts and facts[0]["kind"] == "answer" else None
