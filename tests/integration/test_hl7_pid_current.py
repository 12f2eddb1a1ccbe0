"""PDQ's and PIX's PIDs come from stored current views (store/current.py, server/hl7/pid.py): the hand-written
encoder must give exactly what the general path gives, ``pid_segment(apply_profile(person, profile))`` (PIX:
without demographics), with the numbers the audit records, for every person of a synthetic population with
a change feed applied (moves, name changes, deaths, replaced numbers, protection) and for hand-made edge
cases, under every built-in profile and custom ones with and without history, identifiers, status, death
and addresses, with PID-3 filters.
Every write path stores the view (load, feed, save), on SQLite and PostgreSQL, and migration 0010 builds it
for persons stored before."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, text

from adapters.hl7 import pid_segment, sorted_identifiers
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile
from server.hl7.pid import identifiers_pid, pid_from_current, pid_release
from store import schema as s
from store.current import CurrentVersionError, current_of, read_current
from store.document import from_document, load_stored
from store.engine import _MIGRATIONS, make_engine, migrate, read_connection
from store.model import Person
from store.repository import PersonRepository
from tests.factories import meta, number, person_doc

PROFILES = [
    *BUILTIN_PROFILES.values(),
    AccessProfile("utenStatus", "*", frozenset({"identifiers", "name", "birth", "death", "addresses", "history"}),
                  "fortrolig"),
    AccessProfile("historikk", "*", frozenset({"identifiers", "name", "addresses", "history", "status", "death"}),
                  "klientadresse"),
    AccessProfile("utenNummer", "*", frozenset({"name", "birth", "gender"}), "ugradert"),
    AccessProfile("utenAdresse", "*", frozenset({"identifiers", "status", "gender", "birth"}), "fortrolig"),
    AccessProfile("bareDoed", "*", frozenset({"death", "identifiers", "history"}), "ugradert"),
]
KINDS: list[tuple[str, ...] | None] = [None, ("fnr",), ("dnr", "fh"), ("hnr",)]


def expected(person: Person, profile: AccessProfile, set_id: int, kinds: tuple[str, ...] | None) -> tuple[str, Any]:
    view = apply_profile(person, profile)
    current = view.current_identifier
    return pid_segment(view, set_id, kinds=kinds), current.number if current else None


def expected_pix(person: Person, profile: AccessProfile, kinds: tuple[str, ...] | None) -> tuple[str | None, Any]:
    view = apply_profile(person, profile)
    shown = [i.number for i in sorted_identifiers(view.identifiers, kinds)]
    return (pid_segment(view, 1, kinds=kinds, demographics=False) if shown else None), shown


def assert_same(person: Person, stored: str) -> None:
    for profile in PROFILES:
        release = pid_release(profile)
        for set_id, kinds in enumerate(KINDS, start=1):
            got = pid_from_current(stored, release, set_id, kinds)
            assert got == expected(person, profile, set_id, kinds), (person.person_key, profile.name, kinds)
            assert identifiers_pid(stored, release, kinds) == expected_pix(person, profile, kinds)


# -- a synthetic population with history, through the real load and feed ------------------------------


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, str]]]:
    from store.feed import ingest
    from store.loading import load_population
    from store.synthetic import generate_population

    d = tmp_path_factory.mktemp("pid-current")
    generate_population(d / "pop", 1500, 31, feed_days=20)
    engine: Engine = make_engine(f"sqlite:///{d / 'store.sqlite'}")
    migrate(engine)
    load_population(engine, d / "pop")
    ingest(engine, d / "pop" / "feed")
    with read_connection(engine) as conn:
        rows = conn.exec_driver_sql("SELECT p.doc, c.current FROM person p JOIN person_current c"
                                    " ON c.person_id = p.id ORDER BY p.id").all()
        count = conn.exec_driver_sql("SELECT count(*) FROM person").scalar_one()
    engine.dispose()
    assert len(rows) == count >= 1500  # the feed adds births
    yield [(doc, current) for doc, current in rows]


def test_the_population_has_history(population: list[tuple[str, str]]) -> None:
    full = [load_stored(doc) for doc, _ in population]
    assert sum(1 for p in full if len(p.addresses) > 1) > 100
    assert sum(1 for p in full if len(p.names) > 1) > 10
    assert sum(1 for p in full if p.death) > 5 and sum(1 for p in full if len(p.identifiers) > 1) > 5
    assert any(p.protection_level != "ugradert" for p in full)


def test_the_stored_view_is_the_view_of_the_stored_person(population: list[tuple[str, str]]) -> None:
    """Load and feed wrote each person's view with the person (the feed's changes are in the views)."""
    for doc, stored in population:
        assert stored == current_of(load_stored(doc))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_pid_from_the_view_is_the_pid_of_the_person(population: list[tuple[str, str]], profile: AccessProfile) -> None:
    release = pid_release(profile)
    for doc, stored in population:
        person = load_stored(doc)
        for kinds in KINDS:
            assert pid_from_current(stored, release, 3, kinds) == expected(person, profile, 3, kinds)
            assert identifiers_pid(stored, release, kinds) == expected_pix(person, profile, kinds)


# -- edge cases ----------------------------------------------------------------------------------------


def _address(**fields: Any) -> dict[str, Any]:
    base = {"type": "bosted", "form": "vegadresse", "street": "Storgata", "houseNumber": 1, "houseLetter": None,
            "unit": None, "co": None, "gardsnummer": None, "bruksnummer": None, "festenummer": None, "lines": [],
            "country": None, "postnummer": "0150", "poststed": "OSLO", "kommune": "0301", "bydel": None,
            "protection": "ugradert", "movedAt": "2015-06-01", **meta()}
    return {**base, **fields}


def _edge_persons() -> list[dict[str, Any]]:
    born = dt.date(1975, 3, 9)
    fnr, dnr, old_fnr = number("fnr", born), number("dnr", born), number("fnr", born)
    docs = []
    # delimiters and line breaks in every kind of value
    docs.append(person_doc("e1", given="Ann|Mari^&", family="O~Brien\\Dahl", street="Gate^1 & 2"))
    docs[-1]["names"][0]["middle"] = "Line\rbreak\nhere"
    docs[-1]["addresses"].append(_address(type="post", form="postboks", street=None, houseNumber=None,
                                          lines=["Postboks 12|3", "Sentrum ~ bygg"], postnummer="0101"))
    # several numbers, ceased ones with their end date, an H-nummer and a felles hjelpenummer
    docs.append(person_doc("e2", born=born.isoformat(), identifiers=[
        {"number": old_fnr, "kind": "fnr", "status": "opphoert", **meta(False, "1975-03-09", "2019-12-31")},
        {"number": dnr, "kind": "dnr", "status": "opphoert", **meta(False, "2001-01-01", "2010-06-01")},
        {"number": fnr, "kind": "fnr", "status": "iBruk", **meta(True, "2020-01-01")},
        {"number": number("hnr", born), "kind": "hnr", "status": "iBruk", **meta(True, "2021-01-01")},
        {"number": number("fh"), "kind": "fh", "status": "iBruk", **meta(True, "2022-01-01")},
    ]))
    # only a D-nummer and a ceased felles hjelpenummer: the D-nummer is the number in use
    docs.append(person_doc("e3", born=born.isoformat(), identifiers=[
        {"number": number("fh"), "kind": "fh", "status": "opphoert", **meta(False, "2010-01-01", "2011-01-01")},
        {"number": number("dnr", born), "kind": "dnr", "status": "iBruk", **meta(True, "2011-01-01")},
    ]))
    # every protection level, on the person and on single addresses (the stricter one counts)
    for n, (person_level, address_level) in enumerate([("klientadresse", "ugradert"), ("ugradert", "fortrolig"),
                                                       ("fortrolig", "klientadresse"),
                                                       ("strengtFortrolig", "strengtFortrolig")]):
        d = person_doc(f"e4{n}", protection=address_level)
        d["protection"] = [{"level": person_level, **meta()}]
        d["addresses"].append(_address(type="opphold", street="Fjellvegen", houseNumber=None, houseLetter="B",
                                       co="Kari Hansen", bydel="030102", protection="ugradert"))
        d["addresses"].append(_address(type="postUtland", form="utenlandsk", street=None, houseNumber=None,
                                       lines=["12 Rue X", "Paris"], country="FRA", postnummer=None,
                                       poststed=None, kommune=None))
        docs.append(d)
    # dead: with a death item and status doed; death without a status; status doed without a death
    d = person_doc("e5", status="doed")
    d["death"] = [{"date": "2024-02-29", **meta()}]
    docs.append(d)
    d = person_doc("e6")
    d["status"] = []
    d["death"] = [{"date": "2023-01-02", **meta()}]
    docs.append(d)
    # a year below 1000 keeps four digits in a DT (strftime's %Y would give three)
    d = person_doc("e6b", identifiers=[
        {"number": number("fh"), "kind": "fh", "status": "opphoert", **meta(False, "0990-01-01", "0999-12-31")},
        {"number": number("fnr"), "kind": "fnr", "status": "iBruk", **meta()}])
    d["death"] = [{"date": "0999-01-02", **meta()}]
    docs.append(d)
    d = person_doc("e7", status="doed")
    docs.append(d)
    # only history: a non-current status and death, a moved-away address, a former name
    d = person_doc("e8", status="utflyttet")
    d["status"] = [{"value": "bosatt", **meta(False, "1980-01-01", "2010-01-01")}]
    d["death"] = [{"date": None, **meta(False, "2010-01-01", "2011-01-01")}]
    d["names"].insert(0, {"given": "Gammel", "middle": None, "family": "Navn", **meta(False, "1980-01-01",
                                                                                      "2000-01-01")})
    d["addresses"][0] = dict(d["addresses"][0], current=False, validTo="2019-01-01")
    docs.append(d)
    # a child with a shared residence under a contract period (XAD-13/14), one open-ended and one protected,
    # and a D-nummer holder whose present address is the primary one and says why (stayElsewhere: not in PID)
    d = person_doc("e10", born="2015-04-01")
    d["addresses"].append(_address(type="deltBosted", street="Parkveien", houseNumber=7, contractFrom="2021-01-01",
                                   contractTo="2027-06-30"))
    d["addresses"].append(_address(type="deltBosted", street="Gamleveien", contractFrom="2018-01-01",
                                   current=False, validTo="2020-12-31"))
    docs.append(d)
    d = person_doc("e11", born="2014-02-02", protection="fortrolig")
    d["addresses"].append(_address(type="deltBosted", contractFrom="2022-03-01", contractTo=None))
    docs.append(d)
    d = person_doc("e12", identifiers=[{"number": number("dnr", born), "kind": "dnr", "status": "iBruk", **meta()}])
    d["addresses"] = [_address(type="post", form="postboks", street=None, houseNumber=None, lines=["Postboks 9"]),
                      _address(type="opphold", street="Brakkeveien", stayElsewhere="militaer")]
    docs.append(d)
    # no name, no gender, no address, a birth year without a date
    d = person_doc("e9")
    d["names"], d["gender"], d["addresses"] = [], [], []
    d["birth"] = [{"date": None, "year": 1950, "place": None, "kommune": None, "country": "NOR", **meta()}]
    docs.append(d)
    return docs


@pytest.fixture
def edge_engine(engine: Engine) -> Engine:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for doc in _edge_persons():
            repo.save(from_document(doc))
    return engine


def test_save_stores_the_view_and_every_edge_case_encodes_the_same(edge_engine: Engine) -> None:
    """On SQLite and PostgreSQL: the view save wrote, and its PID under every profile and PID-3 filter."""
    with edge_engine.connect() as conn:
        rows = conn.execute(text("SELECT p.doc, c.current FROM person p JOIN person_current c ON c.person_id = p.id"
                                 " ORDER BY p.id")).all()
    assert len(rows) == len(_edge_persons())
    for doc, stored in rows:
        person = load_stored(doc)
        assert stored == current_of(person)
        assert_same(person, stored)


def test_the_edge_cases_cover_what_they_claim() -> None:
    persons = {p.person_key: p for p in (from_document(d) for d in _edge_persons())}
    pid = pid_from_current(current_of(persons["e1"]), pid_release(BUILTIN_PROFILES["full"]), 1)[0]
    assert "\\F\\" in pid and "\\S\\" in pid and "\\X0D\\" in pid  # escaped, not raw delimiters
    assert {p.protection_level for p in persons.values()} == {"ugradert", "klientadresse", "fortrolig",
                                                              "strengtFortrolig"}
    assert any(i.status == "opphoert" for i in persons["e2"].identifiers)
    full = pid_release(BUILTIN_PROFILES["full"])
    shared = pid_from_current(current_of(persons["e10"]), full, 1)[0].split("|")[11].split("~")
    assert shared[0].startswith("Storgata")  # the residence first, the shared residence after it
    assert shared[1].split("^")[12:14] == ["20210101", "20270630"]  # XAD-13 effective, XAD-14 expiration
    assert len(shared) == 2  # a former shared residence is not current
    masked = pid_from_current(current_of(persons["e11"]), pid_release(BUILTIN_PROFILES["utenHjemmel"]), 1)[0]
    assert "2022" not in masked  # a masked shared residence shows no contract period
    present = pid_from_current(current_of(persons["e12"]), full, 1)[0].split("|")[11].split("~")
    assert present[0].startswith("Brakkeveien") and present[0].split("^")[6] == "C"  # the primary address first


def test_a_view_when_the_row_is_replaced(engine: Engine) -> None:
    doc = person_doc("r1", street="Kirkeveien")
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(doc))
    moved = person_doc("r1", street="Fjellvegen", identifiers=doc["identifiers"])
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(moved))
    with engine.connect() as conn:
        views = conn.execute(text("SELECT current FROM person_current")).scalars().all()
    assert len(views) == 1 and "Fjellvegen" in views[0] and "Kirkeveien" not in views[0]


def test_placeholders_need_no_escaping() -> None:
    """The encoder escapes only values of a view whose JSON holds a delimiter; a placeholder is not in the view."""
    from server.access import PLACEHOLDERS

    assert all(not set(text) & set("\\|^&~\r\n") for text in PLACEHOLDERS.values())


def test_a_view_of_another_layout_is_refused() -> None:
    stored = current_of(from_document(person_doc("v1")))
    other = orjson.dumps(["c0", *orjson.loads(stored)[1:]]).decode()
    assert stored.startswith('["c1",') and read_current(stored).floor == "ugradert"
    with pytest.raises(CurrentVersionError, match="pregbridge views rebuild"):
        read_current(other)
    with pytest.raises(CurrentVersionError):
        pid_from_current(other, pid_release(PROFILES[0]))


def test_migration_builds_the_views_of_the_persons_stored_before(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        migrate(engine, "0009")
        docs = _edge_persons()
        with engine.begin() as conn:  # what revision 0009 stored: no person_current table
            for n, doc in enumerate(docs, start=1):
                person = from_document(doc)
                conn.execute(insert(s.person).values(id=n, person_key=person.person_key, doc=json.dumps(doc),
                                                     updated_at=dt.datetime(2026, 1, 1)))
        migrate(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(text("SELECT person_id, current FROM person_current")).all())
        assert sorted(rows) == list(range(1, len(docs) + 1))
        for n, doc in enumerate(docs, start=1):
            assert rows[n] == current_of(from_document(doc))
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0009")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM sqlite_master WHERE name = 'person_current'")).scalar() == 0
    finally:
        engine.dispose()
