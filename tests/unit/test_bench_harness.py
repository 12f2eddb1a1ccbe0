"""Benchmark plumbing that decides what a figure means (issue 19): alternating slices and printed counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import harness
from benchmarks.bench_store import _Tally, _vm_steps


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
        tally.add(0.001, 0.0005, hits)
    assert tally.summary(5) == ("2.0 hits/answer, 2 too broad (50.0%), 5 below the minimum criteria "
                                "(CPU p50 0.500 p99 0.500), CPU 0.500 ms + 0.0 µs a hit")
    line = _Tally()  # the least-squares line of CPU against hits, over the answered searches
    for hits, cpu in ((1, 0.000040), (3, 0.000050), (5, 0.000060), (-1, 0.000900)):
        line.add(0.001, cpu, hits)
    assert line.summary(0).endswith(", CPU 0.035 ms + 5.0 µs a hit")
    tally.steps = [10, 30, 20, 40]
    assert ", VM p50 30 p99 40, CPU 0.500 ms" in tally.summary(0)
    assert tally.figures("search") == {"search cpu_p50": 0.5, "search cpu_p99": 0.5, "search vm_p50": 30.0,
                                       "search vm_p99": 40.0}
    total = _Tally()
    total.merge(tally)
    total.merge(tally)
    assert (len(total.latencies), len(total.cpu), total.hits, total.too_broad) == (8, 8, 8, 4)


def test_vm_instructions_grow_with_the_rows_a_search_reads(tmp_path: Path) -> None:
    """The store suite's load-independent figure: a search whose index block holds 40 rows runs more SQLite VM
    instructions than one whose block holds one, and the count repeats exactly (once the first search has read
    the scoring parameters, as the suite's warm-up searches do)."""
    from store.document import from_document
    from store.engine import make_engine, migrate
    from store.repository import PersonRepository
    from store.search import SearchCriteria
    from tests.factories import person_doc

    engine = make_engine(f"sqlite:///{tmp_path / 'vm.sqlite'}")
    migrate(engine)
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i in range(40):
            repo.save(from_document(person_doc(f"h{i}", given=f"Ola{'x' * (i % 7)}", family="Hansen",
                                               born=f"1980-{1 + i % 12:02d}-{1 + i // 12:02d}")))
        repo.save(from_document(person_doc("b", given="Kari", family="Brekke", born="1980-05-05")))
    one, block = SearchCriteria(family="Brekke", birth_year=1980), SearchCriteria(family="Hansen", birth_year=1980)
    with engine.connect() as conn:
        _vm_steps(conn, [one])  # the first search also reads the scoring parameters (cached after it)
        first = _vm_steps(conn, [one, block, one])
        again = _vm_steps(conn, [one, block, one])
    engine.dispose()
    assert first is not None and first == again
    assert first[0] == first[2] > 0
    assert first[1] > 10 * first[0] / 2


def test_store_samples_print_the_hits_and_the_too_broad_requests_left_out(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The soap and mllp suites' search requests: pairs answering 1–50 hits are kept, and the line says how many
    hits they answer and how many were too broad (a national store answers more persons to the same request)."""
    from store.document import from_document
    from store.engine import make_engine, migrate
    from store.repository import PersonRepository
    from tests.factories import person_doc

    url = f"sqlite:///{tmp_path / 'samples.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i in range(55):
            born = f"1980-{1 + i % 12:02d}-{1 + i // 12:02d}"
            repo.save(from_document(person_doc(f"h{i}", family="Hansen", born=born)))
        for i in range(3):
            repo.save(from_document(person_doc(f"b{i}", family="Brekke", born=f"1990-0{1 + i}-01")))
    engine.dispose()
    numbers, pairs = harness.store_samples(url, 200, 7, "bench-user")
    assert numbers and set(pairs) == {("brekke", 1990)}
    out = capsys.readouterr().out
    kept = sum(1 for p in pairs if p == ("brekke", 1990))
    assert f"{kept:,} kept (3.0 hits each)" in out, out
    assert f"{len(numbers) - kept:,} too broad (> 50 hits) left out" in out, out
    # by given name too: every person is one answer (the 55 Hansens born 1980 are all Ola, so 55 > 50: left out)
    triples = harness.store_name_triples(url, 200, 7)
    assert triples and set(triples) == {("ola", "brekke", 1990)}
    assert f"{len(triples):,} kept (3.0 hits each)" in capsys.readouterr().out
