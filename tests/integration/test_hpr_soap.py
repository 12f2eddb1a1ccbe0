"""The HPR face end to end: zeep, generated from NHN's real HPR v2 WSDL (tests/data), against a running server.

One server per backend (SQLite, PostgreSQL) serves a small synthetic population plus one record with history
(tests.factories.hpr_history_doc: an expired approval, an ended and a current speciality, a past suspension).
Every answered operation is called on both ports (``BasicHttpBinding`` SOAP 1.1 at ``/v2/HPR/Basic``,
``WSHttpBinding`` SOAP 1.2 + WS-Addressing at ``/v2/HPR``), with the contract's non-ASCII names (``Søk``,
``påTidspunkt``, ``Kjønn``); every answer's body element is validated against the real WSDL's inline schemas,
compiled here independently of the server's copy. Faults carry NHN's texts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import Engine, select

from server.access import load_profiles
from store import schema as s
from store.synthetic import generate_population
from tests.factories import hpr_history_doc
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.wcf_support import SOAP11, SOAP12, WcfClient, body_element, loaded_store, schema_of, serving

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

DATA = Path(__file__).resolve().parents[1] / "data"
WSDL = DATA / "helsepersonellregisteret.wsdl"
HPR = "http://schemas.nhn.no/reg/HPRv2"
NO = "http://schemas.nhn.no/reg/Common/no"
COMMON = "http://register.nhn.no/Common"
WSA = "http://www.w3.org/2005/08/addressing"
BINDINGS = {"basic": (f"{{{HPR}}}BasicHttpBinding_IHPR2Service", "/v2/HPR/Basic"),
            "ws": (f"{{{HPR}}}WSHttpBinding_IHPR2Service", "/v2/HPR")}
USER, PASSWORD = "epj-hpr", "correct horse battery staple"
SEED = 20261204
HISTORY = 9100001


def real_schema() -> etree.XMLSchema:
    return schema_of(WSDL)


@dataclass
class HprServer:
    engine: Engine
    base: str
    records: list[dict[str, Any]]

    def first(self, category: str) -> dict[str, Any]:
        return next(r for r in self.records if r["approvals"] and r["approvals"][0]["category"]["value"] == category)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hpr_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HprServer]:
    from server.soap.hpr import build_hpr_app

    work = tmp_path_factory.mktemp(f"hpr-{request.param}")
    generate_population(work / "pop", 400, SEED, feed_days=0)
    with (work / "pop" / "hpr.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(hpr_history_doc(HISTORY), ensure_ascii=False) + "\n")
    records = [json.loads(line) for line in (work / "pop" / "hpr.jsonl").read_text().splitlines()]
    with (loaded_store(request.param, work, work / "pop", [(USER, PASSWORD, "full")]) as store,
          serving(lambda base: build_hpr_app(store.engine, store.authenticator, load_profiles(None), store.audit,
                                             public_base_url=base)) as base):
        yield HprServer(store.engine, base, records)


class Client(WcfClient):
    def __init__(self, srv: HprServer, port: str) -> None:
        binding, path = BINDINGS[port]
        super().__init__(WSDL, binding, srv.base + path, (USER, PASSWORD), port)


@pytest.fixture(params=["basic", "ws"])
def client(request: pytest.FixtureRequest, hpr_server: HprServer) -> Client:
    return Client(hpr_server, request.param)


def test_ping(client: Client) -> None:
    assert client.call("Ping", requestId="abc-123") == "abc-123"


def test_hent_person_as_today(client: Client, hpr_server: HprServer) -> None:
    doc = hpr_server.first("LE")
    person = client.call("HentPerson", hprNummer=doc["hprNumber"], påTidspunkt=None)
    assert (person.HPRNummer, person.Fornavn, person.Etternavn, person.NIN) == (
        doc["hprNumber"], doc["givenName"], doc["familyName"], doc["nin"])
    assert person.Kjønn.Verdi == doc["gender"]["value"] and person.Kjønn.OID == 3101
    assert person.Fødselsdato.date().isoformat() == doc["birthDate"] and person.ManglerNIN is False
    (approval,) = person.Godkjenninger.Godkjenning
    assert approval.Helsepersonellkategori.Verdi == "LE" and approval.Gyldig.Til is None
    assert approval.Id == doc["approvals"][0]["id"]
    assert [s.Type.Verdi for s in (approval.Spesialiteter.Spesialitet if approval.Spesialiteter else [])] == [
        x["type"]["value"] for x in doc["approvals"][0]["specialities"]]
    names = [etree.QName(el).localname for el in body_element(client.last())[0]]
    assert names.index("FysiskeAdresser") < names.index("Fødselsdato") and "Kjønn" in names


def test_paa_tidspunkt_is_honoured(client: Client) -> None:
    now = client.call("HentPerson", hprNummer=HISTORY)
    (le,) = now.Godkjenninger.Godkjenning
    assert [x.Id for x in le.Spesialiteter.Spesialitet] == [HISTORY * 10 + 3]
    assert le.Suspensjonsperioder is None or not le.Suspensjonsperioder.Suspensjonsperiode
    suspended = client.call("HentPerson", hprNummer=HISTORY, påTidspunkt=dt.datetime(2019, 3, 1, 12))
    assert [x.Periode.Fra.date() for x in suspended.Godkjenninger.Godkjenning[0].Suspensjonsperioder
            .Suspensjonsperiode] == [dt.date(2019, 1, 1)]
    in_2010 = client.call("HentPerson", hprNummer=HISTORY, påTidspunkt=dt.datetime(2010, 1, 1))
    assert [x.Id for x in in_2010.Godkjenninger.Godkjenning[0].Spesialiteter.Spesialitet] == [HISTORY * 10 + 2]
    nurse = client.call("HentPerson", hprNummer=HISTORY, påTidspunkt=dt.datetime(1997, 6, 1))
    assert [g.Helsepersonellkategori.Verdi for g in nurse.Godkjenninger.Godkjenning] == ["SP"]
    history = client.call("HentPersonMedHistorikk", hprNummer=HISTORY)
    assert len(history.Godkjenninger.Godkjenning) == 2
    assert len(history.Godkjenninger.Godkjenning[0].Spesialiteter.Spesialitet) == 2


def test_hent_person_med_personnummer_and_hent_personer(client: Client, hpr_server: HprServer) -> None:
    doc = hpr_server.first("LE")
    person = client.call("HentPersonMedPersonnummer", personNummer=doc["nin"])
    assert person.HPRNummer == doc["hprNumber"]
    others = [r["hprNumber"] for r in hpr_server.records[:3]]
    arrays = client.client.get_type("{http://schemas.microsoft.com/2003/10/Serialization/Arrays}ArrayOfint")
    found = client.call("HentPersoner", hprNummer=arrays([*others, 1]), medAdresser=True,
                        påTidspunkt=dt.datetime(2026, 1, 1))
    assert [p.HPRNummer for p in found] == others


def test_sok_and_sok2(client: Client, hpr_server: HprServer) -> None:
    doc = hpr_server.first("LE")
    hits = client.call("Søk", search={"Etternavn": doc["familyName"], "Fornavn": doc["givenName"][:3]})
    assert doc["hprNumber"] in [p.HPRNummer for p in hits]
    nurses = [r for r in hpr_server.records if any(a["category"]["value"] == "SP" for a in r["approvals"])]
    arrays = client.client.get_type("{http://schemas.microsoft.com/2003/10/Serialization/Arrays}ArrayOfstring")
    page = client.call("Søk2", search={"Helsepersonellkategorier": arrays(["SP"]), "Side": 1,
                                       "ResultaterPerSide": 2, "KunBasisData": True})
    assert page.ResultaterTotalt == len(nurses) and page.Side == 1 and page.ResultaterPerSide == 2
    assert len(page.Personer.Person) == min(2, len(nurses))
    everyone = client.call("Søk2", search={"Side": 2, "ResultaterPerSide": 5, "KunBasisData": False})
    assert everyone.ResultaterTotalt == len(hpr_server.records)
    assert [p.HPRNummer for p in everyone.Personer.Person] == sorted(r["hprNumber"] for r in hpr_server.records)[5:10]
    women = client.call("Søk", search={"Etternavn": "Ødegård", "Kjønn": "2"})
    assert [p.HPRNummer for p in women] == [HISTORY]
    code, message = client.fault("Søk", search={"Adresse": "Storgata 1"})
    assert code == "InvalidRequest" and "Adresse" in message
    assert client.fault("Søk", search={"KunBasisData": True})[0] == "InvalidRequest"


def test_hent_godkjenning_and_changes(client: Client) -> None:
    approval = client.call("HentGodkjenning", godkjenningId=HISTORY * 10 + 1, påTidspunkt=dt.datetime(2019, 2, 1))
    assert approval.Id == HISTORY * 10 + 1 and len(approval.Suspensjonsperioder.Suspensjonsperiode) == 1
    changes = client.call("HentEndringerForPerson", hprNummer=HISTORY, fra=dt.datetime(2026, 1, 1))
    assert [c.EndredeEntiteter.EndretEntitet[0].EntitetsIder.string for c in changes] == [[str(HISTORY)]]
    assert client.call("HentEndringerForPerson", hprNummer=HISTORY, fra=dt.datetime(2026, 12, 1)) is None
    page = client.call("HentRegisterEndringer", fra=dt.datetime(2026, 11, 1), til=dt.datetime(2026, 12, 1),
                       side=1, resultaterPerSide=3)
    assert page.ResultaterTotalt >= 2 and len(page.Personer.Person) == 3


@pytest.mark.parametrize(("op", "kwargs", "message"), [
    ("HentPerson", {"hprNummer": 1}, "ArgumentException: HPR-nummer ikke funnet"),
    ("HentPerson", {}, "ArgumentException: HPR-nummer må oppgis"),
    ("HentPersonMedHistorikk", {"hprNummer": 0}, "ArgumentException: HPR-nummer må oppgis"),
    ("HentPersonMedPersonnummer", {"personNummer": "01010112345"}, "ArgumentException: Personnummer ikke funnet"),
    ("HentPersonMedPersonnummer", {"personNummer": "not a number"}, "ArgumentException: Personnummer ikke funnet"),
    ("HentGodkjenning", {"godkjenningId": 5}, "ArgumentException: Godkjenning ikke funnet"),
    ("HentEndringerForPerson", {"hprNummer": 1, "fra": dt.datetime(2020, 1, 1)},
     "ArgumentException: HPR-nummer ikke funnet"),
])
def test_faults_in_nhn_words(client: Client, op: str, kwargs: dict[str, Any], message: str) -> None:
    assert client.fault(op, **kwargs) == ("Feil", message)  # Sender/Client and the schema checked there


@pytest.mark.parametrize(("op", "kwargs"), [
    ("SlettPerson", {"hprNummer": 1}),
    ("SlåSammen", {"hprDestinasjon": 1, "hprUtgår": 2}),
    ("HentUtdanningsinstitusjoner", {}),
])
def test_maintenance_operations_are_not_supported(client: Client, op: str, kwargs: dict[str, Any]) -> None:
    assert client.fault(op, **kwargs)[0] == "OperationNotSupported"


def _post(srv: HprServer, body: bytes, content_type: str, path: str = "/v2/HPR/Basic") -> requests.Response:
    return requests.post(srv.base + path, data=body, headers={"Content-Type": content_type},
                         auth=(USER, PASSWORD), timeout=10)


def _sok(encoding: str, declared: str) -> bytes:
    return (f'<?xml version="1.0" encoding="{declared}"?><s:Envelope xmlns:s="{SOAP11}"><s:Body>'
            f'<Søk xmlns="{HPR}"><search><Etternavn>Ødegård</Etternavn></search></Søk></s:Body>'
            "</s:Envelope>").encode(encoding)


@pytest.mark.parametrize(("encoding", "declared", "charset"), [
    ("utf-8", "utf-8", "utf-8"),
    ("utf-8", "ISO-8859-1", "ISO-8859-1"),  # the known client: says ISO-8859-1, sends UTF-8
    ("utf-8", "utf-8", "ISO-8859-1"),
    ("iso-8859-1", "ISO-8859-1", "ISO-8859-1"),  # really ISO-8859-1
])
def test_non_ascii_names_in_either_charset(hpr_server: HprServer, encoding: str, declared: str, charset: str) -> None:
    answer = _post(hpr_server, _sok(encoding, declared), f"text/xml; charset={charset}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].lower().replace(" ", "").endswith("charset=utf-8")
    body = body_element(etree.fromstring(answer.content))
    real_schema().assertValid(body)
    assert body.tag == f"{{{HPR}}}SøkResponse"
    assert [p.findtext(f"{{{HPR}}}HPRNummer") for p in body[0]] == [str(HISTORY)]
    assert "Ødegård".encode() in answer.content


def test_ws_addressing_and_audit(hpr_server: HprServer) -> None:
    envelope = (f'<s:Envelope xmlns:s="{SOAP12}" xmlns:a="{WSA}"><s:Header>'
                f"<a:Action>{HPR}/IHPR2Service/HentPerson</a:Action><a:MessageID>urn:uuid:1</a:MessageID>"
                f'</s:Header><s:Body><HentPerson xmlns="{HPR}"><hprNummer>{HISTORY}</hprNummer>'
                "</HentPerson></s:Body></s:Envelope>")
    answer = etree.fromstring(_post(hpr_server, envelope.encode(), "application/soap+xml; charset=utf-8",
                                    "/v2/HPR").content)
    assert answer.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action") == f"{HPR}/IHPR2Service/HentPersonResponse"
    assert answer.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}RelatesTo") == "urn:uuid:1"
    with hpr_server.engine.connect() as conn:
        ops = set(conn.execute(select(s.audit_event.c.operation).where(s.audit_event.c.face == "soap-hpr")).scalars())
    assert "HentPerson" in ops


def test_no_credentials_is_http_401_and_wsdl_is_served(hpr_server: HprServer) -> None:
    answer = requests.post(hpr_server.base + "/v2/HPR/Basic", data=b"<x/>", timeout=10,
                           headers={"Content-Type": "text/xml"})
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic ")
    for path in ("/v2/HPR", "/v2/HPR/Basic"):
        served = etree.fromstring(requests.get(hpr_server.base + path + "?wsdl", timeout=10).content)
        locations = {e.get("location") for e in served.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address",
                                                             "{http://schemas.xmlsoap.org/wsdl/soap12/}address")}
        assert locations == {hpr_server.base + "/v2/HPR/Basic", hpr_server.base + "/v2/HPR"}


def test_a_second_soap_stack_node_soap_calls_hent_person(hpr_server: HprServer, request: pytest.FixtureRequest) -> None:
    from tests.integration.node_soap import node_soap

    call = node_soap(request.config)
    for version, path in (("1.1", "/v2/HPR/Basic"), ("1.2", "/v2/HPR")):
        answer = call(hpr_server.base + path + "?wsdl", hpr_server.base + path, (USER, PASSWORD),
                      "HentPerson", {"hprNummer": HISTORY}, version)
        person = answer["result"]["HentPersonResult"]
        assert (person["HPRNummer"], person["Etternavn"], person["Kjønn"]["Verdi"]) == (HISTORY, "Ødegård", "2")
        real_schema().assertValid(body_element(etree.fromstring(answer["xml"].encode())))
    missing = call(hpr_server.base + "/v2/HPR?wsdl", hpr_server.base + "/v2/HPR", (USER, PASSWORD), "HentPerson",
                   {"hprNummer": 1}, "1.2")
    assert missing["fault"]["message"] == "ArgumentException: HPR-nummer ikke funnet"


@pytest.mark.parametrize(("body", "code"), [
    (f'<HentPerson xmlns="{HPR}"><hprNummer>{HISTORY}</hprNummer><påTidspunkt>10000-01-01T00:00:00</påTidspunkt>'
     "</HentPerson>", "InvalidRequest"),  # valid xs:dateTime, beyond what the register keeps
    (f'<HentPerson xmlns="{HPR}"><hprNummer>99999999999</hprNummer></HentPerson>', "InvalidRequest"),  # not an int
    (f'<HentPerson xmlns="{HPR}"><hprNummer>-5</hprNummer></HentPerson>', "Feil"),
    (f'<HentPersoner xmlns="{HPR}"><hprNummer>' + "<int xmlns='http://schemas.microsoft.com/2003/10/Serialization/"
     "Arrays'>1</int>" * 1001 + "</hprNummer></HentPersoner>", "InvalidRequest"),
    (f'<Søk2 xmlns="{HPR}"><search><ResultaterPerSide>100000</ResultaterPerSide></search></Søk2>', "InvalidRequest"),
    (f'<HentRegisterEndringer xmlns="{HPR}"><side>-1</side></HentRegisterEndringer>', "InvalidRequest"),
])
def test_hostile_requests_get_a_generic_fault(hpr_server: HprServer, body: str, code: str) -> None:
    envelope = f'<s:Envelope xmlns:s="{SOAP11}"><s:Body>{body}</s:Body></s:Envelope>'
    answer = _post(hpr_server, envelope.encode(), "text/xml; charset=utf-8")
    assert answer.status_code == 500
    fault = body_element(etree.fromstring(answer.content))
    assert fault.findtext(f"detail/{{{COMMON}}}GenericFault/{{{COMMON}}}ErrorCode") == code
    assert fault.findtext("faultcode").endswith(":Client")


def test_a_lookup_by_personnummer_is_in_that_persons_audit_trail(client: Client, hpr_server: HprServer) -> None:
    from server.access import query_audit

    # personnel other than a GP where the population has one (which category the few others of a 400-person
    # population get depends on the generator's draws: once a sykepleier, now not)
    others = [r for r in hpr_server.records if r["approvals"] and r["approvals"][0]["category"]["value"] != "LE"]
    doc = others[0] if others else hpr_server.first("LE")
    client.call("HentPersonMedPersonnummer", personNummer=doc["nin"])
    records = [r for r in query_audit(hpr_server.engine, person=doc["nin"]) if r.face == "soap-hpr"]
    assert records and records[0].operation == "HentPersonMedPersonnummer" and records[0].account == USER
    assert str(doc["hprNumber"]) in records[0].returned
