"""The AR face end to end: zeep, generated from NHN's real WSDL (tests/data), against a running server.

One server per backend (SQLite, PostgreSQL) serves a store loaded from a small synthetic population
(store.synthetic.generate_population + store.loading.load_population). Every read operation is called
on both ports (``BasicHttpBinding`` SOAP 1.1 at ``/v1/AR/Basic``, ``WSHttpBinding`` SOAP 1.2 + WS-Addressing
at ``/v1/AR``); every answer's body element is validated against the real WSDL's inline schemas (compiled
here, independently of the server's own copy), and GetCommunicationPartyDetails answers are compared
structurally with NHN's real example responses (tests/data/ar-examples: element names, namespaces and order,
``i:type``; never their data).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import Engine, select

from server.access import load_profiles
from store import schema as s
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
WSDL = DATA / "nhn-adresseregisteret-sok.wsdl"
EXAMPLES = DATA / "ar-examples"
CP = "http://register.nhn.no/CommunicationParty"
COMMON = "http://register.nhn.no/Common"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WSA = "http://www.w3.org/2005/08/addressing"
BINDINGS = {"basic": (f"{{{CP}}}BasicHttpBinding_ICommunicationPartyService", "/v1/AR/Basic"),
            "ws": (f"{{{CP}}}WSHttpBinding_ICommunicationPartyService", "/v1/AR")}
USER, PASSWORD = "epj-ar", "correct horse battery staple"
SEED = 20261122


def real_schema() -> etree.XMLSchema:
    """Every inline xs:schema of the real WSDL, compiled here (independently of the server's copy)."""
    return schema_of(WSDL)


def example(name: str) -> etree._Element:
    return body_element(etree.parse(str(EXAMPLES / f"get-communication-party-details-{name}-response.xml"))
                        .getroot())


# -- the server ----------------------------------------------------------------------------------------------


class ArServer:
    def __init__(self, engine: Engine, base: str, parties: list[dict[str, Any]]) -> None:
        self.engine = engine
        self.base = base
        self.parties = parties

    def first(self, kind: str, pred: Any = None) -> dict[str, Any]:
        return next(p for p in self.parties if p["type"] == kind and (pred is None or pred(p)))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def ar_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArServer]:
    from server.soap.ar import build_ar_app

    work = tmp_path_factory.mktemp(f"ar-{request.param}")
    generate_population(work / "pop", 300, SEED, feed_days=0)
    parties = [json.loads(line) for line in (work / "pop" / "ar.jsonl").read_text().splitlines()]
    with loaded_store(request.param, work, work / "pop", [(USER, PASSWORD, "full")]) as st, serving(
            lambda b: build_ar_app(st.engine, st.authenticator, load_profiles(None), st.audit,
                                   public_base_url=b)) as base:
        yield ArServer(st.engine, base, parties)


class Client(WcfClient):
    def __init__(self, srv: ArServer, port: str) -> None:
        binding, path = BINDINGS[port]
        super().__init__(WSDL, binding, srv.base + path, (USER, PASSWORD), port)


@pytest.fixture(params=["basic", "ws"])
def client(request: pytest.FixtureRequest, ar_server: ArServer) -> Client:
    return Client(ar_server, request.param)


# -- read operations -----------------------------------------------------------------------------------------


def test_ping(client: Client) -> None:
    assert client.call("Ping") == "Pong"


