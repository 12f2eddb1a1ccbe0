"""The summary of a wash: how many records got each code, how long it took, how fast it went.

The same shape for a local run and a job (``GET …/report``). Counts only — never record content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from filematch.records import Code

__all__ = ["Report"]


@dataclass(slots=True)
class Report:
    records: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {c.value: 0 for c in Code})
    seconds: float = 0.0
    job: str | None = None
    status: str = "done"
    started: str | None = None
    finished: str | None = None

    def add(self, counts: Mapping[str, int]) -> None:
        for code, n in counts.items():
            self.counts[code] = self.counts.get(code, 0) + int(n)
            self.records += int(n)

    @property
    def rows_per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "status": self.status, "records": self.records, "counts": dict(self.counts),
                "started": self.started, "finished": self.finished, "seconds": round(self.seconds, 3),
                "rowsPerSecond": round(self.rows_per_second, 1)}

    def lines(self) -> list[str]:
        """A human summary, one line per non-zero code."""
        out = [f"{self.records:,} records in {self.seconds:.1f} s ({self.rows_per_second:,.0f} records/s)"]
        out += [f"  {code:<11} {n:>10,}" for code, n in self.counts.items() if n]
        return out
