"""search_into_store against the fake Persontjenesten over loopback, SQLite and PostgreSQL: starting from an empty
store, the store's own search then answers as a replica of the whole population answers (same persons, same
order, same scores) for every search the API can answer; the store holds only persons the API returned."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from store.errors import TooManyHits
from store.search import SearchCriteria
from tests.readthrough_search.support import SPLITS, WIDE, Counting, answer, documents, stored_keys
from upstream.readthrough_search import UPSTREAM_MAX, search_form, search_into_store


def _current(items: list[dict[str, Any]]) -> dict[str, Any]:
    return next((i for i in items if i.get("current", True)), {})


def sample_criteria(population: Path, every: int = 60) -> list[SearchCriteria]:
    """Searches of the kinds legacy clients send, built from every ``every``-th person of the population."""
    out: list[SearchCriteria] = []
    for doc in documents(population)[::every]:
        name, birth = _current(doc["names"]), _current(doc["birth"])
        home = next((a for a in doc["addresses"] if a.get("current", True) and a["type"] == "bosted"
                     and a.get("street")), None)
        if not name or not birth or not birth.get("date"):
            continue
        born = dt.date.fromisoformat(birth["date"])
        given, family = name["given"], name["family"]
        out += [SearchCriteria(family=family, birth_date=born),
                SearchCriteria(family=family, birth_year=born.year),
                SearchCriteria(given=given, birth_year=born.year),
                SearchCriteria(full_name=f"{given} {family}", birth_year=born.year),
                SearchCriteria(family=family[:3], birth_year=born.year, gender=_current(doc["gender"])["value"])]
        if home:
            out += [SearchCriteria(family=family, kommune=home["kommune"]),
                    SearchCriteria(family=family, street=home["street"]),
                    SearchCriteria(given=given, family=family, street=f"{home['street']} {home['houseNumber']}",
                                   postnummer=home["postnummer"])]
    return out


def test_each_search_answers_as_the_replica_from_an_empty_store(population: Path, replica: Engine, reader: Engine,
                                                                 client: Counting) -> None:
    compared = 0
    returned: set[str] = set()
    for c in sample_criteria(population):
        want = answer(replica, c)
        if len(want) >= UPSTREAM_MAX:
            continue  # beyond what the API lists: test_the_cap_*
        before = client.answered.copy()
        search_into_store(client, reader, c, request_id="t", deadline=10)
        returned |= client.answered - before
        assert answer(reader, c) == want, (search_form(c), len(want))
        compared += 1
    assert compared >= 60
    assert stored_keys(reader) == client.answered  # only what the API returned, and all of it
    assert client.calls == compared


def test_a_search_below_the_api_minimum_is_not_sent(population: Path, replica: Engine, reader: Engine,
                                                   client: Counting) -> None:
    doc = documents(population)[5]
    name = _current(doc["names"])
    home = next(a for a in doc["addresses"] if a.get("current", True) and a.get("postnummer"))
    c = SearchCriteria(family=name["family"], postnummer=home["postnummer"])  # valid for the store, not the API
    assert answer(replica, c)
    assert search_into_store(client, reader, c, request_id=None, deadline=10) == []
    assert client.calls == 0
    assert answer(reader, c) == []  # the store's own answer (it holds nobody yet) stands


def test_invalid_criteria_are_not_sent(reader: Engine, client: Counting) -> None:
    for c in (SearchCriteria(family="Ol", birth_year=1980), SearchCriteria(family="Nordmann"),
              SearchCriteria(given="Ola", kommune="0301")):
        assert search_into_store(client, reader, c, request_id=None, deadline=10) == []
    assert client.calls == 0


def test_the_cap_is_lifted_by_a_split_by_gender(replica: Engine, reader: Engine, client: Counting) -> None:
    c = SearchCriteria(family=SPLITS, birth_year=1975)
    want = answer(replica, c)
    assert len(want) == 130
    ids = search_into_store(client, reader, c, request_id="t", deadline=10)
    assert client.calls == 3 and len(ids) == 130
    assert [f.get("Gender") for f in client.forms] == [None, "Female", "Male"]
    assert answer(reader, c) == want


def test_a_search_the_cap_cuts_is_too_many_hits_and_stores_nothing(reader: Engine, client: Counting) -> None:
    for c in (SearchCriteria(family=WIDE, birth_year=1976),  # women only: the split by gender does not help
              SearchCriteria(family=WIDE, birth_year=1976, gender="kvinne")):  # a gender given: nothing to split
        with pytest.raises(TooManyHits) as info:
            search_into_store(client, reader, c, request_id="t", deadline=10)
        assert info.value.limit == UPSTREAM_MAX
    assert stored_keys(reader) == set()


def test_a_person_found_again_is_replaced_not_added(replica: Engine, reader: Engine, client: Counting,
                                                   population: Path) -> None:
    c = sample_criteria(population)[0]
    first = search_into_store(client, reader, c, request_id=None, deadline=10)
    again = search_into_store(client, reader, c, request_id=None, deadline=10)
    assert first and first == again
    assert len(stored_keys(reader)) == len(first)
    assert answer(reader, c) == answer(replica, c)
