"""Driver-level SQL is built from store.schema's names (store.engine.driver_statement, and the column-name
constants of store.search and store.matching): a rename in store/schema.py breaks the modules that would run
stale SQL at import, which this test proves by importing each one against a schema with one of its columns
renamed. Every compiled statement runs on a migrated store, SQLite and PostgreSQL, with its placeholders."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import types

import pytest
from sqlalchemy import Column, Engine, MetaData, Table

import store
import store.audit_index
from store import current, matching, repository, schema, search, wash
from store.engine import driver_statement, fetch_all, run_driver

CASES = [  # (module, table, column its driver SQL names)
    ("store.current", "person_current", "current"),
    ("store.current", "person_identifier", "number"),
    ("store.wash", "person_brief", "brief"),
    ("store.wash", "person_identifier", "person_id"),
    ("store.matching", "person_search", "street_key"),
    ("store.matching", "person_identifier", "number"),
    ("store.search", "person_search", "family_key"),
    ("store.search", "person_search", "address_protection"),
    ("store.repository", "person_identifier", "number"),
    ("store.audit_index", "audit_person", "gen"),
    ("store.audit_index", "audit_event", "returned"),
    ("server.access.audit", "audit_person", "role"),
    ("server.access.throttle", "auth_throttle", "trusted_until"),
]


def _schema_with(table: str, column: str | None) -> types.ModuleType:
    """store.schema, with ``column`` of ``table`` renamed (None: an unchanged copy of the table)."""
    fake = types.ModuleType("store.schema")
    fake.__dict__.update(vars(schema))
    old: Table = getattr(schema, table)
    cols = [Column(f"{c.name}_renamed" if c.name == column else c.name, c.type, primary_key=c.primary_key)
            for c in old.columns]
    setattr(fake, table, Table(table, MetaData(), *cols))
    return fake


def _import_against(monkeypatch: pytest.MonkeyPatch, module: str, fake: types.ModuleType) -> None:
    monkeypatch.setitem(sys.modules, "store.schema", fake)
    monkeypatch.setattr(store, "schema", fake)
    importlib.import_module(module)  # loaded (with its parents) before it is replaced
    parent, name = module.rsplit(".", 1)
    monkeypatch.setattr(sys.modules[parent], name, getattr(sys.modules[parent], name))  # restored after the test
    monkeypatch.delitem(sys.modules, module)
    importlib.import_module(module)


@pytest.mark.parametrize(("module", "table", "column"), CASES)
def test_a_renamed_column_breaks_the_module_whose_sql_names_it(monkeypatch: pytest.MonkeyPatch, module: str,
                                                               table: str, column: str) -> None:
    with monkeypatch.context() as m:
        _import_against(m, module, _schema_with(table, None))  # the copy itself imports fine
    with monkeypatch.context() as m, pytest.raises(AttributeError, match=column):
        _import_against(m, module, _schema_with(table, column))
    assert sys.modules[module] is importlib.import_module(module)
    assert repository.PersonRepository is store.repository.PersonRepository


def test_every_driver_statement_runs_on_a_migrated_store(engine: Engine) -> None:
    with engine.connect() as conn:
        assert run_driver(conn, current._VIEWS, {"ids": [1, 2, 3]}, ids=3) == []
        assert run_driver(conn, current._BY_NUMBER, {"number": "01010100000"}) == []
        assert run_driver(conn, wash._BY_NUMBERS, {"numbers": ["01010100000"]}, numbers=1) == []
        assert run_driver(conn, wash._BY_IDS, {"ids": [1, 2]}, ids=2) == []
        for columns in (matching._COLS, matching._COLS_LEVEL):
            near = matching._near_sql(conn.dialect, 2, columns)
            assert fetch_all(conn, near, ["01010100000", "02020200000"]) == []
        sql = f"SELECT {search._ID} FROM {search._TABLE} WHERE {search._BIRTH_DATE} = " + (
            "?" if conn.dialect.paramstyle == "qmark" else "%s")
        assert driver_statement(current._VIEWS, conn.dialect, ids=2).args({"ids": [7, 8]}) == (7, 8)
        stmt = driver_statement(current._BY_NUMBER, conn.dialect)
        assert stmt.args({"number": "x"})[0] == "x" and stmt.sql.count("?" if conn.dialect.name == "sqlite" else "%s") \
            == len(stmt.args({"number": "x"}))
        day = dt.date(1980, 5, 17)
        assert fetch_all(conn, sql, [day.isoformat() if conn.dialect.name == "sqlite" else day]) == []
