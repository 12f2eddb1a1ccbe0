"""server.soap.faults: fault envelopes are valid SOAP 1.1 / 1.2, read by zeep as the faults they are.

The SOAP 1.1 envelope schema is the copy xmlschema ships (skipped where it is not installed). The SOAP 1.2
one is below, transcribed from the normative schema at http://www.w3.org/2003/05/soap-envelope and cut to
what a fault uses (Envelope, Header, Body, Fault and its parts, Upgrade); with a stub of xml.xsd for
``xml:lang``. Validation checks the QName values too: a Code ``Value`` must resolve to env:Sender etc.
That the envelopes are shaped exactly like spyne's is tested against spyne itself in
tests/integration/test_soap_middleware.py.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from zeep.exceptions import Fault as ZeepFault
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

from server.soap.faults import (
    FAULT_STATUS,
    SOAP11_CONTENT_TYPE,
    SOAP11_ENV,
    SOAP12_CONTENT_TYPE,
    SOAP12_ENV,
    fault_envelope,
    fault_for_exception,
    fault_response,
    media_type,
    soap_version,
    version_mismatch_envelope,
    version_mismatch_response,
)
from store.errors import InvalidDocument, InvalidIdentifierError, NotFound, StoreUnavailable

XML_NS = "http://www.w3.org/XML/1998/namespace"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

XML_XSD = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    targetNamespace="http://www.w3.org/XML/1998/namespace">
  <xs:attribute name="lang" type="xs:language"/>
</xs:schema>"""

SOAP12_XSD = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="http://www.w3.org/2003/05/soap-envelope"
    targetNamespace="http://www.w3.org/2003/05/soap-envelope" elementFormDefault="qualified">
  <xs:import namespace="http://www.w3.org/XML/1998/namespace" schemaLocation="xml.xsd"/>
  <xs:element name="Envelope" type="tns:Envelope"/>
  <xs:complexType name="Envelope">
    <xs:sequence>
      <xs:element ref="tns:Header" minOccurs="0"/>
      <xs:element ref="tns:Body" minOccurs="1"/>
    </xs:sequence>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Header" type="tns:Header"/>
  <xs:complexType name="Header">
    <xs:sequence><xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Body" type="tns:Body"/>
  <xs:complexType name="Body">
    <xs:sequence><xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Fault" type="tns:Fault"/>
  <xs:complexType name="Fault" final="extension">
    <xs:sequence>
      <xs:element name="Code" type="tns:faultcode"/>
      <xs:element name="Reason" type="tns:faultreason"/>
      <xs:element name="Node" type="xs:anyURI" minOccurs="0"/>
      <xs:element name="Role" type="xs:anyURI" minOccurs="0"/>
      <xs:element name="Detail" type="tns:detail" minOccurs="0"/>
    </xs:sequence>
  </xs:complexType>
  <xs:complexType name="faultreason">
    <xs:sequence><xs:element name="Text" type="tns:reasontext" minOccurs="1" maxOccurs="unbounded"/></xs:sequence>
  </xs:complexType>
  <xs:complexType name="reasontext">
    <xs:simpleContent>
      <xs:extension base="xs:string"><xs:attribute ref="xml:lang" use="required"/></xs:extension>
    </xs:simpleContent>
  </xs:complexType>
  <xs:complexType name="faultcode">
    <xs:sequence>
      <xs:element name="Value" type="tns:faultcodeEnum"/>
      <xs:element name="Subcode" type="tns:subcode" minOccurs="0"/>
    </xs:sequence>
  </xs:complexType>
  <xs:simpleType name="faultcodeEnum">
    <xs:restriction base="xs:QName">
      <xs:enumeration value="tns:DataEncodingUnknown"/>
      <xs:enumeration value="tns:MustUnderstand"/>
      <xs:enumeration value="tns:Receiver"/>
      <xs:enumeration value="tns:Sender"/>
      <xs:enumeration value="tns:VersionMismatch"/>
    </xs:restriction>
  </xs:simpleType>
  <xs:complexType name="subcode">
    <xs:sequence>
      <xs:element name="Value" type="xs:QName"/>
      <xs:element name="Subcode" type="tns:subcode" minOccurs="0"/>
    </xs:sequence>
  </xs:complexType>
  <xs:complexType name="detail">
    <xs:sequence><xs:any namespace="##any" processContents="lax" minOccurs="0" maxOccurs="unbounded"/></xs:sequence>
    <xs:anyAttribute namespace="##other" processContents="lax"/>
  </xs:complexType>
  <xs:element name="Upgrade" type="tns:UpgradeType"/>
  <xs:complexType name="UpgradeType">
    <xs:sequence>
      <xs:element name="SupportedEnvelope" type="tns:SupportedEnvType" minOccurs="1" maxOccurs="unbounded"/>
    </xs:sequence>
  </xs:complexType>
  <xs:complexType name="SupportedEnvType">
    <xs:attribute name="qname" type="xs:QName" use="required"/>
  </xs:complexType>