@pytest.mark.parametrize(("kind", "example_name", "wire_type"), [
    ("Organization", "organzation", "Organization"),
    ("Service", "service", "Service"),
    ("Person", "person", "OrganizationPerson"),
])
def test_communication_party_details(client: Client, ar_server: ArServer, kind: str, example_name: str,
                                     wire_type: str) -> None:
    doc = ar_server.first(kind)
    result = client.call("GetCommunicationPartyDetails", herId=doc["herId"])
    assert type(result).__name__ == wire_type
    assert (result.HerId, result.Name, result.Type) == (doc["herId"], doc["name"], [kind])
    body = body_element(client.last())
    assert assert_same_structure(body, example(example_name)) > 10
    if kind == "Organization":
        assert result.ParentHerId == -1 and result.ParentOrganizationNumber == -1 and result.ParentName is None
        assert result.OrganizationNumber == doc["organizationNumber"]
        assert {s.HerId for s in result.Services.Service} == {
            p["herId"] for p in ar_server.parties if p.get("parentHerId") == doc["herId"] and p["type"] == "Service"}
        assert_same_structure(body, example("no-parent"), subset=True)
        assert_same_structure(body, example("with-parent"), subset=True)
        postal = doc["physicalAddresses"][0]["postalCode"]
        assert result.PhysicalAddresses.PhysicalAddress[0].PostalCode == int(postal)
    elif kind == "Person":
        assert result.ParentHerId == doc["parentHerId"]
        assert result.Organizations.Organization[0].HerId == doc["parentHerId"]
        assert result.Person.HPRInformation.HPRNumber == doc["hprNumber"]
        assert result.Person.CitizenId.Id == doc["nin"][:6] + "XXXXX"  # masked, as the real AR does
        assert result.Person.HPRInformation.Authorizations.Authorization[0].Profession.CodeValue == "LE"
    else:
        assert result.Code.OID == 8666 and result.ParentHerId == doc["parentHerId"]


@pytest.mark.parametrize(("op", "kind"), [("GetOrganizationDetails", "Organization"),
                                          ("GetServiceDetails", "Service"),
                                          ("GetOrganizationPersonDetails", "Person")])
def test_typed_details(client: Client, ar_server: ArServer, op: str, kind: str) -> None:
    doc = ar_server.first(kind)
    result = client.call(op, herId=doc["herId"])
    assert result.HerId == doc["herId"]
    assert body_element(client.last())[0].get(f"{{{XSI}}}type") is None  # declared type: no i:type, as WCF
    other = ar_server.first("Service" if kind != "Service" else "Organization")
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service[op](herId=other["herId"])
    assert caught.value.detail.findtext(f".//{{{COMMON}}}ErrorCode") == "InvalidHerIdSupplied"


def test_search_by_id(client: Client, ar_server: ArServer) -> None:
    org = ar_server.first("Organization")
    by_her = client.call("SearchById", id=str(org["herId"]))
    assert [p.HerId for p in by_her] == [org["herId"]]  # zeep unwraps a one-member ArrayOfX result
    by_org = client.call("SearchById", id=str(org["organizationNumber"]))
    assert [type(p).__name__ for p in by_org] == ["Organization"]
    assert by_org[0].OrganizationNumber == org["organizationNumber"]
    assert client.call("SearchById", id="1") is None  # an empty ArrayOfCommunicationParty


def test_search(client: Client, ar_server: ArServer) -> None:
    org = ar_server.first("Organization")
    kommune = org["municipality"]["value"]
    in_kommune = [p for p in ar_server.parties if p["municipality"]["value"] == kommune]
    pairs = client.client.get_type(
        "{http://schemas.datacontract.org/2004/07/System.Collections.Generic}ArrayOfKeyValuePairOfstringstring")
    search = client.client.get_type(f"{{{CP}}}CommunicationPartySearch")(
        Page=1, PageSize=2, SearchConstraints=pairs([{"key": "Municipality", "value": kommune}]))
    result = client.call("Search", search=search)
    assert result.TotalResults == len(in_kommune)
    assert len(result.Results.CommunicationParty) == min(2, len(in_kommune))
    facets = {f.CodeValue: {e.Value: e.Hits for e in f.Entries.SearchResultFacetEntry}
              for f in result.Facets.SearchFacet}
    assert facets["Municipality"] == {kommune: len(in_kommune)}
    assert sum(facets["Type"].values()) == len(in_kommune)
    word = org["name"].split()[-1]
    by_name = client.call("Search", search={"Page": 1, "PageSize": 100, "SearchConstraints": {
        "KeyValuePairOfstringstring": [{"key": "Name", "value": word[:4]}, {"key": "Type", "value": "Organization"}]}})
    assert org["herId"] in {p.HerId for p in by_name.Results.CommunicationParty}
    assert all(p.Type == ["Organization"] for p in by_name.Results.CommunicationParty)
    # only Page and PageSize, as real clients send: the first page of every party, bounded by PageSize
    everything = client.call("Search", search={"Page": 1, "PageSize": 7})
    assert everything.TotalResults == len(ar_server.parties)
    first = sorted(ar_server.parties, key=lambda p: (p["name"], p["herId"]))[:7]
    assert [p.HerId for p in everything.Results.CommunicationParty] == [p["herId"] for p in first]
    types = next(f for f in everything.Facets.SearchFacet if f.CodeValue == "Type")
    assert sum(e.Hits for e in types.Entries.SearchResultFacetEntry) == len(ar_server.parties)
    second = client.call("Search", search={"Page": 2, "PageSize": 7})
    assert {p.HerId for p in second.Results.CommunicationParty}.isdisjoint({p["herId"] for p in first})
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.Search(search={"Page": 1, "PageSize": 10, "SearchConstraints": {
            "KeyValuePairOfstringstring": [{"key": "Colour", "value": "blue"}]}})
    assert caught.value.detail.findtext(f".//{{{COMMON}}}ErrorCode") == "InvalidRequest"


