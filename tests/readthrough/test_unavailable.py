"""Read-through when Persontjenesten fails, and under concurrency, against the fake over loopback, on SQLite and
PostgreSQL.

Each fault the fake injects (slow answers past the deadline, 500s, 429 and 503 with a Retry-After past it,
dropped connections) gives the documented answer within the deadline: PREG ``Server.Unavailable`` (SOAP 1.1
and 1.2), HL7 AE with ERR 207, a Filematch record ``UNAVAILABLE`` while the chunk's other records are answered;
persons in the store are answered as usual. Two concurrent misses on one number make one upstream call; the
circuit breaker opens after ``breaker_failures`` failures (no call while open) and closes after a probe; every
upstream call carries the request id of the legacy call that caused it, the one its audit log line carries.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from filematch.formats import format_named
from filematch.local import wash_file
from store.errors import NotFound
from store.source import SourceUnavailable
from store.synthetic import generate_population
from tests.integration.preg_support import ACCOUNTS, PASSWORD, fault_of, running_preg
from tests.integration.sync_support import another_store, fake_of
from tests.integration.test_hl7_mllp import ask, err_code, f, message, parsed, seg
from tests.readthrough.support import (
    DEADLINE,
    RequestLog,
    add_hl7_accounts,
    asked_keys,
    hl7_serving,
    journal,
    person_keys,
    read_through_settings,
    source_of,
    unknown_numbers,
)
from upstream.fake import Faults, RunningFake

MARGIN = 1.5  # seconds over the deadline an answer may take (the face's own work on a loaded test machine)
FAULTS = {
    "slow": Faults(slow_every=1, slow_seconds=5.0),  # far past deadline + margin: a hang would show
    "error-500": Faults(error_every=1),
    "rate-limited-429": Faults(rate_limit_every=1, retry_after=5),
    "unavailable-503": Faults(unavailable_every=1, retry_after=5),
    "dropped": Faults(drop_every=1),
}


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rt-faults")
    generate_population(out, 40, 3, feed_days=1)
    return out


@pytest.fixture(scope="module")
def fake(population: Path) -> Iterator[RunningFake]:
    with fake_of(population) as running:
        yield running


@pytest.fixture
def faults(fake: RunningFake) -> Iterator[Any]:
    """Set the fake's faults for the test; none again after it."""
    def set_faults(value: Faults) -> None:
        fake.app.faults = value
    yield set_faults
    fake.app.faults = Faults()


