"""No oracle on hidden addresses: PREG searchPerson, HL7 PDQ and Filematch identification, SQLite and PostgreSQL.

Issue 13 found that a search by street or postnummer hit a strengt fortrolig person with the true value and not
with a wrong one (every profile, ``full`` included), and that identification scored 30.0 with the true
postnummer and 23.5 with a wrong one. The rule: no answer, hit count, order or score may depend on an element
the caller's profile hides.

The property test asks the same question of two worlds that differ only in one person's hidden value: a random
person P is stored with the value asked for (the "true" value), the served faces are asked, P is stored again
with another value (the question now carries a "wrong" one), and the faces are asked again. Whether the value
is hidden is decided by the one masking policy (:func:`server.access.apply_profile` on P): only values the
profile would see masked are varied. The answers must be identical: PREG's response Body (canonical XML, or
the same fault), the PDQ reply after MSH (hits, QAK counts, order, QRI scores), and the wash of a record
without number (codes, scores, candidates, everything shown). P stays stored, so later examples search among
more hidden persons. Positive controls show that the same questions do tell visible values apart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from sqlalchemy import Engine

from filematch.pipeline import wash
from filematch.records import InputRecord
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile, search_scope
from server.http.filematch import release_of
from store.document import from_document
from store.engine import read_connection
from store.model import PROTECTION_LEVELS
from store.repository import PersonRepository
from tests.factories import meta, number, person_doc
from tests.hostile.bounds_support import assert_no_traceback
from tests.integration.preg_support import (
    ACCOUNTS,
    PASSWORD,
    SPYNE_WARNINGS,
    PregServer,
    backend_url,
    body_child,
    running_preg,
)
from tests.integration.test_hl7_mllp import ACCOUNTS as HL7_ACCOUNTS
from tests.integration.test_hl7_mllp import PEERS as HL7_PEERS
from tests.integration.test_hl7_mllp import PROFILES as HL7_PROFILES
from tests.integration.test_hl7_mllp import Server, ask, message, parsed, serving

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

NO_ADDRESSES = AccessProfile("utenAdresser", "*", frozenset({"identifiers", "name", "birth", "gender"}), "fortrolig")
KLIENT_ONLY = AccessProfile("klientNivaa", "*", BUILTIN_PROFILES["basis"].elements, "klientadresse")
EXTRA_TOML = """
[profiles.utenAdresser]
operations = "*"
elements = ["identifiers", "name", "birth", "gender"]
max_protection = "fortrolig"

[profiles.klientNivaa]
operations = "*"
elements = ["identifiers", "name", "birth", "gender", "status", "death", "addresses"]
max_protection = "klientadresse"
"""
PREG_PROFILES = {p.name: p for p in (*BUILTIN_PROFILES.values(), NO_ADDRESSES, KLIENT_ONLY)}
PREG_USERS = {**{name: ACCOUNTS[name] for name in BUILTIN_PROFILES}, "utenAdresser": "epj-uten-adresser",
              "klientNivaa": "epj-klient"}
# HL7 senders (MSH-3|MSH-4) by profile name: tests/integration/test_hl7_mllp.py's peers and accounts
HL7_SENDERS = {"full": "MIRTH|AHUS", "utenHjemmel": "DIPS|OUS", "basis": "BASIS|X"}

FAMILIES = ("Berg", "Dahl", "Lunde", "Hansen", "Strand")
GIVENS = ("Kari", "Ola", "Siri", "Per", "Anne")
VALUES = {"postnummer": ("0150", "0151", "5003", "7010", "2211"),
          "street": ("Storgata", "Kirkeveien", "Bakkegata", "Fjellvegen", "Sjøgata"),
          "kommune": ("0301", "4601", "5001", "3401", "1804")}
FIELDS = {"postnummer": "postnummer", "street": "street", "kommune": "kommune"}  # criterion → address attribute


@dataclass
class Faces:
    preg: PregServer
    hl7: Server

    @property
    def engines(self) -> tuple[Engine, Engine]:
        return self.preg.engine, self.hl7.engine


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def faces(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faces]:
    work = tmp_path_factory.mktemp(f"oracle-{request.param}")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(backend_url(request.param, work))
        srv = stack.enter_context(running_preg(url, work, profiles_toml=EXTRA_TOML))
        for profile, user in PREG_USERS.items():
            if user not in ACCOUNTS.values():
                srv.components.accounts.add(user, PASSWORD, profile)
        hl7_work = tmp_path_factory.mktemp(f"oracle-hl7-{request.param}")
        hl7_url = stack.enter_context(backend_url(request.param, hl7_work))
        yield Faces(srv, stack.enter_context(serving(hl7_url)))


@pytest.fixture(autouse=True)
def _clean_log(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    assert_no_traceback(caplog, capfd)


# -- one person, one question, two worlds -------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str
    family: str
    given: str
    born: str
    gender: str
    address: dict[str, str]  # postnummer, street, kommune
    level: str
    field: str  # the criterion: postnummer | street | kommune
    wrong: str
    year_too: bool  # the question also gives the birth year

    def doc(self, value: str) -> dict[str, Any]:
        a = {**self.address, self.field: value}
        return person_doc(self.key, given=self.given, family=self.family, born=self.born, gender=self.gender,
                          postnummer=a["postnummer"], street=a["street"], kommune=a["kommune"],
                          protection=self.level, identifiers=[{
                              "number": _number(self.key, self.born, self.gender), "kind": "fnr", "status": "iBruk",
                              **meta()}])

    @property
    def true(self) -> str:
        return self.address[self.field]


_NUMBERS: dict[str, str] = {}


def _number(key: str, born: str, gender: str) -> str:
    """P's number: the same in both worlds."""
    if key not in _NUMBERS:
        _NUMBERS[key] = number("fnr", dt.date.fromisoformat(born), female=gender == "kvinne")
    return _NUMBERS[key]


