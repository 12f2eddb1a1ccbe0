"""The seeked search plans of issue 19 against their references (SQLite and PostgreSQL).

- given + family + birth year is seeked in ``person_given_word`` (store.search._given_word_block) instead of the
  (year, family) range of ``person_search`` with the given name tested entry by entry;
- family + street seeks each distinct street key of the range with the family (a loose index scan,
  store.search._street_block) instead of the street range with the family tested entry by entry.

Equivalence: over a generated store whose names and streets nest (``Berg`` / ``Berg Hansen`` / ``Bergersen``,
``kirkev`` / ``kirkevollen``), with given names of one to three words that share prefixes, many generated
criteria give the same hits, scores and order, or are refused as too broad alike, under both plans.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy import inspect as sa_inspect

import store.search
from store import schema as s
from store.derived import check_views, given_word_rows
from store.document import from_document
from store.errors import InvalidInput, TooManyHits
from store.normalize import name_key
from store.repository import PersonRepository
from store.search import ALL_RELEASABLE, SearchCriteria, SearchHit, search
from tests.factories import person_doc
from tests.integration.test_search_prepared_once import _library, _reprepares, _statement, store_path

__all__ = ["store_path"]  # a fixture shared with test_search_prepared_once

GIVEN = ["Kari", "Karin", "Kristin", "Kristian", "Anne", "Anna", "Ann Mari", "Mari", "Marit", "Per", "Petter",
         "Ola", "Ole", "Lars", "Lasse", "Jon", "Jonas", "Eli", "Elin"]
FAMILY = ["Berg", "Berg Hansen", "Bergersen", "Berge", "Hansen", "Hanssen", "Hansen Berg", "Olsen", "Olsen Dahl",
          "Dahl", "Dahle", "Ås", "Aasen"]
STREETS = ["Kirkeveien", "Kirkevegen", "Kirkevollen", "Kirkegata", "Storgata", "Storgata Nord", "Storgaten",
           "Fyrgata", "Fyrgrenda"]
YEARS = [1950, 1951, 1980]


def _person(rng: random.Random, i: int) -> dict[str, Any]:
    words = rng.sample(GIVEN, rng.choice((1, 1, 2, 3)))
    born = dt.date(rng.choice(YEARS), rng.randint(1, 12), rng.randint(1, 28))
    return person_doc(f"p{i}", given=" ".join(words), family=rng.choice(FAMILY), born=born.isoformat(),
                      gender=rng.choice(("mann", "kvinne")), street=rng.choice(STREETS), house=1 + i % 7,
                      kommune=rng.choice(("0301", "4601")), postnummer=rng.choice(("0150", "5003")))


@pytest.fixture
def population(engine: Engine) -> Engine:
    rng = random.Random(19)
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i in range(360):
            repo.save(from_document(_person(rng, i)))
    return engine


def _prefix(rng: random.Random, name: str) -> str:
    """A name as a searcher types it: whole, or a prefix of at least one letter (of one of its words)."""
    words = name.split()
    if rng.random() < 0.5:
        return name if rng.random() < 0.5 else rng.choice(words)
    word = rng.choice(words)
    return word[: rng.randint(1, len(word))]


def _criteria(rng: random.Random) -> SearchCriteria:
    given, family = rng.choice(GIVEN), rng.choice(FAMILY)
    extra: dict[str, Any] = {}
    if rng.random() < 0.2:
        extra["gender"] = rng.choice(("mann", "kvinne"))
    if rng.random() < 0.1:
        extra["kommune"] = "0301"
    if rng.random() < 0.5:
        return SearchCriteria(given=_prefix(rng, given) + (" " + rng.choice(GIVEN) if rng.random() < 0.15 else ""),
                              family=_prefix(rng, family), birth_year=rng.choice([*YEARS, 1999]), **extra)
    street = rng.choice(STREETS)
    street = street if rng.random() < 0.4 else street[: rng.randint(3, len(street))]
    return SearchCriteria(given=_prefix(rng, given) if rng.random() < 0.3 else None, family=_prefix(rng, family),
                          street=street, **extra)


# -- the references: the plans of session 8 -------------------------------------------------------------------

_real_block, _real_filters = store.search._block, store.search._filters


def _old_block(q: Any, c: SearchCriteria, family_words: list[str], giv: list[str]) -> tuple[str, bool]:
    """The (year, family) range of person_search with the given name a filter; the street range with the family
    a filter (the street criterion's filter then holds the range)."""
    S = store.search
    year = c.birth_year
    if year and not c.birth_date and family_words:
        return f"{S._any([q.prefix(S._FAMILY, w) for w in family_words])} AND {q.eq(S._BIRTH_YEAR, year)}", False
    if c.street and family_words and not (year or c.birth_date or c.kommune or c.postnummer):
        return S._any([q.prefix(S._FAMILY, w) for w in family_words]), False
    return _real_block(q, c, family_words, giv)


def _answer(conn: Any, c: SearchCriteria, limit: int) -> list[SearchHit] | str:
    try:
        return search(conn, c, scope=ALL_RELEASABLE, limit=limit)
    except TooManyHits:
        return "too broad"
    except InvalidInput:  # below the minimum criteria (a generated name too short): left out
        return "invalid"


def test_generated_criteria_answer_as_the_references_did(population: Engine,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    cases = [(c, rng.choice((3, 8, 50))) for c in (_criteria(rng) for _ in range(600))]
    with population.connect() as conn:
        new = [_answer(conn, c, limit) for c, limit in cases]
        monkeypatch.setattr(store.search, "_block", _old_block)
        old = [_answer(conn, c, limit) for c, limit in cases]
    for (c, _), a, b in zip(cases, new, old, strict=True):
        assert a == b, c
    cases, new = [c for c, a in zip(cases, new, strict=True) if a != "invalid"], [a for a in new if a != "invalid"]
    # the cases are not all empty nor all refused, and later given names were found (not the given key's prefix)
    found = [a for a in new if isinstance(a, list) and a]
    assert len(cases) > 450 and len(found) > 150 and sum(a == "too broad" for a in new) > 20, \
        (len(cases), len(found))
    later = [(c, a) for (c, _), a in zip(cases, new, strict=True) if c.given and c.birth_year and isinstance(a, list)
             and any(not g.startswith(name_key(c.given)) for g in _given_keys(population, a))]
    assert len(later) > 10, len(later)


def _given_keys(engine: Engine, hits: list[SearchHit]) -> list[str]:
    with engine.connect() as conn:
        ps = s.person_search
        return list(conn.execute(select(ps.c.given_key).where(ps.c.person_id.in_([h.person_id for h in hits])))
                    .scalars())


def test_a_later_given_name_and_a_nested_family_key_are_found(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        ids = {key: repo.save(from_document(person_doc(key, given=given, family=family, born="1980-02-03")))
               for key, given, family in (("a", "Ann Kari", "Berg"), ("b", "Kari", "Berg Hansen"),
                                          ("c", "Karianne", "Bergersen"), ("d", "Kari", "Hansen Berg"),
                                          ("e", "Marikari", "Berg"), ("f", "Kari", "Berg"))}
        repo.save(from_document(person_doc("g", given="Kari", family="Berg", born="1981-02-03")))
    with engine.connect() as conn:
        got = {h.person_id for h in search(conn, SearchCriteria(given="Kari", family="Berg", birth_year=1980),
                                           scope=ALL_RELEASABLE)}
    assert got == {ids["a"], ids["b"], ids["c"], ids["f"]}


def test_the_word_rows_follow_a_change_of_name(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        pid = repo.save(from_document(person_doc("x", given="Kari Anne", family="Berg", born="1980-02-03")))
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(person_doc("x", given="Marit", family="Dahl", born="1981-02-03")))
    with engine.connect() as conn:
        words = conn.execute(select(s.person_given_word.c.birth_year, s.person_given_word.c.family_key,
                                    s.person_given_word.c.word).where(s.person_given_word.c.person_id == pid)).all()
        assert [tuple(w) for w in words] == [(1981, "dahl", "marit")]
        assert search(conn, SearchCriteria(given="Anne", family="Berg", birth_year=1980), scope=ALL_RELEASABLE) == []
        assert [h.person_id for h in search(conn, SearchCriteria(given="Mar", family="Dahl", birth_year=1981),
                                            scope=ALL_RELEASABLE)] == [pid]
    assert check_views(engine).drift["person_given_word"] == 0


def test_the_words_are_the_given_keys_words_once_each() -> None:
    p = from_document(person_doc("w", given="Anne Anne Kari", family="Ås", born="1970-01-01"))
    assert name_key("Ås") == "as"
    assert given_word_rows(p) == [{"birth_year": 1970, "family_key": "as", "word": w} for w in ("anne", "kari")]
    nobirth = person_doc("n", given="Kari")
    nobirth["birth"] = []
    assert given_word_rows(from_document(nobirth)) == []


# -- the statements with a WITH clause are prepared once (tests/integration/test_search_prepared_once.py) ----------

@pytest.mark.parametrize(("criteria", "rows"), [
    ([SearchCriteria(given=g, family="Nordmann", birth_year=1980) for g in ("Kari", "Marie", "Ola", "Anne")],
     [1, 1, 0, 1]),
    ([SearchCriteria(given=g, family="Nor", birth_year=1980) for g in ("Kari", "Marie", "Kari", "Anne")],
     [1, 1, 1, 1]),
    ([SearchCriteria(family=f, street="Storg") for f in ("Nordmann", "Berg", "Bergum")], [2, 1, 1]),
])
def test_the_seeked_searches_are_prepared_once(store_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               criteria: list[SearchCriteria], rows: list[int]) -> None:
    lib = _library()
    sql, bindings = _statement(store_path, criteria, monkeypatch)
    assert sql.startswith("WITH RECURSIVE")
    reprepared, got = _reprepares(lib, store_path, sql, bindings)
    assert got == rows
    assert reprepared == 0


def test_migration_0033_fills_the_table_as_the_builder_does(population: Engine) -> None:
    """Downgraded to 0032 (the table dropped) and upgraded again, the store holds the rows the registry's builder
    gives each person (views check: no drift), filled from person_search in batches."""
    from store.engine import migrate
    from tests.integration.test_stored_documents import _downgrade

    _downgrade(population, "0032")
    with population.connect() as conn:
        assert "person_given_word" not in sa_inspect(conn).get_table_names()
    migrate(population)
    with population.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(s.person_given_word)).scalar_one()
        if conn.dialect.name == "sqlite":  # the index builds' own pragmas (small cache, no map) were put back
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -65536
            assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 268435456
    assert rows > 360  # every person of the population has a birth year, some two or three given names
    result = check_views(population)
    assert result.persons == 360 and result.drift["person_given_word"] == 0
