"""Optional LLM rewrite of a templated rationale through an OpenAI-compatible chat endpoint.

Off by default. When a catalog turns it on, each rewrite must keep every fact: the same numbers, the
same relation words, and the same final answer sentence; otherwise the sample is rejected. The API key
is read from the environment variable the catalog names and is never stored or printed.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.parse
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


def check_endpoint(endpoint: str) -> None:
    """Refuse an endpoint the release could not record safely: not http(s), or holding a user or password
    (the URL is stored in the manifest and in every rewritten sample; the key belongs in `api_key_env`)."""
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"params.rewrite.endpoint must be an http(s) URL such as https://api.example.com/v1, got {parts.scheme or 'no'} scheme"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "params.rewrite.endpoint holds a user or password (user:pw@host), which the release would store; "
            "remove it and put the key in the environment variable named by params.rewrite.api_key_env"
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Never follow a redirect: it would carry the Authorization header to wherever it points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        raise urllib.error.HTTPError(
            req.full_url,
            code,
            f"the rewrite endpoint redirects ({code}) to {newurl}; set params.rewrite.endpoint to the final URL",
            headers,
            fp,
        )


_OPENER = urllib.request.build_opener(_NoRedirect)


def rewrite(text: str, config: RewriteConfig) -> str:
    """One chat completion at temperature 0; a redirect or a reply that is not a chat completion raises ValueError or OSError."""
    body = json.dumps({"model": config.model, "temperature": 0, "messages": [{"role": "user", "content": PROMPT + text}]}).encode()
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(config.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(config.endpoint.rstrip("/") + "/chat/completions", data=body, headers=headers, method="POST")
    with _OPENER.open(request, timeout=config.timeout_s) as response:
        try:
            reply = json.loads(response.read())
        except ValueError as exc:
            raise ValueError(f"the reply is not JSON: {exc}") from None
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"the reply is not a chat completion (no choices[0].message.content): {type(exc).__name__}: {exc}") from None
    if not isinstance(content, str):
        raise ValueError(f"the reply's message content is {type(content).__name__}, not text")
    return content.strip()


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
