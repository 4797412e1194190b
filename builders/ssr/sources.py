"""Readers for the record formats the SSR-CoT sources use, into one plain-dict record:
`{"id", "format", "image", "question", "answer", "lead", "objects": [{"name", "box"}]}`.

- `visual_cot`: Visual-CoT's LLaVA-style JSON list. Turn 1 asks the question (plus the request for
  the helpful region), turn 2 gives that region as a normalised box `[x1, y1, x2, y2]`, the last turn
  the answer.
- `vocot`: VoCoT-style grounded conversations (JSON list): the reasoning names objects with inline
  boxes, `the red car [0.12, 0.40, 0.35, 0.62]`; the answer is the last sentence after "Answer:", or
  the record's `answer`.
- `llava_cot`: LLaVA-CoT JSONL: a human question and a gpt turn with `<SUMMARY>`, `<CAPTION>`,
  `<REASONING>` and `<CONCLUSION>` tags; the answer is the conclusion, the reasoning leads the
  rationale. LLaVA-CoT carries no boxes: objects come from inline boxes in the reasoning or from
  an `objects` list added by a grounding step.

Visual-CoT boxes are normalised; elsewhere boxes with every value <= 1 are normalised, others pixels. A record that cannot be read becomes
a reject naming what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from dataengine.core.rejects import Reject

FORMATS = ("visual_cot", "vocot", "llava_cot")
_NUM = r"-?\d+(?:\.\d+)?"
_BOX = rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]"
# An object mention: an article, up to three words, then its box ("the fuel tank [0.44, ...]").
_INLINE = re.compile(rf"\b(?:the|a|an)\s+((?:(?!the\b|a\b|an\b)[A-Za-z][A-Za-z\-]*\s*){{1,3}}?)\s*{_BOX}", re.I)
_VISCOT_PROMPT = re.compile(
    r"\s*Please provide the bounding box coordinate of the region that can help you answer the question better\.?\s*", re.I
)
_TAG = {tag: re.compile(rf"<{tag}>(.*?)</{tag}>", re.S) for tag in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")}


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("<image>", "")).strip()


def inline_objects(text: str) -> list[dict[str, Any]]:
    """`name [x1, y1, x2, y2]` mentions, first mention of each name wins."""
    objects: dict[str, dict[str, Any]] = {}
    for match in _INLINE.finditer(text):
        name = match.group(1).strip().lower()
        objects.setdefault(name, {"name": name, "box": [float(v) for v in match.groups()[1:]]})
    return list(objects.values())


def _without_boxes(text: str) -> str:
    """The reasoning with its inline boxes taken out (the rationale states them measured)."""
    return re.sub(r"\s+([.,;])", r"\1", re.sub(r"\s*" + _BOX, "", text)).strip()


def _turns(record: dict[str, Any], speaker: str) -> list[str]:
    return [str(t.get("value", "")) for t in record.get("conversations") or [] if t.get("from") == speaker]


def _image(record: dict[str, Any]) -> str:
    image = record.get("image")
    if isinstance(image, list):
        image = image[0] if image else None
    if not isinstance(image, str) or not image:
        raise ValueError("no image path")
    return image


def _visual_cot(record: dict[str, Any]) -> dict[str, Any]:
    human, gpt = _turns(record, "human"), _turns(record, "gpt")
    if not human or len(gpt) < 2:
        raise ValueError("a Visual-CoT record needs a question, a box turn and an answer turn")
    box = re.fullmatch(r"\s*" + _BOX + r"\s*", gpt[0])
    if not box:
        raise ValueError(f"the second turn is not a box [x1, y1, x2, y2]: {gpt[0][:60]!r}")
    return {
        "question": _clean(_VISCOT_PROMPT.sub(" ", human[0])),
        "answer": _clean(gpt[-1]),
        "lead": [],
        "objects": [{"name": "key region", "box": [float(v) for v in box.groups()], "normalized": True}],
    }


def _vocot(record: dict[str, Any]) -> dict[str, Any]:
    human, gpt = _turns(record, "human"), _turns(record, "gpt")
    if not human or not gpt:
        raise ValueError("a VoCoT record needs a question and a grounded reasoning turn")
    reasoning = _clean(gpt[-1])
    answer = record.get("answer")
    if answer is None:
        head, sep, tail = reasoning.rpartition("Answer:")
        if not sep:
            raise ValueError("no 'Answer:' in the reasoning and no 'answer' field")
        reasoning, answer = head.strip(), tail.strip()
    lead = _without_boxes(reasoning)
    return {
        "question": _clean(human[0]),
        "answer": _clean(str(answer)),
        "lead": [re.sub(r"\s+", " ", lead).strip()] if lead else [],
        "objects": inline_objects(reasoning),
    }


def _llava_cot(record: dict[str, Any]) -> dict[str, Any]:
    human, gpt = _turns(record, "human"), _turns(record, "gpt")
    if not human or not gpt:
        raise ValueError("a LLaVA-CoT record needs a human and a gpt turn")
    parts = {tag: pattern.search(gpt[-1]) for tag, pattern in _TAG.items()}
    if parts["CONCLUSION"] is None:
        raise ValueError("no <CONCLUSION>...</CONCLUSION> in the answer turn")
    reasoning = _clean(parts["REASONING"].group(1)) if parts["REASONING"] else ""
    objects = record.get("objects") or inline_objects(reasoning)
    lead = _without_boxes(reasoning)
    return {
        "question": _clean(human[0]),
        "answer": _clean(parts["CONCLUSION"].group(1)),
        "lead": [lead] if lead else [],
        "objects": objects,
    }


_PARSERS = {"visual_cot": _visual_cot, "vocot": _vocot, "llava_cot": _llava_cot}


def _is_number(value: Any) -> bool:
    """A JSON number that is finite (not a bool, string, null, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_records(path: Path, fmt: str) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Every record of one annotation file, and a reject for each that cannot be read."""
    if fmt not in _PARSERS:
        raise ValueError(f"unknown SSR source format {fmt!r}; known: {', '.join(FORMATS)}")
    rejects: list[Reject] = []
    if fmt == "llava_cot":
        raw: list[Any] = []
        for number, line in enumerate(path.read_bytes().splitlines(), 1):  # decoded per line: one bad byte loses one line
            if not line.strip():
                continue
            try:
                raw.append(json.loads(line.decode("utf-8-sig")))
            except ValueError as exc:  # JSONDecodeError, or UnicodeDecodeError for a line that is not UTF-8
                rejects.append(
                    Reject(
                        key=f"{fmt}:line{number}",
                        source=f"{path}:{number}",
                        code="malformed_record",
                        reason=f"malformed JSON line: {getattr(exc, 'msg', None) or exc}",
                    )
                )
                raw.append(None)
    else:
        raw = json.loads(path.read_text())
        if not isinstance(raw, list):
            raise ValueError(f"{path}: a {fmt} file holds a JSON list of records")
    records = []
    for index, record in enumerate(raw):
        if record is None:
            continue
        rid = f"{fmt}:{record.get('question_id') or record.get('id') or index}" if isinstance(record, dict) else f"{fmt}:{index}"
        try:
            if not isinstance(record, dict):
                raise ValueError("a record is a JSON object")
            parsed = _PARSERS[fmt](record)
            for obj in parsed["objects"]:
                if not (
                    isinstance(obj, dict)
                    and isinstance(obj.get("name"), str)
                    and isinstance(obj.get("box"), list)
                    and len(obj["box"]) == 4
                    and all(_is_number(v) for v in obj["box"])
                ):
                    raise ValueError(f"an object needs a name and a box of 4 finite numbers, got {obj!r}")
            records.append({"id": rid, "format": fmt, "image": _image(record), **parsed})
        except (ValueError, TypeError, AttributeError) as exc:
            rejects.append(Reject(key=rid, source=str(path), code="malformed_record", reason=f"malformed {fmt} record: {exc}"))
    return records, rejects