</xs:schema>"""


class _XmlXsd(etree.Resolver):  # type: ignore[misc]
    def resolve(self, url: str, pubid: str | None, context: Any) -> Any:
        return self.resolve_string(XML_XSD, context) if url.endswith("/xml.xsd") else None


@pytest.fixture(scope="module")
def soap12_schema() -> Any:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_XmlXsd())
    return etree.XMLSchema(etree.fromstring(SOAP12_XSD, parser, base_url="file:///soap12/soap-envelope.xsd"))


@pytest.fixture(scope="module")
def soap11_schema() -> Any:
    spec = importlib.util.find_spec("xmlschema")
    if spec is None or spec.origin is None:
        pytest.skip("the SOAP 1.1 envelope schema comes with xmlschema, which is not installed")
    path = Path(spec.origin).parent / "schemas" / "WSDL" / "soap-envelope.xsd"
    return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(no_network=True)))


def parse(data: bytes) -> Any:
    return etree.fromstring(data, PARSER)


def qname_value(element: Any) -> etree.QName:
    """The QName an element's text names, resolved against its in-scope namespaces."""
    prefix, _, local = element.text.rpartition(":")
    return etree.QName(element.nsmap.get(prefix or None), local)


def fault_of(data: bytes, env: str) -> Any:
    root = parse(data)
    assert root.tag == f"{{{env}}}Envelope"
    body = root.find(f"{{{env}}}Body")
    assert body is not None and len(body) == 1
    assert body[0].tag == f"{{{env}}}Fault"
    return body[0]


def zeep_fault(binding: type[Any], data: bytes) -> ZeepFault:
    with pytest.raises(ZeepFault) as caught:
        binding.process_error(object.__new__(binding), parse(data), None)
    return caught.value


def detail_element() -> Any:
    return etree.fromstring(b'<p:PersonNotFound xmlns:p="urn:preg"><p:Field>fnr</p:Field></p:PersonNotFound>')


# -- SOAP 1.1 --------------------------------------------------------------------------------------------


def test_soap11_fault_has_dotted_code_qualified_with_the_envelope_prefix() -> None:
    fault = fault_of(fault_envelope("1.1", "Client.InvalidRequest", "bad request"), SOAP11_ENV)
    assert [child.tag for child in fault] == ["faultcode", "faultstring", "faultactor"]
    assert fault.findtext("faultcode") == "soap11env:Client.InvalidRequest"
    assert qname_value(fault.find("faultcode")) == etree.QName(SOAP11_ENV, "Client.InvalidRequest")
    assert fault.findtext("faultstring") == "bad request"
    assert fault.findtext("faultactor") == ""


def test_soap11_detail_is_a_copy_inside_detail() -> None:
    mine = etree.Element("wrapper")
    element = etree.SubElement(mine, "{urn:preg}PersonNotFound")
    fault = fault_of(fault_envelope("1.1", "Client.NotFound", "no such person", detail=element), SOAP11_ENV)
    assert [child.tag for child in fault] == ["faultcode", "faultstring", "faultactor", "detail"]
    assert [child.tag for child in fault.find("detail")] == ["{urn:preg}PersonNotFound"]
    assert element.getparent() is mine  # the caller's tree is untouched


@pytest.mark.parametrize("code", ["Client", "Server", "Client.InvalidRequest", "Server.Unavailable", "VersionMismatch"])
def test_soap11_envelopes_validate(soap11_schema: Any, code: str) -> None:
    for data in (fault_envelope("1.1", code, "x"), fault_envelope("1.1", code, "x", detail=detail_element())):
        assert soap11_schema.validate(parse(data)), soap11_schema.error_log


def test_zeep_reads_a_soap11_fault() -> None:
    data = fault_envelope("1.1", "Client.Authentication", "invalid username or password", detail=detail_element())
    fault = zeep_fault(Soap11Binding, data)
    assert fault.code == "soap11env:Client.Authentication"
    assert fault.message == "invalid username or password"
    assert fault.detail is not None and fault.detail[0].tag == "{urn:preg}PersonNotFound"


# -- SOAP 1.2 --------------------------------------------------------------------------------------------


