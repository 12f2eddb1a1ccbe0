"""The statement deadline (store.engine) and migration 0011 (search rows know their address level), on both databases.

The deadline bounds the reads of a Reader use or a ``deadline()`` block and nothing else: a query past it is
stopped by the database and raises QueryTimeout, the connection reads again afterwards, and the connections of
loads, ingests and migrations on the same engine run unbounded (on PostgreSQL the session setting is reset
when a reading connection goes back to the pool).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select, text

from store import schema as s
from store.document import from_document, to_document
from store.engine import Reader, deadline, make_engine, migrate
from store.errors import QueryTimeout, StoreUnavailable
from store.normalize import street_key
from store.repository import person_rows
from tests.factories import person_doc

HEAVY_SQLITE = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) "
                "SELECT count(*) FROM c")


def _heavy(engine: Engine) -> str:
    return "SELECT pg_sleep(1.5)" if engine.dialect.name == "postgresql" else HEAVY_SQLITE


@pytest.fixture
def bounded(db_url: str) -> Iterator[Engine]:
    # PostgreSQL sleeps 1.5 s past a 0.2 s deadline; SQLite counts to 300,000 (~0.1 s) past a 1 ms one
    engine = make_engine(db_url, statement_timeout=0.2 if db_url.startswith("postgresql") else 0.001)
    yield engine
    engine.dispose()


def test_a_reader_use_past_the_deadline_is_stopped_and_the_next_one_reads(bounded: Engine) -> None:
    reader = Reader(bounded)
    started = time.perf_counter()
    with pytest.raises(QueryTimeout) as caught, reader.connection() as conn:
        conn.exec_driver_sql(_heavy(bounded)).all()
    assert time.perf_counter() - started < 1.2
    assert isinstance(caught.value, StoreUnavailable) and caught.value.soap_fault_code == "Server.Unavailable"
    assert caught.value.hl7_error_code == "207" and "statement deadline" in caught.value.message
    with reader.connection() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    reader.close()


def test_a_deadline_block_rolls_back_so_the_connection_reads_on(bounded: Engine) -> None:
    with bounded.connect() as conn:
        with pytest.raises(QueryTimeout), deadline(conn):
            conn.exec_driver_sql(_heavy(bounded)).all()
        with deadline(conn):
            assert conn.exec_driver_sql("SELECT 2").scalar() == 2


def test_other_connections_of_the_engine_are_not_bounded(bounded: Engine) -> None:
    reader = Reader(bounded)
    with reader.connection() as conn:  # a reading connection, then back to the pool
        conn.exec_driver_sql("SELECT 1").all()
    reader.close()
    bounded.update_execution_options(statement_timeout=1e-9)  # any armed deadline would stop the next query
    with bounded.connect() as conn:  # as a load or a migration takes it: no deadline
        if bounded.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
        else:
            assert conn.exec_driver_sql(HEAVY_SQLITE).scalar() == 300000


def test_an_engine_without_a_deadline_runs_a_block_unbounded(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn, deadline(conn):
            assert conn.exec_driver_sql(HEAVY_SQLITE.replace("300000", "30000")).scalar() == 30000
    finally:
        engine.dispose()


_person_text = sa.table("person", *(sa.column(c.name, sa.Text() if c.name == "doc" else c.type) for c in s.person.c))


def test_migration_0011_stores_levels_and_drops_strengt_fortrolig_keys(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "0010")
        levels = ("ugradert", "fortrolig", "strengtFortrolig")
        now = dt.datetime(2026, 12, 3, 8, 0)
        with engine.begin() as conn:  # the rows revision 0010's writer stored: every address key indexed
            for pid, level in enumerate(levels, start=1):
                person = from_document(person_doc(f"m-{level}", protection=level, street="Kirkeveien"))
                for table, rows in person_rows(person, pid, now).items():
                    if table is s.person_given_word:  # created by migration 0033, from person_search
                        continue
                    if table is s.person_search:
                        rows = [{**{k: v for k, v in rows[0].items() if k != "address_protection"},
                                 "kommune": "0301", "postnummer": "0150", "street_key": street_key("Kirkeveien")}]
                    if table is s.person:  # the document as JSON text, as stored before migration 0031
                        conn.execute(_person_text.insert(), [{**rows[0], "doc": orjson.dumps(to_document(person))
                                                              .decode()}])
                        continue
                    conn.execute(table.insert(), rows)
        migrate(engine)
        ps = s.person_search
        with engine.connect() as conn:
            got = conn.execute(select(ps.c.address_protection, ps.c.kommune, ps.c.postnummer, ps.c.street_key)
                               .order_by(ps.c.person_id)).all()
            plan_sql = ("EXPLAIN SELECT address_protection FROM person_search WHERE birth_date = '1980-05-17'"
                        if engine.dialect.name == "postgresql" else
                        "EXPLAIN QUERY PLAN SELECT address_protection FROM person_search WHERE birth_date = "
                        "'1980-05-17'")
            plan = " ".join(str(r) for r in conn.execute(text(plan_sql)))
        assert [tuple(r) for r in got] == [("ugradert", "0301", "0150", "kirkev"),
                                           ("fortrolig", "0301", "0150", "kirkev"),
                                           ("strengtFortrolig", None, None, None)]
        if engine.dialect.name == "sqlite":  # the covering index still covers what identification reads
            assert "COVERING INDEX ix_person_search_birth_date_covering" in plan
    finally:
        engine.dispose()
