"""The FLR face end to end: zeep, generated from NHN's real FLR WSDL (tests/data), against a running server.

One server per backend (SQLite, PostgreSQL) serves a small synthetic population whose FLR file is edited
before loading to hold every case the contract documents: a list whose GP is away with one substitute
(GPHerId is the substitute's), one with two substitutes and a service party ("liste uten fast lege":
GPHerId is the service's), one with neither (GPHerId nil), a patient who changed lists (history), a patient
asked for by a ceased D-nummer, a resident on no list, and a primary health care team. Every operation is
called on both ports (``BasicHttpBinding`` SOAP 1.1 at ``/v2/flr/Basic``, ``WSHttpBinding`` SOAP 1.2 +
WS-Addressing at ``/v2/flr``); every answer's body is validated against the real WSDL's inline schemas
(compiled here), and GetPatientGPDetails answers and faults are compared structurally with NHN's example
responses (tests/data/flr-examples).
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import Engine

from server.access import load_profiles, query_audit
from server.access.profiles import AccessProfile
from store.identity import IdKind, Synthetic, generate
from store.synthetic import generate_population
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.wcf_support import (
    SOAP11,
    SOAP12,
    WcfClient,
    assert_same_structure,
    body_element,
    loaded_store,
    schema_of,
    serving,
)

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

DATA = Path(__file__).resolve().parents[1] / "data"
WSDL = DATA / "nhn-fastlegeregisteret-read.wsdl"
EXAMPLES = DATA / "flr-examples"
FLR = "http://schemas.nhn.no/reg/flr"
COMMON = "http://register.nhn.no/Common"
WSA = "http://www.w3.org/2005/08/addressing"
BINDINGS = {"basic": (f"{{{FLR}}}BasicHttpBinding_IFlrReadOperations", "/v2/flr/Basic"),
            "ws": (f"{{{FLR}}}WSHttpBinding_IFlrReadOperations", "/v2/flr")}
USER, PASSWORD = "epj-flr", "correct horse battery staple"
LOOKUP_USER = "flr-lookup"
SEED = 20261203
TEAM = 77


def real_schema() -> etree.XMLSchema:
    return schema_of(WSDL)


def example(name: str) -> etree._Element:
    return body_element(etree.parse(str(EXAMPLES / f"{name}.xml")).getroot())


@dataclass
class Case:
    """The population and the edited cases (module docstring), with what each should answer."""

    contracts: list[dict[str, Any]]
    substitute: dict[str, Any]  # list with one active substitute
    substitute_her_id: int
    service_list: dict[str, Any]  # two substitutes + service party
    service_her_id: int
    empty_list: dict[str, Any]  # no one active, no service
    mover: str  # changed lists: old list until moved_on, new one since
    moved_on: dt.date
    old_list: str
    new_list: str
    ceased: str  # a ceased D-nummer of ``ceased_patient``
    ceased_patient: str
    unlisted: str  # a resident on no list
    office_org: int
    parties: list[dict[str, Any]]


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _edit(pop: Path) -> Case:
    """Edit the generated FLR and person files into the cases of the module docstring."""
    contracts = [json.loads(line) for line in (pop / "flr.jsonl").read_text().splitlines()]
    parties = [json.loads(line) for line in (pop / "ar.jsonl").read_text().splitlines()]
    persons = [json.loads(line) for line in (pop / "persons.jsonl").read_text().splitlines()]
    today = _today()
    past = (today - dt.timedelta(days=30)).isoformat()
    c = sorted(contracts, key=lambda d: -len(d["patients"]))
    a, b, e, old, new = c[0], c[1], c[2], c[3], c[4]
    ended = {"id": None, "relationship": "LPFL", "valid": {"from": a["validFrom"], "to": past}}
    a["doctorCycles"] = [dict(ended, id=1, hprNumber=a["gpHprNumber"], herId=a["gpHerId"]),
                         {"id": 2, "hprNumber": b["gpHprNumber"], "herId": b["gpHerId"], "relationship": "LPVI",
                          "substituteForHprNumber": a["gpHprNumber"], "valid": {"from": past, "to": None}}]
    service = next(p for p in parties if p["type"] == "Service" and p["parentHerId"] == b["officeHerId"])
    b["doctorCycles"] = [dict(ended, id=3, hprNumber=b["gpHprNumber"], herId=b["gpHerId"]),
                         {"id": 4, "hprNumber": a["gpHprNumber"], "herId": a["gpHerId"], "relationship": "LPVI",
                          "valid": {"from": past, "to": None}},
                         {"id": 5, "hprNumber": e["gpHprNumber"], "herId": e["gpHerId"], "relationship": "LPVI",
                          "valid": {"from": past, "to": None}}]
    b["serviceHerId"] = service["herId"]
    e["doctorCycles"] = [dict(ended, id=6, hprNumber=e["gpHprNumber"], herId=e["gpHerId"])]
    a["primaryHealthCareTeamId"] = b["primaryHealthCareTeamId"] = TEAM
    # a patient who moved from ``old`` to ``new``
    moved_on = today - dt.timedelta(days=100)
    mover = old["patients"].pop()
    old["patients"].append(dict(mover, validFrom=old["validFrom"], validTo=moved_on.isoformat()))
    new["patients"].append({"personNumber": mover["personNumber"], "validFrom": moved_on.isoformat()})
    # a resident taken off every list
    unlisted = new["patients"].pop(0)["personNumber"]
    # a patient with a ceased D-nummer
    ceased_patient = new["patients"][0]["personNumber"]
    person = next(p for p in persons if p["identifiers"][0]["number"] == ceased_patient)
    born = dt.date.fromisoformat(person["birth"][0]["date"])
    dnr = generate(IdKind.DNR, born, random.Random(SEED), synthetic=Synthetic.SKATTEETATEN)
    person["identifiers"].append({"number": dnr, "kind": "dnr", "status": "opphoert", "current": False,
                                  "validFrom": "2000-01-01", "validTo": "2001-01-01",
                                  "registeredAt": "2000-01-01T08:00:00Z", "source": "Skatteetaten"})
    (pop / "flr.jsonl").write_text("".join(json.dumps(d) + "\n" for d in contracts))
    (pop / "persons.jsonl").write_text("".join(json.dumps(d) + "\n" for d in persons))
    return Case(contracts, a, b["gpHerId"], b, service["herId"], e, mover["personNumber"], moved_on,
                str(old["contractId"]), str(new["contractId"]), dnr, ceased_patient, unlisted,
                int(a["officeOrganizationNumber"]), parties)


@dataclass
class FlrServer:
    engine: Engine
    base: str
    case: Case


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def flr_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlrServer]:
    from server.soap.flr import build_flr_app

    work = tmp_path_factory.mktemp(f"flr-{request.param}")
    generate_population(work / "pop", 300, SEED, feed_days=0)
    case = _edit(work / "pop")
    basis = load_profiles(None)["basis"]
    profiles = {**load_profiles(None),
                "flrRead": AccessProfile("flrRead", frozenset({"FlrRead", "FlrReadExtended"}), basis.elements,
                                         "fortrolig"),
                "flrLookup": AccessProfile("flrLookup", frozenset({"FlrLookup"}), basis.elements, "fortrolig")}
    users = [(USER, PASSWORD, "flrRead"), (LOOKUP_USER, PASSWORD, "flrLookup")]
    with loaded_store(request.param, work, work / "pop", users) as st, serving(
            lambda b: build_flr_app(st.engine, st.authenticator, profiles, st.audit, public_base_url=b)) as base:
        yield FlrServer(st.engine, base, case)


class Client(WcfClient):
    def __init__(self, srv: FlrServer, port: str, user: str = USER) -> None:
        binding, path = BINDINGS[port]
        super().__init__(WSDL, binding, srv.base + path, (user, PASSWORD), port)


@pytest.fixture(params=["basic", "ws"])
def client(request: pytest.FixtureRequest, flr_server: FlrServer) -> Client:
    return Client(flr_server, request.param)


def _nil(body: etree._Element, name: str) -> bool:
    """Whether the first ``name`` (FLR namespace) under ``body`` is present and nil, as WCF sends null."""
    el = body.find(f".//{{{FLR}}}{name}")
    return el is not None and el.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"


def _listed(case: Case, contract: dict[str, Any]) -> str:
    return str(contract["patients"][0]["personNumber"])


# -- patients -----------------------------------------------------------------------------------------------


def test_patient_gp_details_plain_list(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    plain = next(c for c in case.contracts if "doctorCycles" not in c and c["patients"]
                 and str(c["contractId"]) not in (case.old_list, case.new_list))
    nin = _listed(case, plain)
    result = client.call("GetPatientGPDetails", patientNin=nin)
    assert (result.PatientNIN, result.GPContractId, result.GPHerId) == (nin, plain["contractId"], plain["gpHerId"])
    assert result.GPContract.GPOffice.OrganizationNumber == plain["officeOrganizationNumber"]
    assert result.GPContract.MaxPatients == plain["maxPatients"]
    cycle = result.DoctorCycles.GPOnContractAssociation[0]
    assert (cycle.HprNumber, cycle.Relationship.CodeValue) == (plain["gpHprNumber"], "LPFL")
    assert cycle.GP.FirstName and cycle.GP.NIN
    body = body_element(client.last())
    assert _nil(body, "Patient") and _nil(body, "EndCode") and result.Period.To is None
    assert assert_same_structure(body, example("get-patient-gp"), subset=True) == 2


@pytest.mark.parametrize(("which", "expect"), [("substitute", "substitute_her_id"), ("service_list", "service_her_id"),
                                               ("empty_list", None)])
def test_gp_her_id_rule(client: Client, flr_server: FlrServer, which: str, expect: str | None) -> None:
    case = flr_server.case
    contract = getattr(case, which)
    result = client.call("GetPatientGPDetails", patientNin=_listed(case, contract))
    assert result.GPHerId == (getattr(case, expect) if expect else None)
    if expect is None:
        assert _nil(body_element(client.last()), "GPHerId")
    active = {c.HprNumber for c in (result.DoctorCycles.GPOnContractAssociation if result.DoctorCycles else [])}
    assert active == {c["hprNumber"] for c in contract["doctorCycles"] if c["valid"]["to"] is None}
    # GPHerId only for today's date: the same list asked for at another time has none
    at = client.client.get_type(f"{{{FLR}}}ArrayOfNinWithTimestamp")([{"NIN": _listed(case, contract),
                                                                     "AtTime": dt.datetime.now(dt.UTC)
                                                                     - dt.timedelta(days=1)}])
    earlier = client.call("GetPatientsGPDetailsAtTime", patientNins=at)
    assert [e.GPHerId for e in earlier] == [None]


def test_ceased_number_finds_the_patient(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    result = client.call("GetPatientGPDetails", patientNin=case.ceased)
    assert result.PatientNIN == case.ceased_patient
    assert str(result.GPContractId) == case.new_list


def test_patient_without_gp_and_invalid_number(client: Client, flr_server: FlrServer) -> None:
    assert client.fault("GetPatientGPDetails", patientNin=flr_server.case.unlisted) == (
        "Feil", "ArgumentException: Personen er ikke tilknyttet fastlegekontrakt")
    for bad in ("12345678901", "abc", "", "8" + "0" * 10):
        assert client.fault("GetPatientGPDetails", patientNin=bad) == (
            "Feil", "ArgumentException: patientNin er ugyldig")


@pytest.mark.parametrize(("name", "nin"), [("get-patient-gp-not-found", "unlisted"),
                                           ("get-patient-gp-invalid-nin", None)])
def test_faults_shaped_as_nhn_answers_them(flr_server: FlrServer, name: str, nin: str | None) -> None:
    number = getattr(flr_server.case, nin) if nin else "1234"
    answer = _post(flr_server, "1.2", f'<GetPatientGPDetails xmlns="{FLR}"><patientNin>{number}</patientNin>'
                   "</GetPatientGPDetails>")
    ours = etree.fromstring(answer.content)
    real = etree.parse(str(EXAMPLES / f"{name}.xml")).getroot()
    assert assert_same_structure(body_element(ours), body_element(real)) >= 3
    assert ours.findtext(f".//{{{COMMON}}}Message") == real.findtext(f".//{{{COMMON}}}Message")
    assert ours.findtext(f".//{{{SOAP12}}}Value") == "s:Sender" or ours.findtext(
        f".//{{{SOAP12}}}Value").endswith(":Sender")
    assert ours.find(f".//{{{SOAP12}}}Text").get("{http://www.w3.org/XML/1998/namespace}lang") == "nb-NO"


def test_patients_gp_details(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    nins = [_listed(case, c) for c in case.contracts[:3]]
    arr = client.client.get_type("{http://schemas.microsoft.com/2003/10/Serialization/Arrays}ArrayOfstring")
    result = client.call("GetPatientsGPDetails", patientNins=arr(nins))
    assert [r.PatientNIN for r in result] == nins
    assert client.fault("GetPatientsGPDetails", patientNins=arr([*nins, case.unlisted]))[1].endswith(
        "Personen er ikke tilknyttet fastlegekontrakt")


def test_patients_at_time_and_history(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    before = dt.datetime.combine(case.moved_on - dt.timedelta(days=10), dt.time(12))
    after = dt.datetime.combine(case.moved_on + dt.timedelta(days=10), dt.time(12))
    at = client.client.get_type(f"{{{FLR}}}ArrayOfNinWithTimestamp")
    result = client.call("GetPatientsGPDetailsAtTime", patientNins=at([
        {"NIN": case.mover, "AtTime": before}, {"NIN": case.mover, "AtTime": after},
        {"NIN": case.unlisted, "AtTime": after}]))  # a person without a GP then is left out
    assert [str(r.GPContractId) for r in result] == [case.old_list, case.new_list]
    history = client.call("GetPatientGPHistory", patientNin=case.mover, includePatientData=True)
    assert [str(h.GPContractId) for h in history] == [case.old_list, case.new_list]
    assert history[0].Period.To.date() == case.moved_on and history[1].Period.To is None
    assert history[0].Patient.NIN == case.mover and history[0].Patient.LastName
    client.call("GetPatientGPHistory", patientNin=case.mover, includePatientData=False)
    assert _nil(body_element(client.last()), "Patient")
    assert client.fault("GetPatientGPHistory", patientNin=case.unlisted, includePatientData=False)[0] == "Feil"


def test_confirm_gp(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    nin = _listed(case, case.substitute)
    assert client.call("ConfirmGP", patientNin=nin, hprNumber=case.service_list["gpHprNumber"], atTime=None) is True
    assert client.call("ConfirmGP", patientNin=nin, hprNumber=case.substitute["gpHprNumber"], atTime=None) is False
    long_ago = dt.datetime.combine(dt.date.fromisoformat(case.substitute["validFrom"]) + dt.timedelta(days=1),
                                   dt.time(12))
    assert client.call("ConfirmGP", patientNin=nin, hprNumber=case.substitute["gpHprNumber"], atTime=long_ago) is True
    assert client.call("ConfirmGP", patientNin=case.unlisted, hprNumber=1, atTime=None) is False
    assert client.fault("ConfirmGP", patientNin=nin, hprNumber=0, atTime=None)[1] == (
        "ArgumentException: hprNumber er ugyldig")


# -- contracts, GPs, search ---------------------------------------------------------------------------------


def test_contract_and_patient_list(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    contract = case.service_list
    result = client.call("GetGPContract", gpContractId=contract["contractId"])
    assert result.Id == contract["contractId"] and result.PrimaryHealthCareTeamId == TEAM
    assert len(result.DoctorCycles.GPOnContractAssociation) == 3
    assert result.GPOffice.Name and result.GPOffice.PhysicalAddresses.PhysicalAddress[0].Municipality.OID == 3402
    listed = client.call("GetGPPatientList", gpContractId=contract["contractId"])
    assert {p.PatientNIN for p in listed} == {p["personNumber"] for p in contract["patients"]}
    assert all(p.GPHerId == case.service_her_id and p.Patient.NIN == p.PatientNIN for p in listed)
    assert client.fault("GetGPContract", gpContractId=1) == ("Feil", "ArgumentException: Fastlegeavtalen finnes ikke")
    assert client.fault("GetGPPatientList", gpContractId=0)[1].endswith("må være høyere enn 0")


def test_contracts_on_office_and_postal_code(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    on_office = [c for c in case.contracts if c["officeOrganizationNumber"] == case.office_org]
    result = client.call("GetGPContractsOnOffice", organizationNumber=case.office_org, atTime=None)
    assert sorted(r.Id for r in result) == sorted(c["contractId"] for c in on_office)
    assert all(r.GPOffice.IsGroupOffice == (len(on_office) > 1) for r in result)
    assert client.fault("GetGPContractsOnOffice", organizationNumber=123, atTime=None)[0] == "Feil"
    office = next(p for p in case.parties if p["herId"] == case.substitute["officeHerId"])
    postal = office["physicalAddresses"][0]["postalCode"]
    ids = client.call("GetGPContractIdsOperatingInPostalCode", postNr=postal[:2])
    assert case.substitute["contractId"] in ids
    assert client.fault("GetGPContractIdsOperatingInPostalCode", postNr="1")[1].endswith("2, 3 eller 4 siffer")


def test_gp_with_contracts_search_and_query(client: Client, flr_server: FlrServer) -> None:
    case = flr_server.case
    gp = case.substitute["gpHprNumber"]  # works list a (ended) and substitutes on list b
    details = client.call("GetGPWithAssociatedGPContracts", hprNumber=gp, atTime=None)
    assert details.HprNumber == gp and details.GP.LastName
    assert {c.GPContractId for c in details.Contracts.GPOnContractAssociation} == {
        case.substitute["contractId"], case.service_list["contractId"]}
    now = client.call("GetGPWithAssociatedGPContracts", hprNumber=gp, atTime=dt.datetime.now(dt.UTC))
    assert [c.Relationship.CodeValue for c in now.Contracts.GPOnContractAssociation] == ["LPVI"]
    assert client.fault("GetGPWithAssociatedGPContracts", hprNumber=1, atTime=None)[0] == "Feil"
    kommune = case.service_list["kommune"]  # where the GP works today (as a substitute)
    found = client.call("SearchForGP", searchParameters={"FullText": details.GP.LastName, "Page": 1, "PageSize": 50,
                                                         "HasGPOfficeInMunicipality": {"CodeValue": kommune}})
    assert found.Total >= 1 and gp in {g.HprNumber for g in found.Results.GPDetails}
    assert client.fault("SearchForGP", searchParameters={"Page": 0, "PageSize": 10})[0] == "Feil"
    query = client.call("QueryGPContracts",
                        queryParameters={"Page": 1, "PageSize": 2, "HasPrimaryHealthCareTeam": True})
    assert query.Total == 2 and {c.Id for c in query.Results.GPContract} == {
        case.substitute["contractId"], case.service_list["contractId"]}
    in_kommune = client.call("QueryGPContracts", queryParameters={"Page": 1, "PageSize": 1000,
                                                                  "Municipality": {"CodeValue": kommune}})
    assert in_kommune.Total == sum(1 for c in case.contracts if c["kommune"] == kommune)
    team = client.call("GetPrimaryHealthCareTeam", id=TEAM)
    assert team.Id == TEAM and len(team.PrimaryHealthCareContracts.PrimaryHealthCareContract) == 2
    assert client.fault("GetPrimaryHealthCareTeam", id=1)[0] == "Feil"


@pytest.mark.parametrize("op", ["GetGPContractForNav", "NavGetEncryptedPatientListAlternate"])
def test_nav_and_streamed_operations_are_not_offered(client: Client, op: str) -> None:
    kwargs: dict[str, Any] = ({"doctorNin": "x", "municipalityNr": "0301", "doSubstituteSearch": False}
                              if op == "GetGPContractForNav" else
                              {"doctorNIN": "x", "municipalityId": "0301", "encryptWithX509Certificate": b"",
                               "month": dt.datetime(2026, 1, 1), "doSubstituteSearch": False, "senderXml": "",
                               "receiverXml": "", "listType": "x"})
    code, message = client.fault(op, **kwargs)
    assert code == "OperationNotSupported" and "not offered" in message


# -- roles, audit, transport ---------------------------------------------------------------------------------


def test_roles_are_access_profile_operations(flr_server: FlrServer) -> None:
    lookup = Client(flr_server, "basic", LOOKUP_USER)
    case = flr_server.case
    assert lookup.call("GetPatientGPDetails", patientNin=_listed(case, case.substitute)).GPContractId
    assert lookup.fault("GetPatientGPHistory", patientNin=case.mover, includePatientData=True)[0] == "AccessDenied"
    assert lookup.fault("GetGPPatientList", gpContractId=case.substitute["contractId"])[0] == "AccessDenied"


def test_lookup_by_patient_number_is_a_person_lookup_in_the_audit_trail(client: Client,
                                                                        flr_server: FlrServer) -> None:
    case = flr_server.case
    client.call("GetPatientGPDetails", patientNin=case.ceased)
    records = [r for r in query_audit(flr_server.engine, person=case.ceased) if r.face == "soap-flr"]
    assert records and records[0].operation == "GetPatientGPDetails" and records[0].outcome == "ok"
    assert case.ceased_patient in records[0].returned
    denied = Client(flr_server, "ws", LOOKUP_USER)
    denied.fault("GetGPPatientList", gpContractId=case.new_list)
    refused = [r for r in query_audit(flr_server.engine, account=LOOKUP_USER) if r.operation == "GetGPPatientList"]
    assert refused and refused[0].outcome == "AccessDenied" and not refused[0].returned
    listed = [r for r in query_audit(flr_server.engine, person=case.ceased_patient) if r.face == "soap-flr"]
    assert listed and listed[0].account == USER


def _post(srv: FlrServer, version: str, body: str, header: str = "", auth: bool = True) -> requests.Response:
    env = SOAP11 if version == "1.1" else SOAP12
    xml = (f'<s:Envelope xmlns:s="{env}" xmlns:a="{WSA}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body>'
           f"</s:Envelope>")
    path = "/v2/flr/Basic" if version == "1.1" else "/v2/flr"
    ctype = "text/xml; charset=utf-8" if version == "1.1" else "application/soap+xml; charset=utf-8"
    return requests.post(srv.base + path, data=xml.encode(), headers={"Content-Type": ctype},
                         auth=(USER, PASSWORD) if auth else None, timeout=10)


def test_ws_addressing_and_soap11_fault(flr_server: FlrServer) -> None:
    case = flr_server.case
    header = (f"<a:Action>{FLR}/IFlrReadOperations/GetPatientGPDetails</a:Action>"
              "<a:MessageID>urn:uuid:6b1b6e1c-0000-4000-8000-000000000015</a:MessageID>")
    ok = etree.fromstring(_post(flr_server, "1.2", f'<GetPatientGPDetails xmlns="{FLR}"><patientNin>'
                                f"{_listed(case, case.substitute)}</patientNin></GetPatientGPDetails>", header).content)
    assert ok.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action") == f"{FLR}/IFlrReadOperations/GetPatientGPDetailsResponse"
    assert ok.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}RelatesTo") == "urn:uuid:6b1b6e1c-0000-4000-8000-000000000015"
    bad = etree.fromstring(_post(flr_server, "1.2", f'<GetPatientGPDetails xmlns="{FLR}"><patientNin>1</patientNin>'
                                 "</GetPatientGPDetails>", header).content)
    assert bad.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action") == (
        f"{FLR}/IFlrReadOperations/GetPatientGPDetailsGenericFaultFault")
    soap11 = _post(flr_server, "1.1", f'<GetPatientGPDetails xmlns="{FLR}"><patientNin>1</patientNin>'
                   "</GetPatientGPDetails>")
    assert soap11.status_code == 500
    fault = body_element(etree.fromstring(soap11.content))
    assert fault.findtext("faultcode").endswith(":Client")
    assert fault.findtext(f"detail/{{{COMMON}}}GenericFault/{{{COMMON}}}ErrorCode") == "Feil"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_no_credentials_is_http_401(flr_server: FlrServer, version: str) -> None:
    answer = _post(flr_server, version, f'<GetGPContract xmlns="{FLR}"><gpContractId>1</gpContractId>'
                   "</GetGPContract>", auth=False)
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Basic ")


def test_wsdl_served_on_both_paths(flr_server: FlrServer) -> None:
    for path in ("/v2/flr", "/v2/flr/Basic"):
        served = etree.fromstring(requests.get(flr_server.base + path + "?wsdl", timeout=10).content)
        locations = {e.get("location") for e in served.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address",
                                                             "{http://schemas.xmlsoap.org/wsdl/soap12/}address")}
        assert locations == {flr_server.base + "/v2/flr/Basic", flr_server.base + "/v2/flr"}


def test_hostile_requests_are_typed_faults(flr_server: FlrServer) -> None:
    case = flr_server.case
    not_a_long = _post(flr_server, "1.1", f'<GetGPContract xmlns="{FLR}"><gpContractId>abc</gpContractId>'
                       "</GetGPContract>")
    assert not_a_long.status_code == 500
    assert etree.fromstring(not_a_long.content).findtext(f".//{{{COMMON}}}ErrorCode") == "InvalidRequest"
    many = "".join(f"<b:string>{case.mover}</b:string>" for _ in range(1001))
    too_many = _post(flr_server, "1.2", f'<GetPatientsGPDetails xmlns="{FLR}" xmlns:b="http://schemas.microsoft.com'
                     f'/2003/10/Serialization/Arrays"><patientNins>{many}</patientNins></GetPatientsGPDetails>')
    assert etree.fromstring(too_many.content).findtext(f".//{{{COMMON}}}ErrorCode") == "InvalidRequest"
    entity = ('<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x "y">]>'
              f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><GetGPContract xmlns="{FLR}"><gpContractId>&x;'
              "</gpContractId></GetGPContract></s:Body></s:Envelope>")
    refused = requests.post(flr_server.base + "/v2/flr/Basic", data=entity.encode(), auth=(USER, PASSWORD),
                            headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=10)
    assert refused.status_code in (400, 500) and b"Fault" in refused.content
    bad_time = _post(flr_server, "1.1", f'<ConfirmGP xmlns="{FLR}"><patientNin>{case.mover}</patientNin>'
                     "<hprNumber>1</hprNumber><atTime>yesterday</atTime></ConfirmGP>")
    assert etree.fromstring(bad_time.content).findtext(f".//{{{COMMON}}}ErrorCode") == "InvalidRequest"
    # a fault never repeats the number it refused
    wrong = case.mover[:10] + str((int(case.mover[10]) + 1) % 10)  # the control digit broken
    invalid = _post(flr_server, "1.1", f'<GetPatientGPDetails xmlns="{FLR}"><patientNin>{wrong}'
                    "</patientNin></GetPatientGPDetails>")
    assert invalid.status_code == 500 and case.mover[:10].encode() not in invalid.content


# -- a second SOAP stack ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["basic", "ws"])
def test_node_soap_calls_get_patient_gp_details(flr_server: FlrServer, port: str,
                                                request: pytest.FixtureRequest) -> None:
    from tests.integration.node_soap import node_soap

    call = node_soap(request.config)
    case = flr_server.case
    path, version = BINDINGS[port][1], "1.1" if port == "basic" else "1.2"

    def get(nin: str) -> dict[str, Any]:
        return call(flr_server.base + "/v2/flr?wsdl", flr_server.base + path, (USER, PASSWORD), "GetPatientGPDetails",
                    {"patientNin": nin}, version)

    nin = _listed(case, case.substitute)
    answer = get(nin)
    result = answer["result"]["GetPatientGPDetailsResult"]
    assert result["PatientNIN"] == nin and int(result["GPHerId"]) == case.substitute_her_id
    assert int(result["GPContractId"]) == case.substitute["contractId"]
    real_schema().assertValid(body_element(etree.fromstring(answer["xml"].encode())))
    assert get(case.unlisted)["fault"] == {"code": "Feil",
                                           "message": "ArgumentException: Personen er ikke tilknyttet fastlegekontrakt"}


def test_fast_path_and_memo_equal_the_general_path(flr_server: FlrServer) -> None:
    """GetPatientGPDetails' hot path (one join, office and GP by driver-level SQL, shared parts from the memo)
    answers exactly what the general path (:meth:`FlrFace._associations`) builds, for a patient of every list,
    cold and warm (tests/contract/test_flr_contract.py: a changed document is never answered from the memo)."""
    from server.access import Account, AuditWriter
    from server.soap.flr.contract import load_contract
    from server.soap.flr.face import FlrFace
    from server.soap.wcf.face import ACCOUNT_KEY, Call

    audit = AuditWriter(flr_server.engine, mode="sync")
    face = FlrFace(flr_server.engine, load_contract(), load_profiles(None), audit)
    now = dt.datetime.now(dt.UTC)
    account = Account(USER, "full", False, False, now, now)
    try:
        for contract in flr_server.case.contracts:
            if not contract["patients"]:
                continue
            nin = contract["patients"][-1]["personNumber"]
            request = etree.Element(f"{{{FLR}}}GetPatientGPDetails")
            etree.SubElement(request, f"{{{FLR}}}patientNin").text = nin
            general = face._associations("GetPatientGPDetails", [(nin, face._today())], Call(), omit_missing=False)
            for _ in range(2):  # cold, then from the memo
                fast = face.call("GetPatientGPDetails", request, {ACCOUNT_KEY: account})
                assert etree.tostring(fast, method="c14n") == etree.tostring(general, method="c14n")
    finally:
        audit.close()
