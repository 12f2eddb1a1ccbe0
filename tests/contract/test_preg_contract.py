"""The PREG contract: the served WSDL is wsdl/preg.wsdl with xsd/preg.xsd inlined; every operation of its
portType is implemented; every answer validates against xsd/preg.xsd; a configured namespace, address and
path are what the server serves.

XML is compared canonicalised (C14N, comments dropped, whitespace-only text removed), never as strings.
Answers are produced by raw POSTs of hand-written requests to a real server on a loopback socket, once per
backend and SOAP version (the zeep-driven tests in tests/integration/test_preg_soap.py validate every answer
they receive as well).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import zeep
from lxml import etree

from adapters.preg import DEFAULT_NAMESPACE
from server.config import PregSettings
from tests.integration.preg_support import (
    ACCOUNTS,
    CT11,
    CT12,
    PASSWORD,
    REPO,
    SPYNE_WARNINGS,
    VERSIONS,
    Population,
    PregServer,
    backend_url,
    body_child,
    envelope,
    fault_of,
    running_preg,
)

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
SOAP_BINDINGS = {"1.1": "http://schemas.xmlsoap.org/wsdl/soap/", "1.2": "http://schemas.xmlsoap.org/wsdl/soap12/"}
NS = DEFAULT_NAMESPACE
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
WSDL_FILE = REPO / "wsdl" / "preg.wsdl"
XSD_FILE = REPO / "xsd" / "preg.xsd"
CONTENT_TYPE = {"1.1": CT11, "1.2": CT12}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def preg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work = tmp_path_factory.mktemp(f"contract-{request.param}")
    with backend_url(request.param, work) as url, running_preg(url, work) as srv:
        yield srv


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_FILE), PARSER))


def canonical(root: etree._Element) -> bytes:
    """C14N of a copy of ``root`` without comments and whitespace-only text or tails."""
    root = copy.deepcopy(root)
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    data: bytes = etree.tostring(root, method="c14n", with_comments=False)
    return data


def expected_wsdl(address: str) -> etree._Element:
    """wsdl/preg.wsdl with its ``xs:include`` schema replaced by xsd/preg.xsd and the address configured."""
    wsdl = etree.parse(str(WSDL_FILE), PARSER).getroot()
    types = wsdl.find(f"{{{WSDL_NS}}}types")
    assert types is not None
    [stub] = types.findall(f"{{{XS}}}schema")
    assert stub.find(f"{{{XS}}}include") is not None
    types.replace(stub, etree.parse(str(XSD_FILE), PARSER).getroot())
    for ns in SOAP_BINDINGS.values():
        for address_el in wsdl.iter(f"{{{ns}}}address"):
            address_el.set("location", address)
    return wsdl


def port_type_operations(wsdl: etree._Element) -> list[str]:
    return [op.get("name", "") for op in wsdl.iterfind(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation")]


# -- the served contract ----------------------------------------------------------------------------------


def test_the_served_wsdl_is_the_contract_file_with_its_schema_inlined(preg: PregServer) -> None:
    answer = preg.get("wsdl")
    assert answer.status == 200 and answer.content_type.startswith("text/xml")
    served = etree.fromstring(answer.body, PARSER)
    assert canonical(served) == canonical(expected_wsdl(preg.settings.preg_address))
    assert preg.get("singleWsdl").body == answer.body


def test_the_served_xsd_is_the_schema_file(preg: PregServer) -> None:
    answer = preg.get("xsd")
    assert answer.status == 200
    assert canonical(etree.fromstring(answer.body, PARSER)) == canonical(etree.parse(str(XSD_FILE), PARSER).getroot())


def test_the_schema_compiles_alone_and_inlined(preg: PregServer, schema: etree.XMLSchema) -> None:
    served = etree.fromstring(preg.get("wsdl").body, PARSER)
    inlined = served.find(f"{{{WSDL_NS}}}types/{{{XS}}}schema")
    assert inlined is not None
    etree.XMLSchema(inlined)  # raises XMLSchemaParseError when it does not compile
    elements = {el.get("name") for el in inlined.iterfind(f"{{{XS}}}element")}
    ops = port_type_operations(served)
    assert elements == {*ops, *(f"{op}Response" for op in ops)}


def test_both_bindings_bind_every_port_type_operation(preg: PregServer) -> None:
    served = etree.fromstring(preg.get("wsdl").body, PARSER)
    ops = port_type_operations(served)
    assert len(ops) == 10
    for version, ns in SOAP_BINDINGS.items():
        binding = served.find(f"{{{WSDL_NS}}}binding[@name='PersonregisterSoap{version.replace('.', '')}']")
        assert binding is not None and binding.find(f"{{{ns}}}binding") is not None
        bound = [op.get("name") for op in binding.iterfind(f"{{{WSDL_NS}}}operation")]
        assert bound == ops
        actions = [op.find(f"{{{ns}}}operation").get("soapAction")  # type: ignore[union-attr]
                   for op in binding.iterfind(f"{{{WSDL_NS}}}operation")]
        assert actions == ops


# -- every operation implemented, every answer valid ------------------------------------------------------


def number_request(op: str, number: str, element: str = "personnummer") -> str:
    return f"<p:{op}><p:{element}>{number}</p:{element}></p:{op}>"


def requests_for(pop: Population, version: str, fh: str) -> dict[str, list[tuple[str, str]]]:
    """Valid requests of every operation, as (account profile, request element XML), several per operation
    so that the answers cover every part of the schema (history, masking, lists, nil dates)."""
    other = {"1.1": "Elleve", "1.2": "Tolv"}[version]
    return {
        "ping": [("full", "<p:ping/>")],
        "getPerson": [("full", number_request("getPerson", n)) for n in (pop.ordinary, pop.replaced_dnr, pop.history,
                                                                        pop.dnr, pop.strengt)]
        + [("utenHjemmel", number_request("getPerson", pop.fortrolig)),
           ("lookupOnly", number_request("getPerson", pop.klient))],
        "getPersons": [("basis", "<p:getPersons>" + "".join(
            f"<p:personnummer>{n}</p:personnummer>" for n in (pop.ordinary, pop.unknown, "12345678901",
                                                             pop.replaced_dnr, pop.klient)) + "</p:getPersons>")],
        "getAdresses": [(profile, number_request("getAdresses", n)) for profile in ("full", "utenHjemmel")
                        for n in (pop.ordinary, pop.klient, pop.fortrolig, pop.strengt)],
        "searchPerson": [("full", "<p:searchPerson><p:etternavn>Fjellheim</p:etternavn><p:fodselsaar>1975"
                                  "</p:fodselsaar><p:maksAntall>10</p:maksAntall></p:searchPerson>"),
                         ("full", "<p:searchPerson><p:navn>Åse Ødegård</p:navn><p:fodselsdato>1962-11-02"
                                  "</p:fodselsdato><p:kjonn>K</p:kjonn></p:searchPerson>"),
                         ("full", "<p:searchPerson><p:etternavn>Ingensteds</p:etternavn><p:postnummer>0150"
                                  "</p:postnummer></p:searchPerson>")],
        "getPersonHistory": [(profile, number_request("getPersonHistory", n)) for profile in ("full", "basis")
                             for n in (pop.history, pop.replaced_dnr, pop.strengt)],
        "requestHjelpenummer": [("full", f"<p:requestHjelpenummer><p:fornavn>Kontrakt</p:fornavn><p:etternavn>{other}"
                                         "</p:etternavn><p:kjonn>M</p:kjonn><p:fodselsdato>1940-02-29</p:fodselsdato>"
                                         "<p:adresse><p:land>SWE</p:land></p:adresse></p:requestHjelpenummer>")],
        "getHjelpenummer": [("full", number_request("getHjelpenummer", fh, "hjelpenummer"))],
        "linkHjelpenummer": [("full", f"<p:linkHjelpenummer><p:hjelpenummer>{fh}</p:hjelpenummer><p:personnummer>"
                                      f"{pop.link_target[version]}</p:personnummer></p:linkHjelpenummer>")],
        "getChanges": [("full", f"<p:getChanges><p:fraSekvensnummer>0</p:fraSekvensnummer><p:personnummer>{n}"
                                f"</p:personnummer><p:personnummer>{pop.history}</p:personnummer>"
                                "<p:sideStorrelse>1</p:sideStorrelse></p:getChanges>")
                       for n in (pop.replaced_dnr, pop.unknown)],
    }


def allocate_fh(preg: PregServer, version: str) -> str:
    given = {"1.1": "Allokert", "1.2": "Tildelt"}[version]
    answer = preg.call(version, f"<p:requestHjelpenummer><p:fornavn>{given}</p:fornavn><p:etternavn>Kontrakt"
                                "</p:etternavn><p:kjonn>K</p:kjonn><p:fodselsdato>1960-01-01</p:fodselsdato>"
                                "</p:requestHjelpenummer>")
    assert answer.status == 200, answer.body[:300]
    return body_child(answer.xml()).findtext(f"{{{NS}}}hjelpenummer") or ""


@pytest.mark.parametrize("version", VERSIONS)
def test_every_operation_is_implemented_and_every_answer_validates(preg: PregServer, schema: etree.XMLSchema,
                                                                   version: str) -> None:
    served = etree.fromstring(preg.get("wsdl").body, PARSER)
    cases = requests_for(preg.pop, version, allocate_fh(preg, version))
    assert list(cases) == port_type_operations(served)
    for op, requests in cases.items():
        for profile, request in requests:
            answer = preg.call(version, request, auth=(ACCOUNTS[profile], PASSWORD))
            assert answer.status == 200, (op, profile, answer.body[:400])
            child = body_child(answer.xml())
            assert child.tag == f"{{{NS}}}{op}Response"
            assert schema.validate(child), (op, profile, str(schema.error_log.last_error))


@pytest.mark.parametrize("version", VERSIONS)
def test_an_operation_outside_the_contract_is_not_found_but_every_contract_one_is(preg: PregServer,
                                                                                  version: str) -> None:
    unknown = fault_of(preg.call(version, "<p:getPersonByName/>").xml())
    assert unknown[:2] == (version, "Client.ResourceNotFound")
    served = etree.fromstring(preg.get("wsdl").body, PARSER)
    for op in port_type_operations(served):  # an empty element reaches the operation and fails the schema
        code = fault_of(preg.call(version, f"<p:{op}><p:unexpected/></p:{op}>").xml())[1]
        assert code == "Client.InvalidRequest", op


# -- a configured namespace, address and path -------------------------------------------------------------


@pytest.fixture(scope="module")
def configured(preg: PregServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    settings = PregSettings(namespace="urn:example:helse:personregister:v2", path="/helse/preg/v2",
                            public_url="https://preg.example.no/helse/preg/v2")
    with running_preg(preg.settings.store.database_url, tmp_path_factory.mktemp("configured"), engine=preg.engine,
                      populated=False, with_accounts=False, preg=settings) as srv:  # the same store
        srv.population = preg.population
        yield srv


def test_a_configured_namespace_and_public_url_are_served(configured: PregServer) -> None:
    new_ns = "urn:example:helse:personregister:v2"
    answer = configured.get("wsdl")
    assert answer.status == 200
    assert DEFAULT_NAMESPACE.encode() not in answer.body
    served = etree.fromstring(answer.body, PARSER)
    assert served.get("targetNamespace") == new_ns
    schema_el = served.find(f"{{{WSDL_NS}}}types/{{{XS}}}schema")
    assert schema_el is not None and schema_el.get("targetNamespace") == new_ns
    locations = {el.get("location") for ns in SOAP_BINDINGS.values() for el in served.iter(f"{{{ns}}}address")}
    assert locations == {"https://preg.example.no/helse/preg/v2"}
    renamed = canonical(expected_wsdl("https://preg.example.no/helse/preg/v2")).replace(
        DEFAULT_NAMESPACE.encode(), new_ns.encode())
    assert canonical(served) == renamed


@pytest.mark.parametrize("version", VERSIONS)
def test_the_configured_contract_answers_at_the_configured_path(configured: PregServer, version: str) -> None:
    new_ns = "urn:example:helse:personregister:v2"
    client = zeep.Client(configured.wsdl_url)  # no credentials
    try:
        svc = client.create_service(f"{{{new_ns}}}PersonregisterSoap{version.replace('.', '')}", configured.url)
        with pytest.raises(zeep.exceptions.Fault) as exc:
            svc.ping()
        assert exc.value.message == "missing or malformed HTTP Basic credentials"
    finally:
        client.transport.session.close()
    served_schema = etree.XMLSchema(etree.fromstring(configured.get("xsd").body, PARSER))
    body = f'<g:getPerson xmlns:g="{new_ns}"><g:personnummer>{configured.pop.ordinary}</g:personnummer></g:getPerson>'
    answer = configured.post(envelope(version, body), CONTENT_TYPE[version])
    assert answer.status == 200, answer.body[:300]
    child = body_child(answer.xml())
    assert child.tag == f"{{{new_ns}}}getPersonResponse"
    assert served_schema.validate(child), str(served_schema.error_log.last_error)
    default_ns = configured.call(version, f"<p:getPerson><p:personnummer>{configured.pop.ordinary}</p:personnummer>"
                                          "</p:getPerson>")
    assert fault_of(default_ns.xml())[:2] == (version, "Client.ResourceNotFound")