@functools.cache
def hidden(profile: AccessProfile, level: str, field: str) -> bool:
    """Does ``profile`` see ``field`` of an address at ``level`` masked (the one masking policy)?"""
    person = from_document(person_doc("probe", protection=level))
    view = apply_profile(person, profile)
    if not view.addresses:
        return True
    return not getattr(view.addresses[0], FIELDS[field])


def _store(engines: tuple[Engine, ...], doc: dict[str, Any]) -> None:
    for engine in engines:
        with engine.begin() as conn:
            PersonRepository(conn).save(from_document(doc))


def _preg_answer(srv: PregServer, profile: str, case: Case, value: str) -> bytes:
    element = {"postnummer": "postnummer", "street": "gatenavn", "kommune": "kommunenummer"}[case.field]
    year = f"<p:fodselsaar>{case.born[:4]}</p:fodselsaar>" if case.year_too else ""
    answer = srv.call("1.1", f"<p:searchPerson><p:etternavn>{case.family}</p:etternavn>{year}"
                             f"<p:{element}>{value}</p:{element}><p:maksAntall>200</p:maksAntall></p:searchPerson>",
                      auth=(PREG_USERS[profile], PASSWORD))
    canonical: bytes = etree.tostring(body_child(answer.xml()), method="c14n")
    return f"{answer.status} ".encode() + canonical


def _pdq_answer(srv: Server, profile: str, case: Case, value: str) -> list[str]:
    name = {"postnummer": "@PID.11.5", "street": "@PID.11.1", "kommune": "@PID.11.9"}[case.field]
    year = f"~@PID.7^{case.born[:4]}" if case.year_too else ""
    (reply,) = ask(srv, message("QBP^Q22^QBP_Q21", f"QPD|IHE PDQ Query|t|@PID.5.1^{case.family}{year}~{name}^{value}",
                                "RCP|I|200^RD", sender=HL7_SENDERS[profile]))
    m = parsed(reply)
    return [str(s) for s in m if str(s[0]) not in ("MSH", "DSC")]


def _wash_answer(engine: Engine, profile: AccessProfile, case: Case, value: str) -> list[Any]:
    record = InputRecord(seq=1, given=case.given, family=case.family, birth=case.born,
                         gender="K" if case.gender == "kvinne" else "M", **{case.field: value})
    with read_connection(engine) as conn:
        results = wash(conn, [record], release_of(profile)).results
    return [dataclasses.asdict(r) for r in results]


def _answers(faces: Faces, profile: str, case: Case) -> tuple[Any, ...]:
    out: list[Any] = [_preg_answer(faces.preg, profile, case, case.true),
                      _wash_answer(faces.preg.engine, PREG_PROFILES[profile], case, case.true)]
    if profile in HL7_SENDERS:
        out.append(_pdq_answer(faces.hl7, profile, case, case.true))
    return tuple(out)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, Case]:
    profile = draw(st.sampled_from(sorted(PREG_PROFILES)))
    field = draw(st.sampled_from(sorted(VALUES)))
    levels = [lv for lv in PROTECTION_LEVELS if hidden(PREG_PROFILES[profile], lv, field)]
    level = draw(st.sampled_from(levels))  # never empty: strengt fortrolig is hidden from every profile
    address = {name: draw(st.sampled_from(values)) for name, values in VALUES.items()}
    wrong = draw(st.sampled_from([v for v in VALUES[field] if v != address[field]]))
    case = Case(key=f"oracle-{draw(st.integers(0, 10**9))}", family=draw(st.sampled_from(FAMILIES)),
                given=draw(st.sampled_from(GIVENS)),
                born=f"{draw(st.integers(1970, 1974))}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}",
                gender=draw(st.sampled_from(("kvinne", "mann"))), address=address, level=level, field=field,
                wrong=wrong, year_too=draw(st.booleans()))
    return profile, case


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=cases())
def test_no_answer_depends_on_a_hidden_address_value(faces: Faces, drawn: tuple[str, Case]) -> None:
    profile, case = drawn
    _store(faces.engines, case.doc(case.true))
    with_true = _answers(faces, profile, case)
    _store(faces.engines, case.doc(case.wrong))
    with_wrong = _answers(faces, profile, case)
    assert with_true == with_wrong


