"""The outcome of comparing one recorded answer with one replayed answer, shared by both comparers.

Four outcomes, ordered from best to worst: ``identical`` (canonically the same), ``equalAfterIgnores``
(differences only in nodes or fields an ignore rule names), ``differs`` (a difference that matters, with
one :class:`Difference` per differing node or field), ``error`` (nothing to compare: the target did not
answer, the answer does not parse, the recording holds an upstream failure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Comparison", "Difference", "Outcome", "shorten"]


class Outcome(StrEnum):
    IDENTICAL = "identical"
    EQUAL_AFTER_IGNORES = "equalAfterIgnores"
    DIFFERS = "differs"
    ERROR = "error"

    @property
    def passed(self) -> bool:
        return self in (Outcome.IDENTICAL, Outcome.EQUAL_AFTER_IGNORES)


def shorten(value: str | None, limit: int = 200) -> str:
    """``repr``-style quoting of a value for a diff line, cut at ``limit`` characters."""
    if value is None:
        return "(absent)"
    text = value if len(value) <= limit else value[:limit] + "…"
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\r", "\\r").replace("\n", "\\n") + "'"


@dataclass(frozen=True, slots=True)
class Difference:
    """One differing node (XPath) or field (``PID[1]-5[1].2``): what was expected and what came."""

    path: str
    expected: str | None = None
    actual: str | None = None
    note: str = ""  # "missing", "unexpected", "element order differs" …: replaces the value pair when set

    def __str__(self) -> str:
        if self.note:
            return f"{self.path}: {self.note}"
        return f"{self.path}: expected {shorten(self.expected)} got {shorten(self.actual)}"


@dataclass(frozen=True, slots=True)
class Comparison:
    outcome: Outcome
    differences: tuple[Difference, ...] = ()
    message: str = ""  # the reason for ERROR, or a one-line summary
    ignored: int = field(default=0)  # differences an ignore rule absorbed

    def diff_text(self) -> str:
        lines = [self.message] if self.message else []
        lines += [str(d) for d in self.differences]
        return "\n".join(lines)
