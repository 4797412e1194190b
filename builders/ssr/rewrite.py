"""Optional LLM rewrite of a templated rationale through an OpenAI-compatible chat endpoint.

Off by default. When a catalog turns it on, each rewrite must keep every fact: the same numbers, the
same relation words, and the same final answer sentence; otherwise the sample is rejected. The API key
is read from the environment variable the catalog names and is never stored or printed.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections import Counter
from dataclasses import dataclass

from builders.ssr.rationale import stated_answer

PROMPT = (
    "Rewrite the following reasoning so it reads fluently. Keep every number exactly as written "
    "(boxes, meters, o'clock), keep every spatial relation word (left, right, above, below, closer, farther), "
    "add no new facts, and keep the final sentence exactly as it is. Reply with the rewritten reasoning only.\n\n"
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_RELATION = re.compile(r"\b(left|right|above|below|closer|farther|o'clock)\b")


@dataclass(frozen=True)
class RewriteConfig:
    endpoint: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0

    def record(self) -> dict[str, str]:
        """What a sample records about its rewrite (never the key)."""
        return {"endpoint": self.endpoint, "model": self.model}


def rewrite(text: str, config: RewriteConfig) -> str:
    """One chat completion at temperature 0."""
    body = json.dumps({"model": config.model, "temperature": 0, "messages": [{"role": "user", "content": PROMPT + text}]}).encode()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(config.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(config.endpoint.rstrip("/") + "/chat/completions", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
        reply = json.loads(response.read())
    return reply["choices"][0]["message"]["content"].strip()


def lost_facts(original: str, rewritten: str) -> str | None:
    """Why a rewrite is not faithful to the original, or None when it keeps every fact."""
    for name, pattern in (("numbers", _NUMBER), ("relation words", _RELATION)):
        fold = str.lower if name == "relation words" else str
        before, after = Counter(pattern.findall(fold(original))), Counter(pattern.findall(fold(rewritten)))
        if before != after:
            missing, added = before - after, after - before
            return f"the rewrite changed the {name}: missing {sorted(missing.elements())}, added {sorted(added.elements())}"
    if stated_answer(rewritten) != stated_answer(original):
        return f"the rewrite changed the final answer ({stated_answer(original)!r} -> {stated_answer(rewritten)!r})"
    return None
