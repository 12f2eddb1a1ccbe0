"""Every index of the per-person tables is used by a statement the faces run (issue 19: no index that no query
uses). The store's read paths — lookups by number (PREG, PIX), the current views (PDQ), briefs (Filematch wash),
search by every kind of criteria (searchPerson, PDQ), identification's blocking passes (Filematch) and the writer's
own reads — run on a loaded SQLite store with SQLite's statement trace on; each statement traced is then planned
with EXPLAIN QUERY PLAN, and the indexes the plans name must be every index of those tables. An index dropped
from a plan (or one added that nothing reads) fails here. The store's ids and keys are the rowid and unique key
the plans name as the primary key or ``sqlite_autoindex_person_1``. ``ix_person_identifier_person_id`` is the
writer's: it replaces a person's identifier rows through it (measured: 13 B a person at 100k)."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, inspect, select

from store import current, wash
from store import schema as s
from store.derived import check_views
from store.engine import make_engine, migrate
from store.loading import load_population
from store.matching import IdentifyQuery, identify
from store.repository import PersonRepository
from store.search import ALL_RELEASABLE, SearchCriteria, search
from store.synthetic import generate_population

_TABLES = (s.person, s.person_identifier, s.person_search, s.person_given_word, s.person_brief, s.person_current)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    work = tmp_path_factory.mktemp("index-use")
    generate_population(work / "pop", 1500, 29, feed_days=0)
    eng = make_engine(f"sqlite:///{work / 'store.sqlite'}")
    migrate(eng)
    load_population(eng, work / "pop", workers=1)
    yield eng
    eng.dispose()  # its pooled connections closed now, not by a later test's garbage collection (a ResourceWarning)


def _workload(conn: Connection) -> None:
    """What the faces ask of the store, once for each kind of statement."""
    repo = PersonRepository(conn)
    rows = conn.execute(select(s.person_search).where(s.person_search.c.street_key.is_not(None))
                        .where(s.person_search.c.birth_date.is_not(None)).limit(20)).mappings().all()
    numbers = [n for (n,) in conn.execute(select(s.person_identifier.c.number).limit(20))]
    repo.find(numbers[0])
    repo.find_many(numbers)
    repo.ids_for_numbers(numbers)
    ids = list(repo.ids_for_numbers(numbers).values())
    repo.load(ids)
    repo.id_for_key("p000000001")
    current.view_by_number(conn, numbers[1])
    current.views(conn, ids)
    wash.find_briefs(conn, numbers)
    wash.load_briefs(conn, ids)
    r = rows[0]
    family, given = r["family_key"], r["given_key"].split()[0]
    born: dt.date = r["birth_date"]
    criteria = [
        SearchCriteria(family=family, birth_year=born.year),
        SearchCriteria(given=given, family=family, birth_date=born),
        SearchCriteria(family=family, kommune=r["kommune"]),
        SearchCriteria(family=family[:4], postnummer=r["postnummer"]),
        SearchCriteria(family=family, street=r["street_key"]),
        SearchCriteria(given=given, birth_year=born.year),
        SearchCriteria(given=given, family=family, birth_year=born.year),
        # person_given_word's two orders: the longer name asked is enumerated (store.search._given_word_block)
        SearchCriteria(given=given[:1], family=family, birth_year=born.year),
        SearchCriteria(given=given, family=family[:1], birth_year=born.year),
    ]
    for c in criteria:
        search(conn, c, scope=ALL_RELEASABLE, limit=2000)
    for q in (IdentifyQuery(given=given, family=family, birth_date=born, postnummer=r["postnummer"],
                            street=r["street_key"], kommune=r["kommune"]),
              IdentifyQuery(given=given + "x", family=family + "x", birth_date=born + dt.timedelta(days=40),
                            postnummer=r["postnummer"], street=r["street_key"], number="01010100000")):
        identify(conn, q, scope=ALL_RELEASABLE)


@contextlib.contextmanager
def _traced(conn: Connection) -> Iterator[list[str]]:
    """The statements SQLite runs on ``conn`` inside the block, with their values."""
    traced: list[str] = []
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.set_trace_callback(traced.append)  # type: ignore[attr-defined]
    try:
        yield traced
    finally:
        raw.set_trace_callback(None)  # type: ignore[attr-defined]


_USING = re.compile(r"(?:USING (?:COVERING )?INDEX|USING INTEGER PRIMARY KEY|USING PRIMARY KEY)\s*(\S*)")


def test_every_index_of_the_person_tables_is_in_a_plan_the_faces_run(engine: Engine) -> None:
    with engine.connect() as conn:
        with _traced(conn) as traced:
            _workload(conn)
        used: set[str] = set()
        for sql in {t for t in traced if t.lstrip().upper().startswith(("SELECT", "WITH"))}:
            for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"):
                used.update(m for m in _USING.findall(row[-1]) if m)
    insp = inspect(engine)
    indexes = {str(ix["name"]) for t in _TABLES for ix in insp.get_indexes(t.name)}
    assert indexes, "no index found: the test reads the wrong tables"
    # the indexes no read of a face names: the writer's (next test)
    assert indexes - used == {"ix_person_identifier_person_id", "ix_person_given_word_person_id"}, \
        f"indexes no face uses: {sorted(indexes - used)}"


def test_the_writer_and_the_views_check_read_through_the_person_id_index(engine: Engine) -> None:
    """``ix_person_identifier_person_id``: the writer reads a person's stored rows by person id (to write only what
    changed) and ``views rebuild`` compares them by person id."""
    with engine.connect() as conn:
        with _traced(conn) as traced, conn.begin():
            repo = PersonRepository(conn)
            person = repo.get(1)
            assert person is not None
            repo.save(person)
            conn.rollback()
        for table in ("person_identifier", "person_given_word"):
            reads = [sql for sql in traced if f"FROM {table.upper()}" in sql.upper()
                     and f"{table.upper()}.PERSON_ID IN" in sql.upper()]
            plans = [row[-1] for sql in reads for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            assert any(f"ix_{table}_person_id" in p for p in plans), plans
    assert check_views(engine).persons == 1500