def test_changed_and_owned_by(client: Client, ar_server: ArServer) -> None:
    ids = [p["herId"] for p in ar_server.parties[:3]]
    arrays = client.client.get_type("{http://schemas.microsoft.com/2003/10/Serialization/Arrays}ArrayOfint")
    changed = client.call("GetChangedCommunicationPartiesInfo", herIds=arrays(ids + [1]))
    assert [c.HerId for c in changed] == ids
    assert changed[0].LastUpdated.year >= 2020
    org = ar_server.first("Organization")
    owned = client.call("GetOrganizationsOwnedBy", herId=org["herId"])
    assert owned is None  # empty; the demo register has no organisation under another


@pytest.mark.parametrize("usage", ["Encryption", "ValidatingSignature"])
def test_certificates(client: Client, ar_server: ArServer, usage: str) -> None:
    from cryptography import x509

    org = ar_server.first("Organization")
    want = next(c for c in org["certificates"] if c["usage"] == {"Encryption": "encryption"}.get(usage, "signing"))
    details = client.call(f"GetCertificateDetailsFor{usage}", herId=org["herId"])
    assert details.LdapUrl == want["ldapUrl"]
    cert = x509.load_der_x509_certificate(details.Certificate)
    assert format(cert.serial_number, "X").zfill(len(want["serialNumber"])) == want["serialNumber"]
    raw = client.call(f"GetCertificateFor{usage}", herId=org["herId"])
    assert raw == details.Certificate
    person = ar_server.first("Person", lambda p: p["parentHerId"] == org["herId"])
    assert client.call(f"GetCertificateFor{usage}", herId=person["herId"]) == raw  # inherited from the office


# -- faults, WS-Addressing, authentication -------------------------------------------------------------------


def test_unknown_her_id_is_generic_fault(client: Client) -> None:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.GetCommunicationPartyDetails(herId=1)
    detail = caught.value.detail
    fault = detail.find(f"{{{COMMON}}}GenericFault")
    assert fault is not None
    assert fault.findtext(f"{{{COMMON}}}ErrorCode") == "InvalidHerIdSupplied"
    assert caught.value.message == "Kommunikasjonspart med oppgitt HER-id eksisterer ikke."
    real_schema().assertValid(fault)
    assert caught.value.code.endswith("Sender" if client.port == "ws" else "Client")


def test_write_operation_is_not_offered(client: Client) -> None:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        client.service.SetCommunicationPartyValid(herId=1, period={"From": "2026-01-01T00:00:00",
                                                                   "To": "2027-01-01T00:00:00"})
    assert caught.value.detail.findtext(f".//{{{COMMON}}}ErrorCode") == "OperationNotSupported"
    assert "not offered" in caught.value.message


