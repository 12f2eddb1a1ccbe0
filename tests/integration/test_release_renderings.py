"""The three renderings of the one masking policy agree, for every profile × protection level.

A person is shown masked three ways, each fast in its place: ``apply_profile``'s MaskedPerson (encoded by the
PREG face and the general HL7 encoder), the HL7 PID fast path over the stored current view, and the Filematch
wash over the stored brief. All three read one :class:`adapters.policy.Release` (``server.access.release_of``).
Here, for every built-in and custom profile and every combination of an address's own protection and the
person's strictest level in force, with a residence (fødselsnummer person) and with a present address only
(D-nummer person), the address each face shows — its text (the address line or the placeholder), kommune,
DSF code and type — is the same, and is what the policy table says. On SQLite and PostgreSQL (the views
and briefs are read back from the store).
"""

from __future__ import annotations

import datetime as dt
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, select

from adapters.hl7 import pid_segment
from adapters.policy import DSF_CODES, LEVELS, PLACEHOLDERS, RELEASABLE_LEVELS, Release
from adapters.preg import Preg
from filematch.pipeline import wash
from filematch.records import InputRecord
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile, release_of, search_scope
from server.hl7.pid import pid_from_current
from store import schema as s
from store import search as store_search
from store.document import from_document
from store.engine import make_engine, migrate, read_connection
from store.model import PROTECTION_LEVELS, Person, stricter
from store.repository import PersonRepository
from tests.factories import meta, number, person_doc
from tests.integration.preg_support import backend_url

PROFILES = [
    *BUILTIN_PROFILES.values(),
    AccessProfile("klient", "*", frozenset({"identifiers", "name", "addresses"}), "klientadresse"),
    AccessProfile("adresseUtenVern", "*", frozenset({"identifiers", "addresses", "history"}), "ugradert"),
    AccessProfile("utenAdresse", "*", frozenset({"identifiers", "name", "protection"}), "fortrolig"),
]
TYPES = {"bosted": "H", "opphold": "C"}  # a residence, and a D-nummer person's present address (HL7 table 0190)
BORN = dt.date(1985, 7, 9)
Stored = tuple[Engine, dict[tuple[str, str, str], Person]]


def _doc(key: str, type_: str, own: str, floor: str) -> dict[str, Any]:
    kind = "dnr" if type_ == "opphold" else "fnr"
    doc = person_doc(key, born=BORN.isoformat(), street="Kongens gate", house=7, kommune="5001",
                     postnummer="7011", protection=floor,
                     identifiers=[{"number": number(kind, BORN), "kind": kind, "status": "iBruk", **meta()}])
    doc["addresses"][0].update(type=type_, protection=own, poststed="TRONDHEIM", bydel=None)
    return doc


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    with backend_url(request.param, tmp_path_factory.mktemp(f"renderings-{request.param}")) as url:
        yield from _store(url)


def _store(url: str) -> Iterator[Stored]:
    engine = make_engine(url)
    migrate(engine)
    persons: dict[tuple[str, str, str], Person] = {}
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for type_ in TYPES:
            for own in PROTECTION_LEVELS:
                for floor in PROTECTION_LEVELS:
                    p = from_document(_doc(f"{type_}-{own}-{floor}", type_, own, floor))
                    repo.save(p)
                    persons[(type_, own, floor)] = p
    yield engine, persons
    engine.dispose()


def _preg(person: Person, profile: AccessProfile) -> tuple[str, str, str, str] | None:
    """(adressetekst, kommunenummer, spesregKode, adressetype) of the PREG face's first address, or None."""
    preg = Preg()
    root = preg.element("svar")
    el = preg.person(root, apply_profile(person, profile))
    adr = el.find(f"{{{preg.ns}}}adresser/{{{preg.ns}}}adresse")
    if adr is None:
        return None
    def t(name: str) -> str:
        return adr.findtext(f"{{{preg.ns}}}{name}") or ""
    return t("adressetekst"), t("kommunenummer"), t("spesregKode"), t("adressetype")


