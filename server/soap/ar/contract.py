"""The AR contract as served: NHN's real WSDL (wsdl/nhn-adresseregisteret-sok.wsdl) with our addresses.

The file is NHN's 2025 single-file WSDL, byte-identical to its public copy (wsdl/SOURCE.md); only the
``soap:address``/``soap12:address`` locations and the ``wsa10:EndpointReference`` address are replaced
by the configured public URL (``…/v1/AR/Basic`` for the SOAP 1.1 port, ``…/v1/AR`` for SOAP 1.2). The
inline schemas (nine, importing each other by namespace without ``schemaLocation``) are compiled into one
:class:`lxml.etree.XMLSchema` through a resolver, and every request body is validated against it. The
operations, their SOAP actions and which of them are one-way writes come from the portType.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lxml import etree

__all__ = ["WSDL_FILE", "ArContract", "compile_schemas", "load_contract"]

ROOT = Path(__file__).resolve().parents[3]
WSDL_FILE: Final = ROOT / "wsdl" / "nhn-adresseregisteret-sok.wsdl"
DEFAULT_BASE_URL: Final = "http://localhost:8080"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_XS = "http://www.w3.org/2001/XMLSchema"
_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
_WSA10 = "http://www.w3.org/2005/08/addressing"
_WSAM = "http://www.w3.org/2007/05/addressing/metadata"
_PREFIX = "urn:pregbridge:ar-schema:"


@dataclass(frozen=True)
class ArContract:
    namespace: str
    basic_address: str
    ws_address: str
    wsdl: bytes
    schema: etree.XMLSchema
    operations: tuple[str, ...]
    actions: dict[str, str]  # operation -> its input action (the SOAPAction)


class _Resolver(etree.Resolver):  # type: ignore[misc]
    def __init__(self, documents: dict[str, bytes]) -> None:
        super().__init__()
        self.documents = documents

    def resolve(self, url: str, pubid: str, context: Any) -> Any:
        if url in self.documents:
            return self.resolve_string(self.documents[url], context)
        return None


def compile_schemas(wsdl_root: etree._Element) -> etree.XMLSchema:
    """One XMLSchema of every ``xs:schema`` inline in ``wsdl:types`` (imports resolved by namespace)."""
    documents: dict[str, bytes] = {}
    namespaces: list[str] = []
    for schema in wsdl_root.iter(f"{{{_XS}}}schema"):
        copy = etree.fromstring(etree.tostring(schema))  # keeps the in-scope namespace declarations
        for imp in copy.findall(f"{{{_XS}}}import"):
            imp.set("schemaLocation", _PREFIX + imp.get("namespace", ""))
        tns = copy.get("targetNamespace", "")
        documents[_PREFIX + tns] = etree.tostring(copy)
        namespaces.append(tns)
    main = etree.Element(f"{{{_XS}}}schema", nsmap={"xs": _XS})
    for ns in namespaces:
        etree.SubElement(main, f"{{{_XS}}}import", namespace=ns, schemaLocation=_PREFIX + ns)
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_Resolver(documents))
    return etree.XMLSchema(etree.fromstring(etree.tostring(main), parser))


def load_contract(public_base_url: str = DEFAULT_BASE_URL, *, path: str = "/v1/AR") -> ArContract:
    ws_address = public_base_url.rstrip("/") + path
    basic_address = ws_address + "/Basic"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(WSDL_FILE), parser).getroot()
    for port in root.iter(f"{{{_WSDL}}}port"):
        for address in port.iter(f"{{{_SOAP}}}address"):
            address.set("location", basic_address)
        for address in port.iter(f"{{{_SOAP12}}}address"):
            address.set("location", ws_address)
        for address in port.iter(f"{{{_WSA10}}}Address"):
            address.text = ws_address
    port_type = root.find(f"{{{_WSDL}}}portType")
    assert port_type is not None, "the AR WSDL has no portType"
    operations: list[str] = []
    actions: dict[str, str] = {}
    for op in port_type.findall(f"{{{_WSDL}}}operation"):
        name = op.get("name", "")
        operations.append(name)
        given = op.find(f"{{{_WSDL}}}input")
        actions[name] = given.get(f"{{{_WSAM}}}Action", "") if given is not None else ""
    wsdl = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return ArContract(namespace=root.get("targetNamespace", ""), basic_address=basic_address,
                      ws_address=ws_address, wsdl=wsdl, schema=compile_schemas(root),
                      operations=tuple(operations), actions=actions)