def _post(srv: ArServer, version: str, body: str, header: str = "", auth: bool = True) -> requests.Response:
    env = SOAP11 if version == "1.1" else SOAP12
    xml = (f'<s:Envelope xmlns:s="{env}" xmlns:a="{WSA}"><s:Header>{header}</s:Header><s:Body>{body}</s:Body>'
           f"</s:Envelope>")
    path = "/v1/AR/Basic" if version == "1.1" else "/v1/AR"
    ctype = "text/xml; charset=utf-8" if version == "1.1" else "application/soap+xml; charset=utf-8"
    return requests.post(srv.base + path, data=xml.encode(), headers={"Content-Type": ctype},
                         auth=(USER, PASSWORD) if auth else None, timeout=10)


def test_ws_addressing_on_the_soap12_port(ar_server: ArServer) -> None:
    her_id = ar_server.first("Service")["herId"]
    header = (f"<a:Action>{CP}/ICommunicationPartyService/GetCommunicationPartyDetails</a:Action>"
              "<a:MessageID>urn:uuid:6b1b6e1c-0000-4000-8000-000000000001</a:MessageID>")
    answer = etree.fromstring(_post(ar_server, "1.2", f'<GetCommunicationPartyDetails xmlns="{CP}">'
                                    f"<herId>{her_id}</herId></GetCommunicationPartyDetails>", header).content)
    assert answer.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action") == (
        f"{CP}/ICommunicationPartyService/GetCommunicationPartyDetailsResponse")
    assert answer.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}RelatesTo") == "urn:uuid:6b1b6e1c-0000-4000-8000-000000000001"
    fault = etree.fromstring(_post(ar_server, "1.2", f'<GetCommunicationPartyDetails xmlns="{CP}"><herId>1</herId>'
                                   "</GetCommunicationPartyDetails>", header).content)
    assert fault.findtext(f"{{{SOAP12}}}Header/{{{WSA}}}Action") == (
        f"{CP}/ICommunicationPartyService/GetCommunicationPartyDetailsGenericFaultFault")
    # the fault has the real AR's shape (examples/get-communication-party-details-not-found-response.xml)
    real = etree.parse(str(EXAMPLES / "get-communication-party-details-not-found-response.xml")).getroot()
    assert_same_structure(body_element(fault), body_element(real))
    soap11 = etree.fromstring(_post(ar_server, "1.1", f'<Ping xmlns="{CP}"/>').content)
    assert soap11.find(f"{{{SOAP11}}}Header") is None


def test_soap11_fault_shape(ar_server: ArServer) -> None:
    answer = _post(ar_server, "1.1", f'<GetCommunicationPartyDetails xmlns="{CP}"><herId>1</herId>'
                   "</GetCommunicationPartyDetails>")
    assert answer.status_code == 500
    fault = body_element(etree.fromstring(answer.content))
    assert fault.findtext("faultcode").endswith(":Client")
    assert fault.find(f"detail/{{{COMMON}}}GenericFault/{{{COMMON}}}ErrorCode").text == "InvalidHerIdSupplied"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_no_credentials_is_http_401(ar_server: ArServer, version: str) -> None:
    answer = _post(ar_server, version, f'<Ping xmlns="{CP}"/>', auth=False)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    with ar_server.engine.connect() as conn:
        outcomes = conn.execute(select(s.audit_event.c.outcome).where(s.audit_event.c.face == "soap-ar")).scalars()
        assert "Unauthorized" in set(outcomes)
    wrong = requests.post(ar_server.base + "/v1/AR/Basic", data=b"<x/>", timeout=10,
                          headers={"Authorization": "Basic " + base64.b64encode(b"epj-ar:wrong").decode()})
    assert wrong.status_code == 401


def test_wsdl_served_on_both_paths(ar_server: ArServer) -> None:
    for path in ("/v1/AR", "/v1/AR/Basic"):
        served = etree.fromstring(requests.get(ar_server.base + path + "?wsdl", timeout=10).content)
        locations = {e.get("location") for e in served.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address",
                                                             "{http://schemas.xmlsoap.org/wsdl/soap12/}address")}
        assert locations == {ar_server.base + "/v1/AR/Basic", ar_server.base + "/v1/AR"}
