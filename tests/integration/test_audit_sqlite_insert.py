"""The SQLite audit insert (explicit ids, driver-level executemany) stores exactly what the generic
INSERT … RETURNING path stores, and what query_audit reads back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import text

from server.access import AuditRecord, query_audit
from server.access.audit import _insert_returning, _insert_sqlite
from store.engine import make_engine, migrate

RECORDS = [
    AuditRecord(dt.datetime(2026, 11, 22, 2, 30, 1, 123456), "mirth", "hl7", "QBP^Q23", "127.0.0.1", None, "AA",
                ("17858026105",), ("17858026105", "57858036757")),
    AuditRecord(dt.datetime(2026, 11, 22, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), None, "soap",
                "HentPerson", None, "behandling ø", "AE:204", ("x" * 40, "1\x002", " 123 "), ()),
    AuditRecord(dt.datetime(2026, 11, 22, 4, 0), "a" * 150, "hl7", "QBP^Q22", "::1", "p" * 300, "AA", (), ()),
]


def _rows(url: str, table: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]  # noqa: S608
    engine.dispose()
    return rows


def test_sqlite_insert_stores_what_the_generic_insert_stores(tmp_path: Path) -> None:
    urls = {}
    for name, insert in (("generic", _insert_returning), ("sqlite", _insert_sqlite)):
        urls[name] = f"sqlite:///{tmp_path / name}.sqlite"
        engine = make_engine(urls[name])
        migrate(engine)
        insert(engine, RECORDS[:2])
        insert(engine, RECORDS[2:])
        insert(engine, RECORDS)
        engine.dispose()
    for table in ("audit_event", "audit_person"):
        assert _rows(urls["sqlite"], table) == _rows(urls["generic"], table)
    engine = make_engine(urls["sqlite"])
    got = query_audit(engine, limit=10)
    engine.dispose()
    assert len(got) == 6
    assert {(r.account, r.asked, r.returned) for r in got} == {
        (RECORDS[0].account, RECORDS[0].asked, RECORDS[0].returned), (None, ("x" * 40, "12", " 123 "), ()),
        ("a" * 100, (), ())}