def test_soap12_fault_maps_client_to_sender_with_the_rest_as_subcode() -> None:
    fault = fault_of(fault_envelope("1.2", "Client.InvalidRequest", "bad request"), SOAP12_ENV)
    env = f"{{{SOAP12_ENV}}}"
    assert [child.tag for child in fault] == [env + "Code", env + "Reason", env + "Role"]
    value = fault.find(f"{env}Code/{env}Value")
    assert value.text == "soap12env:Sender"
    assert qname_value(value) == etree.QName(SOAP12_ENV, "Sender")
    assert fault.findtext(f"{env}Code/{env}Subcode/{env}Value") == "InvalidRequest"  # unprefixed, as spyne
    assert fault.find(f"{env}Code/{env}Subcode/{env}Subcode") is None
    text = fault.find(f"{env}Reason/{env}Text")
    assert text.text == "bad request"
    assert text.get(f"{{{XML_NS}}}lang") == "en"


@pytest.mark.parametrize(
    ("code", "value", "subcodes"),
    [
        ("Client", "Sender", []),
        ("Server", "Receiver", []),
        ("Server.Unavailable", "Receiver", ["Unavailable"]),
        ("Client.Authentication.Throttled", "Sender", ["Authentication", "Throttled"]),
        ("VersionMismatch", "VersionMismatch", []),
    ],
)
def test_soap12_codes_and_nested_subcodes(code: str, value: str, subcodes: list[str]) -> None:
    data = fault_envelope("1.2", code, "x", lang="nb")
    fault = zeep_fault(Soap12Binding, data)
    assert fault.code == f"soap12env:{value}"
    assert [q.localname for q in fault.subcodes] == subcodes
    assert all(q.namespace is None for q in fault.subcodes)
    assert parse(data).find(f".//{{{SOAP12_ENV}}}Text").get(f"{{{XML_NS}}}lang") == "nb"


@pytest.mark.parametrize("code", ["Client", "Server", "Client.InvalidRequest", "Server.Unavailable", "Client.A.B"])
def test_soap12_envelopes_validate(soap12_schema: Any, code: str) -> None:
    for data in (fault_envelope("1.2", code, "x"), fault_envelope("1.2", code, "x", detail=detail_element())):
        assert soap12_schema.validate(parse(data)), soap12_schema.error_log


def test_soap12_schema_catches_an_unqualified_code(soap12_schema: Any) -> None:
    # the schema check is not vacuous: an unprefixed env:Sender or a missing xml:lang fails it
    data = fault_envelope("1.2", "Client", "x")
    assert not soap12_schema.validate(parse(data.replace(b">soap12env:Sender<", b">Sender<")))
    assert not soap12_schema.validate(parse(data.replace(b' xml:lang="en"', b"")))


def test_zeep_reads_a_soap12_fault_with_detail() -> None:
    data = fault_envelope(
        "1.2", "Server.Unavailable", "the register is temporarily unavailable", detail=detail_element()
    )
    fault = zeep_fault(Soap12Binding, data)
    assert fault.message == "the register is temporarily unavailable"
    assert fault.code == "soap12env:Receiver"
    assert fault.subcodes == [etree.QName("Unavailable")]
    assert fault.detail is not None and fault.detail[0].tag == "{urn:preg}PersonNotFound"


# -- VersionMismatch and Upgrade -------------------------------------------------------------------------


def supported_envelopes(data: bytes) -> list[etree.QName]:
    upgrade = parse(data).find(f"*/{{{SOAP12_ENV}}}Upgrade")
    assert upgrade is not None
    out = []
    for supported in upgrade.findall(f"{{{SOAP12_ENV}}}SupportedEnvelope"):
        prefix, _, local = supported.get("qname").partition(":")
        out.append(etree.QName(supported.nsmap[prefix], local))
    return out


@pytest.mark.parametrize(("version", "env"), [("1.1", SOAP11_ENV), ("1.2", SOAP12_ENV)])
def test_version_mismatch_lists_supported_envelopes_in_an_upgrade_header(version: Any, env: str) -> None:
    data = version_mismatch_envelope(version, "wrong SOAP version", supported=("1.1", "1.2"))
    root = parse(data)
    assert [child.tag for child in root] == [f"{{{env}}}Header", f"{{{env}}}Body"]
    assert supported_envelopes(data) == [etree.QName(SOAP11_ENV, "Envelope"), etree.QName(SOAP12_ENV, "Envelope")]
    binding = Soap11Binding if version == "1.1" else Soap12Binding
    fault = zeep_fault(binding, data)
    assert fault.code == ("soap11env:VersionMismatch" if version == "1.1" else "soap12env:VersionMismatch")
    assert fault.message == "wrong SOAP version"


def test_version_mismatch_envelopes_validate(soap11_schema: Any, soap12_schema: Any) -> None:
    for supported in (("1.1",), ("1.2",), ("1.2", "1.1")):
        assert soap11_schema.validate(parse(version_mismatch_envelope("1.1", "x", supported=supported)))
        assert soap12_schema.validate(parse(version_mismatch_envelope("1.2", "x", supported=supported))), (
            soap12_schema.error_log
        )


