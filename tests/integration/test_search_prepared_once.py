"""A search's statement is compiled once and re-used, not compiled again at every execution (issue 12).

SQLite marks a statement to be compiled again whenever a parameter that the planner looked at is bound
anew; a ``LIKE`` whose pattern is a parameter is such a parameter. A search bound that way re-prepared at
every execution (callgrind: ``sqlite3Reprepare`` once per search, ~80 % of a family + year search's
instructions). This test asks SQLite itself, through the C API's statement counter
(``sqlite3_stmt_status(…, SQLITE_STMTSTATUS_REPREPARE)``), on the library Python's ``sqlite3`` uses, and shows
on a LIKE statement that the counter does count.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import store.search as search_module
from store.document import from_document
from store.engine import fetch_all, make_engine, migrate
from store.repository import PersonRepository
from store.search import ALL_RELEASABLE, SearchCriteria, search
from tests.factories import person_doc

SQLITE_OK, SQLITE_ROW, SQLITE_DONE = 0, 100, 101
SQLITE_STMTSTATUS_REPREPARE = 5
SQLITE_TRANSIENT = ctypes.c_void_p(-1)


def _library() -> Any:
    name = ctypes.util.find_library("sqlite3")
    if name is None:
        pytest.skip("no shared libsqlite3 to ask (Python's sqlite3 may be linked statically)")
    lib = ctypes.CDLL(name)
    lib.sqlite3_libversion.restype = ctypes.c_char_p
    if lib.sqlite3_libversion().decode() != sqlite3.sqlite_version:
        pytest.skip("the shared libsqlite3 is not the one Python's sqlite3 uses")
    lib.sqlite3_open_v2.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_void_p]
    lib.sqlite3_prepare_v2.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                       ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    lib.sqlite3_bind_text.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
    lib.sqlite3_bind_int64.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int64]
    for fn in ("sqlite3_step", "sqlite3_reset", "sqlite3_finalize"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    lib.sqlite3_stmt_status.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.sqlite3_close_v2.argtypes = [ctypes.c_void_p]
    return lib


def _reprepares(lib: Any, path: Path, sql: str, bindings: list[list[Any]]) -> tuple[int, list[int]]:
    """Execute ``sql`` once per binding on one prepared statement; SQLite's re-prepare count and the rows."""
    db, stmt = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.sqlite3_open_v2(str(path).encode(), ctypes.byref(db), 1, None) == SQLITE_OK  # read only
    try:
        assert lib.sqlite3_prepare_v2(db, sql.encode(), -1, ctypes.byref(stmt), None) == SQLITE_OK
        rows = []
        for params in bindings:
            lib.sqlite3_reset(stmt)
            for i, value in enumerate(params, 1):
                if isinstance(value, int):
                    lib.sqlite3_bind_int64(stmt, i, value)
                else:
                    raw = value.encode()
                    lib.sqlite3_bind_text(stmt, i, raw, len(raw), SQLITE_TRANSIENT)
            n = 0
            while (rc := lib.sqlite3_step(stmt)) == SQLITE_ROW:
                n += 1
            assert rc == SQLITE_DONE
            rows.append(n)
        return lib.sqlite3_stmt_status(stmt, SQLITE_STMTSTATUS_REPREPARE, 0), rows
    finally:
        lib.sqlite3_finalize(stmt)
        lib.sqlite3_close_v2(db)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    engine: Engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i, (given, family) in enumerate([("Kari", "Nordmann"), ("Anne-Marie", "Nordmann"), ("Per", "Bergum")]):
            repo.save(from_document(person_doc(f"p{i}", given=given, family=family, born="1980-05-17",
                                               gender="kvinne", kommune="0301", postnummer="0150", street="Storgata")))
    engine.dispose()
    return path


def _statement(path: Path, criteria: list[SearchCriteria],
               monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[list[Any]]]:
    """The SQL the search sends for each of ``criteria`` (one text) and each one's parameters."""
    seen: list[tuple[str, list[Any]]] = []
    real = fetch_all

    def spy(conn: Any, sql: str, params: Any) -> Any:
        seen.append((sql, list(params)))
        return real(conn, sql, params)

    monkeypatch.setattr(search_module, "fetch_all", spy)
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        for c in criteria:
            search(conn, c, scope=ALL_RELEASABLE)
    engine.dispose()
    texts = {sql for sql, _ in seen}
    assert len(texts) == 1, "the same kind of criteria builds the same statement"
    return texts.pop(), [params for _, params in seen]


def test_a_family_and_year_search_is_prepared_once_for_any_names(store_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lib = _library()
    criteria = [SearchCriteria(family=f, birth_year=1980) for f in ("Nordmann", "Berg", "Bergum", "Nordmann")]
    sql, bindings = _statement(store_path, criteria, monkeypatch)
    reprepared, rows = _reprepares(lib, store_path, sql, bindings)
    assert rows == [2, 1, 1, 2]
    assert reprepared == 0


def test_the_counter_counts_a_like_bound_anew(store_path: Path) -> None:
    lib = _library()
    sql = "SELECT person_id FROM person_search WHERE given_key LIKE ?"
    reprepared, rows = _reprepares(lib, store_path, sql, [["% marie%"], ["kari%"], ["% marie%"]])
    assert rows == [1, 1, 1]
    assert reprepared == 3  # once per binding of the pattern (the first execution included)


def test_a_given_name_word_search_is_prepared_once(store_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = _library()
    criteria = [SearchCriteria(given=g, family="Nordmann", birth_date=dt.date(1980, 5, 17))
                for g in ("Kari", "Marie", "Ola", "Anne")]
    sql, bindings = _statement(store_path, criteria, monkeypatch)
    reprepared, rows = _reprepares(lib, store_path, sql, bindings)
    assert rows == [1, 1, 0, 1]  # "Marie": Anne-Marie by her second given name
    assert reprepared == 0
