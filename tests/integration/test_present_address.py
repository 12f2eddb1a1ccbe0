"""The present address (oppholdsadresse; the primary address of a D-nummer holder) on every face, end to end
(docs/extending.md's worked example): PREG over zeep on a loopback socket, HL7 PDQ through python-hl7's MLLP
client, and a Filematch wash in CSV, XML and fixed width — masked by its own confidentiality, searched and
identified by it where it is the person's address, on SQLite and PostgreSQL.

Three persons: a D-nummer holder with a present address and a postal one (the present address leads
everywhere), a D-nummer holder whose present address alone is fortrolig (so the person is, and every
profile without fortrolig sees the placeholder), and a fødselsnummer holder with a residence and a present
address elsewhere (militær service: the residence leads, the present address follows with its reason).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hl7.client import MLLPClient
from lxml import etree
from sqlalchemy import Engine

from filematch.formats import format_named
from filematch.local import wash_file
from server.access import BUILTIN_PROFILES
from server.http.filematch import release_of
from store.document import from_document
from store.engine import make_engine, migrate
from store.repository import PersonRepository
from tests.factories import meta, number, person_doc
from tests.integration.preg_support import ACCOUNTS, NS, SPYNE_WARNINGS, backend_url, running_preg
from tests.integration.test_hl7_mllp import Server, f, message, parsed, seg, segs, serving

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]


@dataclasses.dataclass(frozen=True)
class People:
    dnr: str  # Marta Kowalska: present address in Tromsø (primary), a postal address
    protected: str  # Jonas Berg: a D-nummer holder whose present address is fortrolig
    fnr: str  # Ole Bakke: residence in Oslo, present address elsewhere (militaer)


def _address(type_: str, street: str | None, house: int | None, postnummer: str, poststed: str,
             kommune: str | None, *, protection: str = "ugradert", form: str = "vegadresse",
             lines: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {"type": type_, "form": form, "street": street, "houseNumber": house, "houseLetter": None, "unit": None,
            "co": None, "gardsnummer": None, "bruksnummer": None, "festenummer": None, "lines": list(lines),
            "country": None, "postnummer": postnummer, "poststed": poststed, "kommune": kommune, "bydel": None,
            "protection": protection, "movedAt": "2024-02-01", **meta(True, "2024-02-01"), **extra}


def _people() -> tuple[People, list[dict[str, Any]]]:
    born = {"dnr": dt.date(1991, 4, 12), "protected": dt.date(1988, 9, 3), "fnr": dt.date(2004, 1, 20)}
    people = People(number("dnr", born["dnr"], female=True), number("dnr", born["protected"], female=False),
                    number("fnr", born["fnr"], female=False))

    def ident(n: str, kind: str) -> list[dict[str, Any]]:
        return [{"number": n, "kind": kind, "status": "iBruk", **meta()}]

    docs = [
        person_doc("pa-dnr", given="Marta", family="Kowalska", born=born["dnr"].isoformat(), gender="kvinne",
                   status="midlertidig", identifiers=ident(people.dnr, "dnr"), protection="ugradert",
                   addresses=[_address("opphold", "Havnegata", 4, "9008", "TROMSØ", "5501"),
                              _address("post", None, None, "9001", "TROMSØ", None, form="postboks",
                                       lines=("Postboks 12",))]),
        person_doc("pa-protected", given="Jonas", family="Berg", born=born["protected"].isoformat(),
                   status="midlertidig", identifiers=ident(people.protected, "dnr"), protection="ugradert",
                   addresses=[_address("opphold", "Skjulte vei", 9, "5003", "BERGEN", "4601",
                                       protection="fortrolig")]),
        person_doc("pa-fnr", given="Ole", family="Bakke", born=born["fnr"].isoformat(),
                   identifiers=ident(people.fnr, "fnr"),
                   addresses=[_address("bosted", "Storgata", 2, "0150", "OSLO", "0301"),
                              _address("opphold", "Setermoen leir", 1, "9365", "BARDU", "5520",
                                       stayElsewhere="militaer")]),
    ]
    for doc in docs:
        doc["protection"] = []  # no person-level protection: a level comes only from an address's own
    return people, docs


PEOPLE, DOCS = _people()


def add_people(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for doc in DOCS:
            repo.save(from_document(doc))


# -- PREG: getPerson, getAdresses, searchPerson over zeep ---------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def preg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    work = tmp_path_factory.mktemp(f"present-preg-{request.param}")
    with backend_url(request.param, work) as url, running_preg(url, work) as srv:
        add_people(srv.engine)
        yield srv


def _service(srv: Any, profile: str) -> Any:
    return srv.caller(ACCOUNTS[profile]).service("1.1")


def test_preg_shows_a_d_nummer_holders_present_address_first(preg: Any) -> None:
    person = _service(preg, "full").getPerson(personnummer=PEOPLE.dnr).person
    present, postal = person.adresser.adresse
    assert (present.adressetype, present.adressetekst, present.postnummer, present.poststed, present.kommunenavn) \
        == ("opphold", "Havnegata 4", "9008", "TROMSØ", "Tromsø")
    assert (present.spesregKode, present.flyttedato) == ("0", dt.date(2024, 2, 1))
    assert (postal.adressetype, postal.adressetekst) == ("post", "Postboks 12")
    answer = _service(preg, "basis").getAdresses(personnummer=PEOPLE.dnr)
    assert [a.adressetype for a in answer.adresse] == ["opphold", "post"]


def test_preg_shows_a_present_address_elsewhere_after_the_residence_with_its_reason(preg: Any) -> None:
    answer = _service(preg, "full").getAdresses(personnummer=PEOPLE.fnr)
    residence, present = answer.adresse
    assert (residence.adressetype, residence.adressetekst) == ("bosted", "Storgata 2")
    assert (present.adressetype, present.adressetekst, present.oppholdAnnetSted) == (
        "opphold", "Setermoen leir 1", "militaer")
    assert residence.oppholdAnnetSted is None


def test_preg_masks_a_present_address_by_its_own_confidentiality(preg: Any) -> None:
    seen = _service(preg, "full").getAdresses(personnummer=PEOPLE.protected)
    assert [(a.adressetype, a.adressetekst, a.spesregKode) for a in seen.adresse] == [
        ("opphold", "Skjulte vei 9", "7")]
    masked = _service(preg, "utenHjemmel").getAdresses(personnummer=PEOPLE.protected)
    [a] = masked.adresse
    assert (a.adressetype, a.adressetekst, a.spesregKode, a.kommunenummer) == (
        "opphold", "Sperret adr. fortrolig", "7", "4601")
    assert not any((a.gatenavn, a.postnummer, a.poststed, a.husnummer))  # present and empty (zeep: None)


def test_preg_search_finds_a_d_nummer_holder_by_the_present_address(preg: Any) -> None:
    hits = _service(preg, "full").searchPerson(etternavn="Kowalska", postnummer="9008")
    assert [t.person.personnummer for t in hits.treff] == [PEOPLE.dnr]
    # a present address elsewhere is not the person's address: the residence is what a search goes by
    assert _service(preg, "full").searchPerson(etternavn="Bakke", postnummer="9365").antallTreff == 0
    assert _service(preg, "full").searchPerson(etternavn="Bakke", postnummer="0150").antallTreff == 1


def test_preg_answers_validate_with_the_present_address(preg: Any) -> None:
    caller = preg.caller(ACCOUNTS["full"])
    caller.service("1.2").getAdresses(personnummer=PEOPLE.fnr)
    answer = caller.last_answer()
    assert answer.findtext(f".//{{{NS}}}oppholdAnnetSted") == "militaer"
    assert preg.schema_errors == []


# -- HL7: PDQ through python-hl7's MLLP client -------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hl7_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp(f"present-hl7-{request.param}")
    with backend_url(request.param, work) as url, serving(url, more=add_people) as srv:
        yield srv


def _pdq(srv: Server, criteria: str, sender: str = "MIRTH|AHUS") -> list[Any]:
    payload = message("QBP^Q22^QBP_Q21", f"QPD|IHE PDQ Query|tag-1|{criteria}", "RCP|I|10^RD", sender=sender)
    with MLLPClient("127.0.0.1", srv.port) as client:
        raw = client.send_message(payload)
    m = parsed(raw[1:-2])
    assert f(seg(m, "MSA"), 1) == "AA"
    return segs(m, "PID")


def _xads(pid: Any) -> list[list[str]]:
    return [[*rep.split("^"), *[""] * 9][:9] for rep in f(pid, 11).split("~")]


def test_hl7_pid_11_leads_with_a_d_nummer_holders_present_address_as_type_c(hl7_server: Server) -> None:
    (pid,) = _pdq(hl7_server, f"@PID.3.1^{PEOPLE.dnr}")
    present, postal = _xads(pid)
    assert (present[0], present[2], present[4], present[6], present[8]) == ("Havnegata 4", "TROMSØ", "9008", "C",
                                                                            "5501")
    assert (postal[0], postal[6]) == ("Postboks 12", "M")
    (pid,) = _pdq(hl7_server, f"@PID.3.1^{PEOPLE.fnr}")
    assert [(x[0], x[6]) for x in _xads(pid)] == [("Storgata 2", "H"), ("Setermoen leir 1", "C")]


def test_hl7_masks_a_present_address_by_its_own_confidentiality(hl7_server: Server) -> None:
    (pid,) = _pdq(hl7_server, f"@PID.3.1^{PEOPLE.protected}")
    assert [(x[0], x[6], x[8]) for x in _xads(pid)] == [("Skjulte vei 9", "C", "4601")]
    (pid,) = _pdq(hl7_server, f"@PID.3.1^{PEOPLE.protected}", sender="DIPS|OUS")  # utenHjemmel
    assert [(x[0], x[4], x[6], x[8]) for x in _xads(pid)] == [("Sperret adr. fortrolig", "", "C", "4601")]


def test_hl7_pdq_finds_a_d_nummer_holder_by_the_present_address(hl7_server: Server) -> None:
    pids = _pdq(hl7_server, "@PID.5.1^Kowalska~@PID.11.5^9008")
    assert [f(p, 3).split("^")[0] for p in pids] == [PEOPLE.dnr]


# -- Filematch: CSV, XML and fixed width -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def wash_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    work = tmp_path_factory.mktemp(f"present-wash-{request.param}")
    with backend_url(request.param, work) as url:
        engine = make_engine(url)
        migrate(engine)
        add_people(engine)
        yield engine
        engine.dispose()


def _wash(engine: Engine, tmp_path: Path, text: str, fmt: str, profile: str, suffix: str = "csv") -> bytes:
    src = tmp_path / f"in.{suffix}"
    src.write_bytes(text.encode("utf-8"))
    out = io.BytesIO()
    wash_file(engine, src, out, format_named(fmt), release=release_of(BUILTIN_PROFILES[profile]))
    return out.getvalue()


CSV_IN = ("ref;number;given;family;birth;postnummer\r\n"
          f"dnr;{PEOPLE.dnr};;;;\r\n"
          f"protected;{PEOPLE.protected};;;;\r\n"
          f"fnr;{PEOPLE.fnr};;;;\r\n"
          "by-name;;Marta;Kowalska;1991-04-12;9008\r\n")


def _rows(data: bytes) -> dict[str, dict[str, str]]:
    return {r["ref"]: r for r in csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=";")}


def test_filematch_reports_the_present_address_and_its_type(wash_store: Engine, tmp_path: Path) -> None:
    rows = _rows(_wash(wash_store, tmp_path, CSV_IN, "csv", "full"))
    dnr = rows["dnr"]
    assert (dnr["street"], dnr["postnummer"], dnr["poststed"], dnr["kommune"], dnr["protection"],
            dnr["address_type"]) == ("Havnegata 4", "9008", "TROMSØ", "5501", "0", "opphold")
    assert (rows["fnr"]["street"], rows["fnr"]["address_type"]) == ("Storgata 2", "bosted")
    by_name = rows["by-name"]  # identified by demographics and the present address's postnummer
    assert (by_name["code"], by_name["number"], by_name["address_type"]) == ("IDENTIFIED", PEOPLE.dnr, "opphold")
    assert (rows["protected"]["code"], rows["protected"]["street"], rows["protected"]["address_type"]) == (
        "PROTECTED", "Skjulte vei 9", "opphold")


def test_filematch_masks_a_present_address_by_its_own_confidentiality(wash_store: Engine, tmp_path: Path) -> None:
    rows = _rows(_wash(wash_store, tmp_path, CSV_IN, "csv", "utenHjemmel"))
    p = rows["protected"]
    assert (p["code"], p["street"], p["postnummer"], p["poststed"], p["kommune"], p["protection"],
            p["address_type"]) == ("PROTECTED", "Sperret adr. fortrolig", "", "", "4601", "7", "opphold")
    assert rows["dnr"]["street"] == "Havnegata 4"


def test_filematch_xml_and_fixed_width_carry_the_present_address(wash_store: Engine, tmp_path: Path) -> None:
    xml_in = ('<?xml version="1.0" encoding="UTF-8"?><filematch xmlns="urn:no:pregbridge:filematch:v1">'
              f'<record ref="dnr"><number>{PEOPLE.dnr}</number></record></filematch>')
    root = etree.fromstring(_wash(wash_store, tmp_path, xml_in, "xml", "full", "xml"))
    schema = etree.XMLSchema(etree.parse(str(Path(__file__).parents[2] / "xsd" / "filematch.xsd")))
    schema.assertValid(root)
    ns = "{urn:no:pregbridge:filematch:v1}"
    (result,) = root
    assert (result.findtext(f"{ns}street"), result.findtext(f"{ns}address_type")) == ("Havnegata 4", "opphold")
    # the legacy fixed-width layout has no place for the type: the present address is the address reported
    fixed = _wash(wash_store, tmp_path, f"{'dnr':<20}{PEOPLE.dnr}\r\n", "fixed", "full", "txt").decode("utf-8")
    assert fixed[163:203].rstrip() == "Havnegata 4" and fixed[203:207] == "9008"
    assert len(fixed.rstrip("\r\n")) == 320