# -- responses, versions, codes, text --------------------------------------------------------------------


@pytest.mark.parametrize(("version", "content_type"), [("1.1", SOAP11_CONTENT_TYPE), ("1.2", SOAP12_CONTENT_TYPE)])
def test_fault_response_is_500_with_the_versions_content_type(version: Any, content_type: str) -> None:
    status, headers, body = fault_response(version, "Client.InvalidRequest", "x")
    assert status == FAULT_STATUS == "500 Internal Server Error"
    assert headers == [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    status, headers, body = version_mismatch_response(version, "x")
    assert status == FAULT_STATUS
    assert dict(headers)["Content-Type"] == content_type
    assert body.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")


def test_fault_response_status_can_be_overridden() -> None:
    assert fault_response("1.2", "Client.InvalidRequest", "x", status="400 Bad Request")[0] == "400 Bad Request"


@pytest.mark.parametrize(
    ("content_type", "head", "expected"),
    [
        ("text/xml; charset=utf-8", None, "1.1"),
        ("Text/XML", f'<e:Envelope xmlns:e="{SOAP12_ENV}"/>'.encode(), "1.1"),  # the header decides
        ("application/soap+xml; charset=utf-8; action=urn:x", None, "1.2"),
        ('  APPLICATION/SOAP+XML ; charset="utf-8"', None, "1.2"),
        ("application/xml", None, "1.1"),
        (None, None, "1.1"),
        ("", None, "1.1"),
        (None, f'<?xml version="1.0"?><e:Envelope xmlns:e="{SOAP12_ENV}"/>'.encode(), "1.2"),
        (None, f'<e:Envelope xmlns:e="{SOAP11_ENV}"/>'.encode(), "1.1"),
        (None, f'<e:Envelope xmlns:e="{SOAP11_ENV}" xmlns:f="{SOAP12_ENV}"/>'.encode(), "1.1"),  # first wins
        (None, b"<notsoap/>", "1.1"),
        (None, b" " * 2000 + SOAP12_ENV.encode(), "1.1"),  # only the first KiB is sniffed
    ],
)
def test_soap_version(content_type: str | None, head: bytes | None, expected: str) -> None:
    assert soap_version(content_type, head) == expected


def test_media_type() -> None:
    assert media_type(" Text/XML ; charset=utf-8") == "text/xml"
    assert media_type(None) == ""


@pytest.mark.parametrize("code", ["NotFound", "Sender.X", "Client.", "Client..X", "Client.Bad Name", "client.X", ""])
def test_codes_spyne_cannot_render_are_refused(code: str) -> None:
    with pytest.raises(ValueError):
        fault_envelope("1.2", code, "x")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_text_is_utf8_and_characters_xml_cannot_carry_are_replaced(version: Any) -> None:
    data = fault_envelope(version, "Client", "Ærlig Østby\x00\x1b og \ud800 Åse\ttab")
    assert "Ærlig Østby".encode() in data
    binding = Soap11Binding if version == "1.1" else Soap12Binding
    assert zeep_fault(binding, data).message == "Ærlig Østby\ufffd\ufffd og \ufffd Åse\ttab"


# -- exceptions to faults --------------------------------------------------------------------------------


def test_pregbridge_errors_bring_their_own_codes() -> None:
    assert fault_for_exception(StoreUnavailable("database down")) == ("Server.Unavailable", "database down")
    assert fault_for_exception(NotFound("no such person")) == ("Client.NotFound", "no such person")
    invalid = InvalidIdentifierError("fødselsnummer has a bad check digit", reason="checksum")
    assert fault_for_exception(invalid) == ("Client.InvalidIdentifier", "fødselsnummer has a bad check digit")
    document = InvalidDocument("missing", field="personId", where="line 3")
    assert fault_for_exception(document) == ("Client.InvalidRequest", "line 3: field personId: missing")


def test_database_errors_are_unavailable_without_their_text() -> None:
    errors = [
        OperationalError("SELECT * FROM person WHERE fnr = ?", ("01010112345",), Exception("connection refused")),
        IntegrityError("INSERT", ("01010112345",), Exception("UNIQUE failed")),
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
    ]
    for exc in errors:
        code, message = fault_for_exception(exc)
        assert code == "Server.Unavailable"
        assert "01010112345" not in message and "SELECT" not in message


def test_anything_else_is_a_bare_server_fault_saying_internal_error() -> None:
    assert fault_for_exception(RuntimeError("fnr 01010112345 in a stack frame")) == ("Server", "internal error")
    assert fault_for_exception(KeyError("x")) == ("Server", "internal error")
