"""PersonRepository on a real database (SQLite and PostgreSQL): round trips, lookups, history."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from store.document import from_document, to_document
from store.repository import PersonRepository
from store.schema import metadata
from tests.factories import meta, number, person_doc


def test_migrations_match_the_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == []


def test_document_round_trip_through_the_store(engine: Engine) -> None:
    doc = person_doc("p1", given="Åse Marie", family="Ødegård", gender="kvinne")
    doc["relations"] = [{"relatedNumber": number(), "relatedRole": "mor", "myRole": "barn", **meta()}]
    doc["maritalStatus"] = [
        {"value": "ugift", "spouse": None, "date": None, **meta(False, "1980-05-17", "2010-06-12")},
        {"value": "gift", "spouse": number(), "date": "2010-06-12", **meta(True, "2010-06-12")},
    ]
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(doc))
    with engine.connect() as conn:
        got = PersonRepository(conn).get_by_key("p1")
    assert got is not None
    assert to_document(got) == to_document(from_document(doc))
    assert got.name is not None and got.name.family == "Ødegård"


def test_lookup_by_a_ceased_d_number_finds_the_person_and_names_the_current_number(engine: Engine) -> None:
    born = dt.date(1975, 3, 9)
    fnr, dnr = number("fnr", born), number("dnr", born)
    doc = person_doc("p2", born=born.isoformat(), identifiers=[
        {"number": fnr, "kind": "fnr", "status": "iBruk", **meta(True, "2020-03-01")},
        {"number": dnr, "kind": "dnr", "status": "opphoert", **meta(False, "2018-01-10", "2020-03-01")},
    ])
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(doc))
    with engine.connect() as conn:
        repo = PersonRepository(conn)
        by_old = repo.find(dnr)
        by_new = repo.find(fnr)
    assert by_old is not None and by_new is not None
    assert by_old.matched.number == dnr and by_old.matched.status == "opphoert"
    assert by_old.current is not None and by_old.current.number == fnr
    assert by_old.person.person_key == by_new.person.person_key == "p2"


def test_bulk_lookup_reports_only_known_numbers(engine: Engine) -> None:
    docs = [person_doc(f"b{i}", given=f"Kari{i}") for i in range(5)]
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for d in docs:
            repo.save(from_document(d))
    asked = [d["identifiers"][0]["number"] for d in docs] + [number()]
    with engine.connect() as conn:
        found = PersonRepository(conn).find_many(asked)
    assert set(found) == set(asked[:5])
    assert {f.person.person_key for f in found.values()} == {f"b{i}" for i in range(5)}


def test_save_replaces_the_person_and_keeps_the_history_it_is_given(engine: Engine) -> None:
    doc = person_doc("p3", street="Kirkeveien")
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(doc))
    moved = person_doc("p3", street="Fjellvegen", identifiers=doc["identifiers"])
    old = dict(doc["addresses"][0], current=False, validTo="2026-11-21")
    moved["addresses"] = [old, dict(moved["addresses"][0], validFrom="2026-11-21", movedAt="2026-11-21")]
    with engine.begin() as conn:
        pid = PersonRepository(conn).save(from_document(moved))
    with engine.connect() as conn:
        repo = PersonRepository(conn)
        p = repo.get(pid)
        assert repo.count() == 1
    assert p is not None
    assert [a.street for a in p.addresses] == ["Kirkeveien", "Fjellvegen"]
    bosted = p.address("bosted")
    assert bosted is not None and bosted.street == "Fjellvegen"


@pytest.mark.parametrize("level", ["klientadresse", "fortrolig", "strengtFortrolig"])
def test_protection_level_is_the_strictest_in_force(engine: Engine, level: str) -> None:
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(person_doc("p4", protection=level)))
    with engine.connect() as conn:
        p = PersonRepository(conn).get_by_key("p4")
    assert p is not None and p.protection_level == level