@pytest.fixture
def empty(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    with another_store(db_url, tmp_path, "readthrough") as engine:
        yield engine


@pytest.fixture(scope="module")
def numbers(population: Path) -> list[str]:
    """Current numbers of the fake's population, sorted."""
    import orjson

    out = []
    for line in (population / "persons.jsonl").read_bytes().splitlines():
        doc = orjson.loads(line)
        out += [i["number"] for i in doc["identifiers"] if i.get("status") == "iBruk"]
    return sorted(out)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_gives_the_unavailable_answer_within_the_deadline(db_url: str, fake: RunningFake, faults: Any,
                                                                     empty: Engine, tmp_path: Path,
                                                                     fault: str, numbers: list[str]) -> None:
    held, missing = numbers[:2], numbers[2:8]
    settings = read_through_settings(fake, breaker_failures=100)  # every miss asks: the fault is what answers
    add_hl7_accounts(empty)
    with running_preg(db_url, tmp_path, populated=False, engine=empty, upstream=settings) as srv:
        source = srv.components.source
        assert source is not None
        source.ensure_numbers(held)  # in the store before the register fails
        faults(FAULTS[fault])
        for i, version in enumerate(("1.1", "1.2")):
            started = time.monotonic()
            answer = srv.call(version, f"<p:getPerson><p:personnummer>{missing[i]}</p:personnummer></p:getPerson>",
                              auth=(ACCOUNTS["full"], PASSWORD))
            took = time.monotonic() - started
            assert answer.status == 500 if version == "1.1" else answer.status in (500, 503)
            v, code, text = fault_of(answer.xml())
            assert (v, code) == (version, "Server.Unavailable") and missing[i] not in text
            assert took <= DEADLINE + MARGIN, took
            ok = srv.call(version, f"<p:getPerson><p:personnummer>{held[0]}</p:personnummer></p:getPerson>",
                          auth=(ACCOUNTS["full"], PASSWORD))
            assert ok.status == 200
        with hl7_serving(empty, source) as hl7:  # type: ignore[arg-type]
            started = time.monotonic()
            (raw,) = ask(hl7, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{missing[2]}^^^FNR", "RCP|I"))
            assert time.monotonic() - started <= DEADLINE + MARGIN
            m = parsed(raw)
            assert f(seg(m, "MSA"), 1) == "AE" and err_code(m) == "207" and f(seg(m, "QAK"), 2) == "AE"
            (a19,) = ask(hl7, message("QRY^A19", f"QRD|20261121|R|I|q1|||1^RD|{missing[3]}|DEM", version="2.3",
                                      sender="DIPS|OUS"))
            m = parsed(a19)  # v2.3: the code in ERR-1 (as the replica's A19 writes 204 there)
            assert f(seg(m, "MSA"), 1) == "AE" and str(seg(m, "ERR")).startswith("ERR|QRD^1^8^207&")
            (good,) = ask(hl7, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{held[1]}^^^FNR", "RCP|I"))
            assert f(seg(parsed(good), "MSA"), 1) == "AA"
        src = tmp_path / "wash.csv"
        src.write_bytes(("ref;number;given;family;birth\n" + "".join(
            f"r{i};{n};;;\n" for i, n in enumerate([held[0], missing[4], held[1], missing[5]]))).encode())
        out = io.BytesIO()
        started = time.monotonic()
        report = wash_file(empty, src, out, format_named("csv"), source_of=lambda _engine: source)
        assert time.monotonic() - started <= DEADLINE + MARGIN + 1.0
        rows = [line.split(";") for line in out.getvalue().decode().splitlines()[1:]]
        assert [r[1] for r in rows] == ["UNCHANGED", "UNAVAILABLE", "UNCHANGED", "UNAVAILABLE"] or \
            [r[1] != "UNAVAILABLE" for r in rows] == [True, False, True, False]
        assert report.counts["UNAVAILABLE"] == 2
        assert all("upstream:unavailable" in r[-2] for r in rows if r[1] == "UNAVAILABLE")
        faults(Faults())
        source.flush()
    assert person_keys(empty) == asked_keys(empty) and len(person_keys(empty)) == 2


def test_two_concurrent_misses_fetch_once(fake: RunningFake, faults: Any, empty: Engine, numbers: list[str]) -> None:
    number = numbers[10]
    faults(Faults(slow_every=1, slow_seconds=0.3))  # the first request is still in flight when the second asks
    source = source_of(empty, fake)
    before = len(journal(fake))
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def ask_for() -> None:
        try:
            barrier.wait()
            source.ensure_numbers([number], request_id="concurrent")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask_for) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    source.close()
    assert not errors
    calls = journal(fake)[before:]
    assert [(e.operation, e.keys) for e in calls] == [("person_by_nin", 1)]
    assert len(person_keys(empty)) == 1


def test_unknown_numbers_are_not_found_and_cached_negatively(fake: RunningFake, empty: Engine) -> None:
    unknown = unknown_numbers(empty, 2)
    source = source_of(empty, fake)
    before = len(journal(fake))
    source.ensure_numbers(unknown)
    source.ensure_numbers(unknown)  # remembered as unknown: no second call
    source.ensure_numbers(["12345678901", "", "abc"])  # not valid numbers: never sent
    source.close()
    assert [(e.operation, e.keys) for e in journal(fake)[before:]] == [("persons_by_nin", 2)]
    assert person_keys(empty) == set()
    assert issubclass(SourceUnavailable, Exception) and not issubclass(SourceUnavailable, NotFound)


def test_the_breaker_opens_pauses_calls_and_closes_after_a_probe(fake: RunningFake, faults: Any, empty: Engine,
                                                                 numbers: list[str]) -> None:
    numbers = numbers[12:20]
    source = source_of(empty, fake, breaker_failures=2, breaker_pause=0.5, retries=0)
    faults(Faults(error_every=1))
    for n in numbers[:2]:
        with pytest.raises(SourceUnavailable):
            source.ensure_numbers([n])
    assert source.breaker.state == "open"
    before = len(journal(fake))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable):
        source.ensure_numbers([numbers[2]])
    assert time.monotonic() - started < 0.1 and len(journal(fake)) == before  # paused: no call at all
    time.sleep(0.55)
    assert source.breaker.state == "half-open"
    with pytest.raises(SourceUnavailable):  # the probe fails: open again
        source.ensure_numbers([numbers[3]])
    assert source.breaker.state == "open" and len(journal(fake)) == before + 1
    faults(Faults())
    time.sleep(0.55)
    source.ensure_numbers([numbers[4]])  # the probe succeeds: closed
    assert source.breaker.state == "closed"
    source.ensure_numbers(numbers[5:8])
    source.close()
    assert len(person_keys(empty)) == 4


def test_every_upstream_call_carries_the_legacy_calls_request_id(db_url: str, fake: RunningFake, empty: Engine,
                                                                 tmp_path: Path, numbers: list[str]) -> None:
    numbers = numbers[20:26]
    add_hl7_accounts(empty)
    log = RequestLog()
    with log.attached(), running_preg(db_url, tmp_path, populated=False, engine=empty,
                                      upstream=read_through_settings(fake)) as srv:
        before = len(journal(fake))
        srv.call("1.1", f"<p:getPerson><p:personnummer>{numbers[0]}</p:personnummer></p:getPerson>",
                 auth=(ACCOUNTS["full"], PASSWORD), headers={"X-Request-Id": "epj-call-0001"})
        srv.call("1.1", f"<p:getPersons><p:personnummer>{numbers[1]}</p:personnummer>"
                 f"<p:personnummer>{numbers[2]}</p:personnummer></p:getPersons>", auth=(ACCOUNTS["full"], PASSWORD))
        with hl7_serving(empty, srv.components.source) as hl7:  # type: ignore[arg-type]
            ask(hl7, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{numbers[3]}^^^FNR", "RCP|I"))
        calls = journal(fake)[before:]
    lines = [line for line in log.lines if line["operation"] in ("getPerson", "getPersons", "QBP^Q23")]
    assert [line["operation"] for line in lines] == ["getPerson", "getPersons", "QBP^Q23"]
    assert lines[0]["request_id"] == "epj-call-0001"
    assert [(e.operation, e.request_id) for e in calls] == [
        ("person_by_nin", "epj-call-0001"), ("persons_by_nin", lines[1]["request_id"]),
        ("person_by_nin", lines[2]["request_id"])]
    assert len({e.request_id for e in calls}) == 3


def test_held_persons_are_touched_once_per_interval_in_batches(fake: RunningFake, empty: Engine,
                                                               numbers: list[str]) -> None:
    from sqlalchemy import text

    def asked_at() -> dict[int, Any]:
        with empty.connect() as conn:
            return dict(conn.execute(text("SELECT person_id, asked_at FROM person_asked")).all())

    source = source_of(empty, fake)
    source.ensure_numbers(numbers[26:29])  # fetched: touched with the write
    first = asked_at()
    assert len(first) == 3
    for _ in range(50):  # hot lookups of held persons: no write, no call
        source.ensure_numbers(numbers[26:29])
    source.flush()
    assert asked_at() == first
    calls = len(journal(fake))
    source.ensure_numbers(numbers[26:27])
    assert len(journal(fake)) == calls
    source.close()
    # a new process (another source) touches a held person once, written at flush, later than before
    later = source_of(empty, fake)
    later.ensure_numbers(numbers[26:27])
    later.ensure_numbers(numbers[26:27])
    later.close()
    after = asked_at()
    changed = [pid for pid in first if after[pid] != first[pid]]
    assert len(changed) == 1 and after[changed[0]] > first[changed[0]]


def test_a_filematch_job_washed_by_a_worker_in_read_through_mode(fake: RunningFake, empty: Engine,
                                                                 numbers: list[str], tmp_path: Path) -> None:
    from filematch.jobs import JobSettings, JobStore
    from filematch.worker import Worker

    src = tmp_path / "job.csv"
    unknown = unknown_numbers(empty, 1)
    src.write_text("ref;number;given;family;birth\n" + "".join(
        f"r{i};{n};;;\n" for i, n in enumerate([*numbers[30:36], *unknown])), encoding="utf-8")
    jobs = JobStore(empty, JobSettings(chunk_size=4))
    info = jobs.submit(src, "csv", account="a", profile="full")
    source = source_of(empty, fake)
    before = len(journal(fake))
    worker = Worker(jobs, source=source)
    while worker.run_once():
        pass
    source.close()
    body = b"".join(jobs.result(info.id, account="a")).decode()
    codes = [line.split(";")[1] for line in body.splitlines()[1:]]
    assert len(codes) == 7 and codes[-1] == "NOT_FOUND" and "NOT_FOUND" not in codes[:-1]
    assert "UNAVAILABLE" not in codes
    calls = journal(fake)[before:]
    assert [e.operation for e in calls] == ["persons_by_nin", "persons_by_nin"]
    assert {e.request_id for e in calls} == {f"{info.id}/0", f"{info.id}/1"}
    assert len(person_keys(empty)) == 6
