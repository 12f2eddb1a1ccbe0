"""Benchmark plumbing that decides what a figure means (issue 19): alternating slices and printed counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import harness
from benchmarks.bench_store import _Tally


def test_wrk_alternating_interleaves_the_servers_and_sums_their_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    rates = {"http://static": [100.0, 300.0, 200.0], "http://real": [50.0, 70.0, 60.0]}

    def fake_wrk(url: str, script: Path, conc: int, seconds: int) -> tuple[float, float, float, int]:
        calls.append((url, conc, seconds))
        rate = rates[url].pop(0)
        return rate, rate / 100, rate / 10, 1 if url == "http://real" else 0

    monkeypatch.setattr(harness, "run_wrk", fake_wrk)
    got = harness.wrk_alternating({"static": ("http://static", Path("s.lua")), "real": ("http://real", Path("r.lua"))},
                                  8, 9, 3)
    assert [u for u, _, _ in calls] == ["http://static", "http://real", "http://real", "http://static",
                                        "http://static", "http://real"]
    assert {(c, s) for _, c, s in calls} == {(8, 3)}  # 9 s in three slices each
    assert got["static"] == (200.0, 2.0, 20.0, 0)
    assert got["real"] == (60.0, 0.6, 6.0, 3)


def test_search_tally_prints_too_broad_and_below_minimum() -> None:
    tally = _Tally()
    for hits in (3, -1, 1, -1):
        tally.add(0.001, hits)
    assert tally.summary(5) == "2.0 hits/answer, 2 too broad (50.0%), 5 below the minimum criteria"
    total = _Tally()
    total.merge(tally)
    total.merge(tally)
    assert (len(total.latencies), total.hits, total.too_broad) == (8, 8, 4)
