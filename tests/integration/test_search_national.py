"""Search at national size (issue 19): given + family + birth year seeks the given name within the (year, family)
block (person_given_word), and "too broad" is about the answer, not the block (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
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


def _plan(engine: Engine, criteria: SearchCriteria, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite's EXPLAIN QUERY PLAN of the statement ``search`` runs for ``criteria``."""
    seen: list[tuple[str, Any]] = []
    from store.engine import fetch_all

    def capture(conn: Any, sql: str, params: Any) -> Any:
        seen.append((sql, params))
        return fetch_all(conn, sql, params)

    monkeypatch.setattr(store.search, "fetch_all", capture)
    with engine.connect() as conn:
        search(conn, criteria, scope=ALL_RELEASABLE)
        statement, params = seen[-1]
        return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", tuple(params)))


def test_given_family_and_year_seek_the_given_word_within_each_family_key(sqlite_engine: Engine,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(sqlite_engine, SearchCriteria(given="Kari", family="Hansen", birth_year=1980), monkeypatch)
    # the given name is seeked (a word of any given name, person_given_word) for each distinct family key of the
    # range, found one seek each (the recursive step); each hit's scored columns read by its person id
    assert "SEARCH person_given_word USING COVERING INDEX ix_person_given_word_birth_year_family_key_word_person_id " \
           "(birth_year=? AND family_key=? AND word>? AND word<?)" in plan, plan
    assert "RECURSIVE STEP" in plan and "SEARCH person_search USING INTEGER PRIMARY KEY (rowid=?)" in plan, plan
    assert "ix_person_search_birth_year" not in plan, plan


# -- family + street: each street key of the range seeked with the family (store.search._street_block) ---------

STREETS = ["Kirkeveien", "Kirkevegen", "Kirkevollen", "Kirkegata", "Storgata", "Storgata Nord", "Storgaten"]
FAMILIES = ["Hansen", "Hansen Berg", "Hanssen", "Berg", "Bergersen", "Olsen"]


@pytest.fixture
def streets(engine: Engine) -> Engine:
    """Every family on every street (a key and keys extending it: kirkev / kirkevollen, storg / storgatanord)."""
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i, street in enumerate(STREETS):
            for j, family in enumerate(FAMILIES):
                for k, given in enumerate(("Kari", "Ola Per")):
                    repo.save(from_document(person_doc(f"s{i}-{j}-{k}", given=given, family=family, street=street,
                                                       born=f"19{50 + i}-0{1 + j}-1{k}", house=1 + k)))
    return engine


def _old_street_block(q: Any, key: str, family_words: list[str]) -> str:
    """The block before: the street range, the family tested entry by entry within it."""
    street = q.prefix(store.search._STREET, key)  # first: the parameters are positional
    return f"{street} AND {store.search._any([q.prefix(store.search._FAMILY, w) for w in family_words])}"


STREET_CRITERIA = [SearchCriteria(family="Hansen", street="Kirkeveien"),
                   SearchCriteria(family="Hans", street="Kirkevn"),
                   SearchCriteria(family="Berg", street="Kirke"),
                   SearchCriteria(family="Hansen Berg", street="Storgata"),
                   SearchCriteria(given="Per", family="Hanssen", street="Storgata Nord"),
                   SearchCriteria(full_name="Kari Olsen", street="Storgaten"),
                   SearchCriteria(full_name="Berg Kari", street="Kirkegata"),
                   SearchCriteria(family="Olsen", street="Kirkevollen", gender="mann"),
                   SearchCriteria(family="Nobody", street="Storgata")]


def test_family_and_street_answer_as_the_street_range_did(streets: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Equivalence with the reference (the plain street range): the same hits, scores and order, SQLite and
    PostgreSQL, for full street names, prefixes, keys other keys extend, and full names."""
    with streets.connect() as conn:
        new = [search(conn, c, scope=ALL_RELEASABLE) for c in STREET_CRITERIA]
        monkeypatch.setattr(store.search, "_street_block", _old_street_block)
        monkeypatch.setattr(store.search, "_filters", _filters_with_street)
        old = [search(conn, c, scope=ALL_RELEASABLE) for c in STREET_CRITERIA]
    assert new == old
    assert [len(h) for h in new[:-1]] == [12, 18, 16, 6, 1, 3, 2, 2], str([len(h) for h in new])
    assert new[-1] == []


_real_filters = store.search._filters


def _filters_with_street(q: Any, c: SearchCriteria, fam: Any, giv: Any, full: Any, scope: Any,
                         street_block: bool = False) -> list[str]:
    return _real_filters(q, c, fam, giv, full, scope, False)  # the reference also filtered on the street range


def test_family_and_a_street_seek_each_street_key_with_the_family(sqlite_engine: Engine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(sqlite_engine, SearchCriteria(family="Hansen", street="Kirkeveien"), monkeypatch)
    assert "SEARCH person_search USING INDEX ix_person_search_street_key_family_key (street_key=? AND family_key>? " \
           "AND family_key<?)" in plan, plan
    assert "RECURSIVE STEP" in plan and "MULTI-INDEX OR" not in plan, plan


# -- given + family + birth date: the day's family range (store.search._block) --------------------------------------


def test_a_birth_date_serves_the_first_family_word_as_a_birth_year_does(engine: Engine) -> None:
    """The family name's first word is the index's, with a birth date as with a year (the module docstring):
    ``Berg`` finds ``Berg Hansen`` and ``Bergersen``, not ``Hansen Berg``; a full name tries each of its words."""
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        ids = {key: repo.save(from_document(person_doc(key, given="Kari", family=family, born="1970-03-04")))
               for key, family in (("bh", "Berg Hansen"), ("hb", "Hansen Berg"), ("bs", "Bergersen"), ("o", "Olsen"))}
    with engine.connect() as conn:
        for born in ({"birth_date": dt.date(1970, 3, 4)}, {"birth_year": 1970}):
            found = {h.person_id for h in search(conn, SearchCriteria(given="Kari", family="Berg", **born),
                                                 scope=ALL_RELEASABLE)}
            assert found == {ids["bh"], ids["bs"]}, born
            full = {h.person_id for h in search(conn, SearchCriteria(full_name="Kari Hansen", **born),
                                                scope=ALL_RELEASABLE)}
            assert full == {ids["hb"]}, born


def test_given_family_and_date_seek_the_days_family_range(sqlite_engine: Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    plan = _plan(sqlite_engine, SearchCriteria(given="Kari", family="Hansen", birth_date=dt.date(1980, 5, 5)),
                 monkeypatch)
    assert "USING COVERING INDEX ix_person_search_birth_date_covering (birth_date=? AND family_key>? " \
           "AND family_key<?)" in plan, plan