# -- the cases, and positive controls ---------------------------------------------------------------


def _case(level: str, field: str = "postnummer", key: str = "", family: str = "Vikingstad") -> Case:
    return Case(key=key or f"control-{level}-{field}", family=family, given="Solveig", born="1971-04-05",
                gender="kvinne", address={"postnummer": "0150", "street": "Storgata", "kommune": "0301"},
                level=level, field=field, wrong=VALUES[field][1], year_too=False)


@pytest.mark.parametrize("field", sorted(VALUES))
@pytest.mark.parametrize("profile", sorted(PREG_PROFILES))
def test_a_strengt_fortrolig_person_is_never_found_by_its_address(faces: Faces, profile: str, field: str) -> None:
    case = _case("strengtFortrolig", field, key=f"sf-{profile}-{field}")
    _store(faces.engines, case.doc(case.true))
    preg = _preg_answer(faces.preg, profile, case, case.true)
    assert b"Vikingstad" not in preg
    if profile in HL7_SENDERS:
        assert not [s for s in _pdq_answer(faces.hl7, profile, case, case.true) if s.startswith("PID")]


def test_identification_scores_a_hidden_postnummer_neither_up_nor_down(faces: Faces) -> None:
    case = _case("strengtFortrolig", key="sf-score", family="Kvernmo")  # the only Kvernmo: identified
    _store(faces.engines, case.doc(case.true))
    (right,) = _wash_answer(faces.preg.engine, BUILTIN_PROFILES["full"], case, case.true)
    (wrong,) = _wash_answer(faces.preg.engine, BUILTIN_PROFILES["full"], case, case.wrong)
    assert right["code"] == "IDENTIFIED" and right == {**wrong, "input_number": right["input_number"]}


@pytest.mark.parametrize(("profile", "level"), [("full", "ugradert"), ("full", "fortrolig"), ("basis", "klientadresse"),
                                                ("utenHjemmel", "ugradert"), ("klientNivaa", "klientadresse")])
def test_a_visible_address_is_still_searched_and_scored(faces: Faces, profile: str, level: str) -> None:
    case = _case(level, key=f"visible-{profile}-{level}")
    assert not hidden(PREG_PROFILES[profile], level, "postnummer")
    _store(faces.engines, case.doc(case.true))
    assert b"Vikingstad" in _preg_answer(faces.preg, profile, case, case.true)
    assert b"Vikingstad" not in _preg_answer(faces.preg, profile, case, case.wrong)
    (right,) = _wash_answer(faces.preg.engine, PREG_PROFILES[profile], case, case.true)
    (wrong,) = _wash_answer(faces.preg.engine, PREG_PROFILES[profile], case, case.wrong)
    assert float(right["score"]) > float(wrong["score"])
    if profile in HL7_SENDERS:
        assert [s for s in _pdq_answer(faces.hl7, profile, case, case.true) if s.startswith("PID")]


def test_a_profile_without_addresses_may_not_search_by_one(faces: Faces) -> None:
    case = _case("ugradert", key="no-addresses")
    _store(faces.engines, case.doc(case.true))
    answer = _preg_answer(faces.preg, "utenAdresser", case, case.true)
    assert answer.startswith(b"500 ") and b"InvalidRequest" in answer and b"does not release addresses" in answer


@pytest.mark.parametrize("profile", [*BUILTIN_PROFILES.values(), NO_ADDRESSES, KLIENT_ONLY,
                                     *(p for p in HL7_PROFILES.values() if p.name not in BUILTIN_PROFILES)])
def test_filematch_identification_derives_the_same_scope_as_the_other_faces(profile: AccessProfile) -> None:
    assert release_of(profile).scope == search_scope(profile)


def test_every_hl7_sender_used_here_is_the_profile_it_is_named_for() -> None:
    for profile, sender in HL7_SENDERS.items():
        peer = HL7_PEERS.get(sender.replace("|", "^")) or HL7_PEERS[sender.split("|")[0]]  # MSH-3^MSH-4, or MSH-3
        assert HL7_ACCOUNTS[peer] == profile
