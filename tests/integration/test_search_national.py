"""Search at national size (issue 19): given + family + birth year is answered from the index of the
(year, family) block, and "too broad" is about the answer, not the block (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import store.search
from store.document import from_document
from store.engine import make_engine, migrate
from store.errors import TooManyHits
from store.repository import PersonRepository
from store.search import ALL_RELEASABLE, SearchCriteria, search
from tests.factories import person_doc

GIVEN = ["Ola", "Per", "Jan", "Lars", "Knut", "Arne", "Geir", "Odd", "Tor", "Rune"]


@pytest.fixture
def hansens(engine: Engine) -> dict[str, int]:
    """60 Hansens born in 1980 (more than one answer may hold), one of them Kari; a Hansen born 1981."""
    ids = {}
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i in range(60):
            given = "Kari" if i == 17 else GIVEN[i % len(GIVEN)]
            born = f"1980-{1 + i % 12:02d}-{1 + i // 12:02d}"
            ids[f"h{i}"] = repo.save(from_document(person_doc(f"h{i}", given=given, family="Hansen", born=born,
                                                              gender="kvinne" if given == "Kari" else "mann")))
        ids["other"] = repo.save(from_document(person_doc("other", given="Kari", family="Hansen", born="1981-03-03",
                                                          gender="kvinne")))
    return ids


def test_a_broad_block_with_a_narrow_answer_is_answered(engine: Engine, hansens: dict[str, int]) -> None:
    with engine.connect() as conn:
        with pytest.raises(TooManyHits):
            search(conn, SearchCriteria(family="Hansen", birth_year=1980), scope=ALL_RELEASABLE, limit=50)
        hits = search(conn, SearchCriteria(given="Kari", family="Hansen", birth_year=1980), scope=ALL_RELEASABLE,
                      limit=50)
        assert [h.person_id for h in hits] == [hansens["h17"]]
        ten = search(conn, SearchCriteria(given="Ola", family="Hansen", birth_year=1980), scope=ALL_RELEASABLE,
                     limit=50)
        assert len(ten) == 6 and hansens["h0"] in {h.person_id for h in ten}


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A store built by the migrations (which must create the index the schema declares)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'search.sqlite'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_given_family_and_year_read_a_covering_index(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Any]] = []
    from store.engine import fetch_all


    def capture(conn: Any, sql: str, params: Any) -> Any:
        seen.append((sql, params))
        return fetch_all(conn, sql, params)

    monkeypatch.setattr(store.search, "fetch_all", capture)
    with sqlite_engine.connect() as conn:
        search(conn, SearchCriteria(given="Kari", family="Hansen", birth_year=1980), scope=ALL_RELEASABLE)
    statement, params = seen[-1]
    with sqlite_engine.connect() as conn:
        plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", tuple(params)))
    # Not a covering index since the search scores its hits by match probability (issue 16: it reads the scored
    # columns of each hit); the given-name key is still tested on the index entry, before a row is read.
    assert "USING INDEX ix_person_search_birth_year_family_key_given_key (birth_year=? AND family_key>? " \
           "AND family_key<?)" in plan.replace("COVERING INDEX", "INDEX"), plan
