"""Read-through lookups by number against the fake Persontjenesten over loopback, on SQLite and PostgreSQL.

The oracle is a replica: the same population loaded from files (as Persontjenesten can carry it). Starting from
an EMPTY store in read-through mode, every by-number face — PREG getPerson, getPersons, getAdresses,
getPersonHistory over SOAP; HL7 PIX (QBP^Q23) and A19 over MLLP; a Filematch wash by number, in one process and
in two — answers exactly as the replica answers (canonical XML, HL7 segments, the wash's output bytes), ceased
numbers resolve, unknown numbers are "not found", and the store afterwards holds exactly the persons asked
about, row for row as the replica holds them, each marked as asked (person_asked).
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from filematch.formats import format_named
from filematch.local import wash_file
from server.bootstrap import person_source_of
from server.config import Settings, StoreSettings
from server.replay.compare_xml import compare_xml
from store.synthetic import generate_population
from tests.integration.preg_support import ACCOUNTS, PASSWORD, running_preg
from tests.integration.sync_support import another_store, contract_copy, fake_of, loaded, with_special_persons
from tests.integration.test_hl7_mllp import ask, message, parsed
from tests.readthrough.support import (
    add_hl7_accounts,
    asked_keys,
    assert_holds_as_replica,
    hl7_serving,
    identifiers,
    journal,
    person_keys,
    read_through_settings,
    source_of,
    unknown_numbers,
)
from upstream.fake import RunningFake


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rt-population")
    generate_population(out, 90, 11, feed_days=3)
    return with_special_persons(out)


@pytest.fixture(scope="module")
def as_loaded(population: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return contract_copy(population, tmp_path_factory.mktemp("rt-contract") / "pop")


@pytest.fixture(scope="module")
def fake(population: Path) -> Iterator[RunningFake]:
    with fake_of(population) as running:
        yield running


@pytest.fixture
def replica(db_url: str, as_loaded: Path, tmp_path: Path) -> Iterator[Engine]:
    with another_store(db_url, tmp_path, "replica") as engine:
        yield loaded(engine, as_loaded)


@pytest.fixture
def empty(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    with another_store(db_url, tmp_path, "readthrough") as engine:
        yield engine


def _split(replica: Engine) -> tuple[list[str], list[str]]:
    """(current numbers of persons without a ceased one, ceased numbers) of the replica, in a fixed order."""
    ids = identifiers(replica)
    ceased = sorted(n for n, (_, status, _c) in ids.items() if status == "opphoert")
    assert ceased, "the population has ceased numbers"
    with_ceased = {ids[n][0] for n in ceased}
    current = sorted(n for n, (key, status, cur) in ids.items() if cur and status == "iBruk" and
                     key not in with_ceased)
    return current, ceased


def _soap(srv: Any, op: str, number: str) -> tuple[int, bytes]:
    answer = srv.call("1.1", f"<p:{op}><p:personnummer>{number}</p:personnummer></p:{op}>",
                      auth=(ACCOUNTS["full"], PASSWORD))
    return answer.status, answer.body


def _many(srv: Any, numbers: list[str]) -> tuple[int, bytes]:
    items = "".join(f"<p:personnummer>{n}</p:personnummer>" for n in numbers)
    answer = srv.call("1.1", f"<p:getPersons>{items}</p:getPersons>",
                      auth=(ACCOUNTS["full"], PASSWORD))
    return answer.status, answer.body


def _same(want: tuple[int, bytes], got: tuple[int, bytes], what: str) -> None:
    assert got[0] == want[0], what
    assert compare_xml(want[1], got[1]).outcome.value == "identical", what


def test_preg_by_number_from_an_empty_store_answers_as_the_replica(db_url: str, fake: RunningFake, replica: Engine,
                                                                   empty: Engine, tmp_path: Path) -> None:
    current, ceased = _split(replica)
    ids = identifiers(replica)
    unknown = unknown_numbers(replica)
    single = current[:12]
    batch = current[12:30]
    ceased_asked = ceased[:4]
    asked = {ids[n][0] for n in single + batch + ceased_asked}
    calls_before = len(journal(fake))
    (tmp_path / "r").mkdir()
    (tmp_path / "t").mkdir()
    with running_preg(db_url, tmp_path / "r", populated=False, engine=replica) as rep, \
            running_preg(db_url, tmp_path / "t", populated=False, engine=empty,
                         upstream=read_through_settings(fake)) as rt:
        assert rep.components.source is None and rt.components.source is not None
        for op in ("getPerson", "getAdresses", "getPersonHistory"):
            for n in single[:4] if op != "getPerson" else single:
                _same(_soap(rep, op, n), _soap(rt, op, n), f"{op} {n}")
        _same(_many(rep, [*batch, unknown[0], "12345678901"]), _many(rt, [*batch, unknown[0], "12345678901"]),
              "getPersons")
        for n in ceased_asked:
            _same(_soap(rep, "getPerson", n), _soap(rt, "getPerson", n), f"getPerson ceased {n}")
        for n in unknown[1:]:
            want = _soap(rep, "getPerson", n)
            assert want[0] == 500 and b"NotFound" in want[1]
            _same(want, _soap(rt, "getPerson", n), "getPerson unknown")
        # asked again: answered from the store, no call
        before = len(journal(fake))
        _same(_soap(rep, "getPerson", single[0]), _soap(rt, "getPerson", single[0]), "again")
        assert len(journal(fake)) == before
        rt.components.source.flush()  # type: ignore[union-attr]
    assert_holds_as_replica(empty, replica, asked)
    assert asked_keys(empty) == asked
    by_op = [e.operation for e in journal(fake)[calls_before:]]
    assert set(by_op) <= {"person_by_nin", "persons_by_nin"} and by_op.count("persons_by_nin") == 1


def _hl7_body(reply: bytes) -> list[str]:
    """The reply's segments but MSH (its time and control id are the reply's own)."""
    return [str(s) for s in parsed(reply) if str(s[0]) != "MSH"]


def test_hl7_pix_and_a19_from_an_empty_store_answer_as_the_replica(fake: RunningFake, replica: Engine,
                                                                   empty: Engine) -> None:
    current, ceased = _split(replica)
    ids = identifiers(replica)
    pix = current[:6] + ceased[:1]
    a19 = current[6:12] + ceased[-1:]
    unknown = unknown_numbers(replica, 2)
    add_hl7_accounts(replica)
    add_hl7_accounts(empty)
    source = source_of(empty, fake)
    with hl7_serving(replica, None) as rep, hl7_serving(empty, source) as rt:
        for n in [*pix, unknown[0]]:
            msg = message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{n}^^^FNR", "RCP|I")
            want, got = ask(rep, msg), ask(rt, msg)
            assert _hl7_body(got[0]) == _hl7_body(want[0]), n
        for n in [*a19, unknown[1]]:
            msg = message("QRY^A19", f"QRD|20261121|R|I|q1|||1^RD|{n}|DEM", version="2.3", sender="DIPS|OUS")
            want, got = ask(rep, msg), ask(rt, msg)
            assert _hl7_body(got[0]) == _hl7_body(want[0]), n
    source.close()
    asked = {ids[n][0] for n in pix + a19}
    assert_holds_as_replica(empty, replica, asked)
    assert asked_keys(empty) == asked


def _wash_input(numbers: list[str]) -> bytes:
    lines = ["ref;number;given;family;birth"]
    lines += [f"r{i};{n};;;" for i, n in enumerate(numbers)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("processes", [1, 2])
def test_filematch_wash_by_number_from_an_empty_store_answers_as_the_replica(
        db_url: str, fake: RunningFake, replica: Engine, empty: Engine, tmp_path: Path, processes: int) -> None:
    current, ceased = _split(replica)
    ids = identifiers(replica)
    numbers = current[:150] + ceased[:5] + unknown_numbers(replica, 3) + ["12345678901", ""]
    src = tmp_path / "in.csv"
    src.write_bytes(_wash_input(numbers))
    fmt = format_named("csv")
    want = io.BytesIO()
    wash_file(replica, src, want, fmt)
    settings = Settings(store=StoreSettings(url=str(empty.url.render_as_string(hide_password=False)),
                                            data_dir=tmp_path),
                        upstream=read_through_settings(fake))
    before = len(journal(fake))
    got = io.BytesIO()
    report = wash_file(empty, src, got, fmt, processes=processes, chunk_size=60,
                       source_of=functools.partial(person_source_of, settings), request_id="wash-1")
    assert got.getvalue() == want.getvalue()
    assert report.counts["NOT_FOUND"] == 3 and report.counts["UNAVAILABLE"] == 0
    calls = journal(fake)[before:]
    assert {e.operation for e in calls} == {"persons_by_nin"} and all(e.keys <= 100 for e in calls)
    assert {e.request_id for e in calls} == {"wash-1"}
    asked = {ids[n][0] for n in current[:150] + ceased[:5]}
    assert person_keys(empty) == asked
    assert_holds_as_replica(empty, replica, asked)


def test_a_person_purged_after_it_was_seen_held_is_fetched_again_not_answered_missing(
        fake: RunningFake, replica: Engine, empty: Engine) -> None:
    """The retention purge (another process) deletes a person this process has seen held: the pending touch is
    not an error (no foreign key failure kept for ever), and the number is asked for again, not taken as held."""
    from sqlalchemy import delete, select

    from store import schema as s

    number = _split(replica)[0][0]
    rt = source_of(empty, fake)
    try:
        rt.ensure_numbers([number])  # fetched and stored
        rt.flush()
        with empty.begin() as conn:  # as the purge does: the person and (by cascade) its rows
            conn.execute(delete(s.person))
        rt._touched.clear()  # a touch is due again (as an hour later)
        rt.ensure_numbers([number])  # seen held from the cache: a touch is pending for a deleted person
        rt.flush()  # no IntegrityError, and nothing left pending
        assert not rt._pending
        before = len(journal(fake))
        rt.ensure_numbers([number])
        assert len(journal(fake)) == before + 1  # asked for again
        with empty.connect() as conn:
            assert conn.execute(select(s.person_identifier.c.person_id)
                                .where(s.person_identifier.c.number == number)).first() is not None
    finally:
        rt.close()
