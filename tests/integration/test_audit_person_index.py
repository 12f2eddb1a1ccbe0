"""The audit trail's person index on SQLite, in generations written in bulk behind a watermark
(store/audit_index.py): a record is found by person from its commit on, its audit_person rows appear once
its generation is complete, they are the rows the immediate (PostgreSQL) path writes, and migrations keep
the invariant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, text

import server.access.audit as audit_module
from server.access import AuditRecord, AuditWriter, query_audit
from server.access.audit import _event_row, _person_numbers, index_persons
from store import audit_index
from store import schema as s
from store.engine import _MIGRATIONS, make_engine, migrate


def _record(i: int, asked: tuple[str, ...], returned: tuple[str, ...]) -> AuditRecord:
    return AuditRecord(dt.datetime(2026, 11, 22, 5) + dt.timedelta(seconds=i), "mirth", "hl7", "QBP^Q23",
                       "127.0.0.1", None, "AA", asked, returned)


RECORDS = [_record(i, (f"{10_000_000_000 + i * 7919 % 1000:011d}", " 1234 "),
                   (f"{10_000_000_000 + i * 7919 % 1000:011d}", f"{50_000_000_000 + i:011d}", "x" * 12))
           for i in range(23)]


def _persons(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text("SELECT audit_id, number, role FROM audit_person")))


def _mark(engine: Engine) -> int:
    with engine.connect() as conn:
        return audit_index.indexed_upto(conn)


@pytest.fixture()
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _persons_with_gen(engine: Engine) -> list[tuple[int, str, str, int]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text("SELECT audit_id, number, role, gen FROM audit_person")))


def test_person_rows_are_written_in_bulk_and_found_before(sqlite_engine: Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_index, "GENERATION", 10)
    with AuditWriter(sqlite_engine, mode="batched", max_batch=4) as writer:
        for r in RECORDS:
            writer.write(r)
            assert writer.flush(timeout=10)
            mark = _mark(sqlite_engine)
            with sqlite_engine.connect() as conn:
                newest = conn.execute(text("SELECT max(id) FROM audit_event")).scalar_one()
            assert mark == newest // 10 * 10  # whole generations of 10 events are indexed, no more
            # found by person at once, whether its rows are written yet or not
            assert r in query_audit(sqlite_engine, person=r.returned[1], limit=5)
            assert r in query_audit(sqlite_engine, person=r.asked[0].strip(), limit=100)
    assert _mark(sqlite_engine) == 20
    indexed = set(range(1, 21))
    assert {a for a, _, _ in _persons(sqlite_engine)} == indexed
    assert index_persons(sqlite_engine) == len(RECORDS) - len(indexed)
    assert _mark(sqlite_engine) == len(RECORDS)
    expected = sorted((i, n, role, (i - 1) // 10) for i, r in enumerate(RECORDS, start=1)
                      for n, role in _person_numbers(r))
    assert _persons_with_gen(sqlite_engine) == expected
    assert index_persons(sqlite_engine) == 0
    # the same answers from the index as from the lists
    for r in RECORDS[::5]:
        assert query_audit(sqlite_engine, person=r.returned[1], limit=5) == [r]
    assert len(query_audit(sqlite_engine, person="1234", limit=100)) == len(RECORDS)
    assert query_audit(sqlite_engine, person="x" * 12, limit=100) == []  # over 11 characters: not indexed


def test_person_query_combines_with_account_and_time(sqlite_engine: Engine) -> None:
    writer = AuditWriter(sqlite_engine, mode="sync")
    for r in RECORDS[:6]:
        writer.write(r)
    writer.write(AuditRecord(dt.datetime(2026, 11, 22, 6), "lab", "soap", "getPerson", None, None, "AA",
                             ("55555555555",), ()))
    assert _mark(sqlite_engine) == 0  # nothing indexed yet: every answer below comes from the lists
    assert [r.account for r in query_audit(sqlite_engine, person="1234", account="lab")] == []
    assert len(query_audit(sqlite_engine, person="1234", since=dt.datetime(2026, 11, 22, 5, 0, 3))) == 3
    assert [r.account for r in query_audit(sqlite_engine, person="55555555555")] == ["lab"]


@pytest.fixture()
def old_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    yield engine
    engine.dispose()


def test_migration_starts_the_watermark_after_the_events_indexed_before(old_engine: Engine) -> None:
    engine = old_engine
    migrate(engine, "0008")
    with engine.begin() as conn:  # what revision 0008's writer stored: events with their rows
        for i, r in enumerate(RECORDS[:5], start=1):
            conn.execute(insert(s.audit_event).values(id=i, **_event_row(r)))
            conn.execute(text("INSERT INTO audit_person (audit_id, number, role) VALUES (:a, :n, :r)"),
                         [{"a": i, "n": n, "r": role} for n, role in _person_numbers(r)])
    before = _persons(engine)
    migrate(engine)
    assert _mark(engine) == 5
    assert query_audit(engine, person=RECORDS[2].returned[1]) == [RECORDS[2]]  # found in the index
    audit_module._insert_sqlite(engine, RECORDS[5:8])
    assert index_persons(engine) == 3
    expected = sorted((i, n, role) for i, r in enumerate(RECORDS[:8], start=1) for n, role in _person_numbers(r))
    assert _persons(engine) == expected and set(before) <= set(expected)
    # downgrading writes the rows of the events past the watermark: 0008 readers expect them
    audit_module._insert_sqlite(engine, RECORDS[8:10])
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    expected = sorted((i, n, role) for i, r in enumerate(RECORDS[:10], start=1) for n, role in _person_numbers(r))
    assert _persons(engine) == expected
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM store_state WHERE key = :k"),
                            {"k": audit_index.INDEXED_KEY}).scalar_one() == 0


def test_person_query_seeks_the_index_per_generation(sqlite_engine: Engine) -> None:
    sql = audit_index.person_events_sql("sqlite", tail=True)
    with sqlite_engine.connect() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {sql}", {"number": "1234", "top": 40, "mark": 0}))
    assert "SEARCH audit_person USING COVERING INDEX ix_audit_person_gen_number_audit_id (gen=? AND number=?)" in plan
    assert "SEARCH audit_event USING INTEGER PRIMARY KEY (rowid>?)" in plan  # the tail: past the watermark only


def test_person_query_reads_every_generation_on_both_stores(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_index, "GENERATION", 3)  # 23 records: eight generations
    writer = AuditWriter(engine, mode="sync")
    for r in RECORDS:
        writer.write(r)
    for r in RECORDS:
        assert query_audit(engine, person=r.returned[1]) == [r]
    assert len(query_audit(engine, person="1234", limit=100)) == len(RECORDS)
    index_persons(engine)
    with engine.connect() as conn:
        gens = {g for (g,) in conn.execute(text("SELECT DISTINCT gen FROM audit_person"))}
    assert gens == set(range(8))
    for r in RECORDS:
        assert query_audit(engine, person=r.returned[1]) == [r]
