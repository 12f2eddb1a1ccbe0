"""The summary of a wash: how many records got each code, how long it took, how fast it went.

The same shape for a local run and a job (``GET …/report``). Counts only — never record content.
``records`` is every record of the file (one per non-blank line after a CSV header, per fixed-width line,
per XML record): ``washed`` of them were washed and ``refused`` were broken lines answered ``INVALID``
unread (``records == washed + refused``, always); ``problems`` are the first :data:`MAX_PROBLEMS` reasons
(line and column, never content).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from filematch.records import Code

__all__ = ["MAX_PROBLEMS", "REFUSED", "Report"]

MAX_PROBLEMS = 20
REFUSED = "refused"  # the key of a chunk's counts that counts its refused lines (INVALID among the codes)


@dataclass(slots=True)
class Report:
    records: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {c.value: 0 for c in Code})
    seconds: float = 0.0
    job: str | None = None
    status: str = "done"
    started: str | None = None
    finished: str | None = None
    refused: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, counts: Mapping[str, int]) -> None:
        """Add a chunk's counts per code (``refused``, when there, counts refused lines among them)."""
        for code, n in counts.items():
            if code == REFUSED:
                self.refused += int(n)
                continue
            self.counts[code] = self.counts.get(code, 0) + int(n)
            self.records += int(n)

    def add_refused(self, problems: Sequence[str], count: int | None = None) -> None:
        """Count refused lines (``count``, default ``len(problems)``) and keep the first reasons."""
        self.refused += len(problems) if count is None else count
        self.problems.extend(problems[: max(0, MAX_PROBLEMS - len(self.problems))])

    @property
    def washed(self) -> int:
        return self.records - self.refused

    @property
    def rows_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "status": self.status, "records": self.records, "washed": self.washed,
                "refused": self.refused, "problems": list(self.problems), "counts": dict(self.counts),
                "started": self.started, "finished": self.finished, "seconds": round(self.seconds, 3),
                "rowsPerSecond": round(self.rows_per_second, 1)}

    def lines(self) -> list[str]:
        """A human summary, one line per non-zero code."""
        out = [f"{self.records:,} records in {self.seconds:.1f} s ({self.rows_per_second:,.0f} records/s)"]
        out += [f"  {code:<11} {n:>10,}" for code, n in self.counts.items() if n]
        if self.refused:
            out.append(f"{self.refused:,} line(s) refused unread (INVALID), {self.washed:,} washed; first:")
            out += [f"  {p}" for p in self.problems[:5]]
        return out