def _pid(current: str, person: Person, profile: AccessProfile) -> tuple[str, str, str] | None:
    """(XAD-1, XAD-9 kommune, XAD-7 type) of PID-11's first repetition from the fast path, or None; the fast
    path's PID equals the general encoder's."""
    fast, _ = pid_from_current(current, release_of(profile), 1)
    assert fast == pid_segment(apply_profile(person, profile), 1)
    xad = [*fast.split("|"), *[""] * 12][11]
    if not xad:
        return None
    parts = [*xad.split("~")[0].split("^"), *[""] * 9]  # trailing empty components are left out
    return parts[0], parts[8], parts[6]


def _wash(conn: Any, person: Person, profile: AccessProfile) -> tuple[str, str, str] | None:
    """(street, kommune, protection) of the Filematch wash answer for the person's number, or None."""
    record = InputRecord(1, "r1", number=person.current_identifier.number)  # type: ignore[union-attr]
    (result,) = wash(conn, [record], release_of(profile)).results
    if not (result.street or result.kommune or result.protection):
        return None
    return result.street, result.kommune, result.protection


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_the_three_renderings_agree(stored: Stored, profile: AccessProfile) -> None:
    engine, persons = stored
    with read_connection(engine) as conn:
        ids = {pid: key for pid, key in conn.execute(select(s.person.c.id, s.person.c.person_key))}
        views = {ids[pid]: text for pid, text in conn.execute(select(s.person_current.c.person_id,
                                                                       s.person_current.c.current))}
        for (type_, own, floor), person in persons.items():
            level = stricter(own, floor)
            preg, pid, washed = _preg(person, profile), _pid(views[person.person_key], person, profile), \
                _wash(conn, person, profile)
            case = f"{profile.name} {type_} own={own} floor={floor}"
            if not profile.allows("addresses"):
                assert preg is None and pid is None and washed is None, case
                continue
            assert preg is not None and pid is not None and washed is not None, case
            text, kommune, code, shown_type = preg
            assert (pid[0], pid[1]) == (text, kommune), case
            assert (washed[0], washed[1], washed[2]) == (text, kommune, code), case
            assert shown_type == type_ and pid[2] == TYPES[type_], case
            # … and what they agree on is the policy's table
            assert code == DSF_CODES[level], case
            if profile.may_see(level):
                assert (text, kommune) == ("Kongens gate 7", "5001"), case
            else:
                assert text == PLACEHOLDERS[level], case
                assert kommune == ("5001" if LEVELS[level].keeps_kommune else ""), case


def test_one_release_per_profile_and_its_table() -> None:
    for profile in PROFILES:
        release = release_of(profile)
        assert release is release_of(profile)  # cached: the faces share it
        assert release.elements == profile.elements
        assert set(release.masked) == {lv for lv in PROTECTION_LEVELS if not profile.may_see(lv)}
        assert "strengtFortrolig" in release.masked  # never released, whatever the profile
        assert release.scope == search_scope(profile)
        again = pickle.loads(pickle.dumps(release))  # Filematch sends it to worker processes
        assert (again.elements, dict(again.masked), again.name, again.history) == \
            (release.elements, dict(release.masked), release.name, release.history)
    assert RELEASABLE_LEVELS == ("ugradert", "klientadresse", "fortrolig")
    # the store indexes addresses only at levels some profile may release (store.search): the same rule
    assert store_search._INDEXED_LEVELS == frozenset(RELEASABLE_LEVELS)
    with pytest.raises(ValueError, match="unknown protection level"):
        BUILTIN_PROFILES["full"].may_see("hemmelig")
    assert Release(frozenset({"name"})).masked == {}


def test_placeholders_survive_every_wire_format() -> None:
    """No placeholder holds an HL7 delimiter, an XML special or a CSV separator (the fast paths do not escape
    them)."""
    for text in PLACEHOLDERS.values():
        assert not set(text) & set("\\|^&~\r\n<>;\"'")
        assert etree.fromstring(f"<a>{text}</a>").text == text
