"""One reject vocabulary: what was not written, why, and what to do when an item fails.

A reject is always the same record, `{"key", "source", "code", "reason"}`, whoever makes it (a
builder while planning or processing, the worker's schema check, the `corrupt` and `depth` jobs),
and always lands in the output's `rejects.jsonl`. Whether a failing item is rejected or stops the
run is the error policy, chosen in one place (`RejectSink(policy=...)`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Literal

ErrorPolicy = Literal["skip", "raise"]
POLICIES = ("skip", "raise")


@dataclass(frozen=True, kw_only=True)
class Reject:
    """A sample or input that was not written: its key, where it came from, a short code and a reason."""

    key: str
    source: str
    code: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def error_code(exc: BaseException) -> str:
    """The code of a reject caused by an exception: `error.<ExceptionType>`."""
    return f"error.{type(exc).__name__}"


@dataclass
class RejectSink:
    """Collects rejects and counts them by code; `guard` turns a failing item into a reject."""

    policy: ErrorPolicy = "skip"
    rejects: list[Reject] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"error policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")

    def add(self, *, key: str, source: str, code: str, reason: str) -> None:
        self.rejects.append(Reject(key=key, source=source, code=code, reason=reason))
        self.counts[code] += 1

    def extend(self, rejects: list[Reject]) -> None:
        for reject in rejects:
            self.add(**reject.as_dict())

    @contextmanager
    def guard(self, *, key: str, source: str) -> Iterator[None]:
        """Run one item: an exception it raises becomes a reject (policy "skip") or propagates ("raise")."""
        try:
            yield
        except Exception as exc:
            if self.policy == "raise":
                raise
            self.add(key=key, source=source, code=error_code(exc), reason=f"{type(exc).__name__}: {exc}")

    def __len__(self) -> int:
        return len(self.rejects)
