"""The SQLite audit insert (explicit ids, driver-level executemany) stores exactly what the generic
INSERT … RETURNING path stores, and what query_audit reads back."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from server.access import AuditRecord, query_audit
from server.access.audit import _insert_returning, _insert_sqlite, _json_list, index_persons
from store import audit_index
from store.engine import make_engine, migrate

RECORDS = [
    AuditRecord(dt.datetime(2026, 11, 22, 2, 30, 1, 123456), "mirth", "hl7", "QBP^Q23", "127.0.0.1", None, "AA",
                ("17858026105",), ("17858026105", "57858036757")),
    AuditRecord(dt.datetime(2026, 11, 22, 3, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), None, "soap",
                "HentPerson", None, "behandling ø", "AE:204", ("x" * 40, "1\x002", " 123 "), ()),
    AuditRecord(dt.datetime(2026, 11, 22, 4, 0), "a" * 150, "hl7", "QBP^Q22", "::1", "p" * 300, "AA", (), ()),
    AuditRecord(dt.datetime(2026, 11, 22, 4, 0, 0, 1), "b", "soap", "getPerson", "10.0.0.1", None, "AA",
                ("ÆØÅ12", "", "a\"b", "1\\2"), ("17858026105", "D\u00e9j\u00e0", "12345678901")),
]


def _rows(url: str, table: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    # audit_person's own ids follow the order rows were written in: on SQLite, sorted by number
    sql = ("SELECT * FROM audit_event ORDER BY id" if table == "audit_event" else
           "SELECT audit_id, number, role FROM audit_person ORDER BY audit_id, role, number")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql))]
    engine.dispose()
    return rows


@pytest.mark.parametrize("json1", [True, False], ids=["json_each", "executemany"])
def test_sqlite_insert_stores_what_the_generic_insert_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             json1: bool) -> None:
    monkeypatch.setattr(audit_index, "_JSON1", [json1])
    urls = {}
    for name, insert in (("generic", _insert_returning), ("sqlite", _insert_sqlite)):
        urls[name] = f"sqlite:///{tmp_path / name}.sqlite"
        engine = make_engine(urls[name])
        migrate(engine)
        insert(engine, RECORDS[:2])
        insert(engine, RECORDS[2:])
        insert(engine, RECORDS)
        if insert is _insert_sqlite:
            index_persons(engine)  # person rows of the events past the watermark (store/audit_index.py)
        engine.dispose()
    for table in ("audit_event", "audit_person"):
        assert _rows(urls["sqlite"], table) == _rows(urls["generic"], table)
    engine = make_engine(urls["sqlite"])
    got = query_audit(engine, limit=10)
    engine.dispose()
    assert len(got) == 8
    assert {(r.account, r.asked, r.returned) for r in got} == {
        (RECORDS[0].account, RECORDS[0].asked, RECORDS[0].returned), (None, ("x" * 40, "12", " 123 "), ()),
        ("a" * 100, (), ()), ("b", RECORDS[3].asked, RECORDS[3].returned)}


@pytest.mark.parametrize("values", [(), ("17858026105",), ("17858026105", "57858036757"), ("ÆØÅ",), ("",),
                                    ("a b",), ('"',), ("\\",), ("x\x00y",), ("\u2028",), ("AbC123", "é")])
def test_number_lists_are_written_as_the_json_serialiser_writes_them(values: tuple[str, ...]) -> None:
    assert _json_list(values) == json.dumps([v.replace("\x00", "") for v in values])
