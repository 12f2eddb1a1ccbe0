"""Shared pieces of the benchmark suites: results, percentiles, printing, profiling."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OUT = Path(__file__).parent / "out"


@dataclass
class Result:
    variant: str
    n: int
    seconds: float
    figure: str = ""
    ratio: float | None = None
    baseline: str = ""
    target: str = ""
    ok: bool | None = None

    def line(self) -> str:
        ratio = f"ratio {self.ratio:.2f} vs {self.baseline}" if self.ratio is not None else ""
        verdict = "" if self.ok is None else ("  [meets " if self.ok else "  [MISSES ") + self.target + "]"
        return f"{self.variant:<38} n={self.n:<9,} {self.seconds:9.2f} s  {self.figure:<34} {ratio}{verdict}"


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    qs = statistics.quantiles(samples_s, n=100, method="inclusive")
    return qs[49] * 1000, qs[98] * 1000


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


@contextmanager
def maybe_profile(enabled: bool, name: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        OUT.mkdir(exist_ok=True)
        path = OUT / f"{name}.prof"
        prof.dump_stats(path)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        print(f"profile written to {path}")
