"""A Grunndata contract as served: NHN's real WSDL with our addresses, its schemas compiled, its actions.

NHN's WSDLs are WCF single-file WSDLs with two ports: ``BasicHttpBinding_I…`` (SOAP 1.1, ``…/Basic``) and
``WSHttpBinding_I…`` (SOAP 1.2 with WS-Addressing, the address without ``/Basic``). :func:`load_contract`
keeps the file byte-for-byte except the ``soap:address``/``soap12:address`` locations and the
``wsa10:EndpointReference`` address, which become the configured public URL. The inline schemas (several,
importing each other by namespace without ``schemaLocation``) are compiled into one
:class:`lxml.etree.XMLSchema` through a resolver, and every request body is validated against it. The
operations and their input, output and GenericFault actions come from the portType.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from lxml import etree

__all__ = ["WcfContract", "compile_schemas", "load_contract"]

_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_XS = "http://www.w3.org/2001/XMLSchema"
_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
_WSA10 = "http://www.w3.org/2005/08/addressing"
_WSAM = "http://www.w3.org/2007/05/addressing/metadata"
_WSAW = "http://www.w3.org/2006/05/addressing/wsdl"
_PREFIX: Final = "urn:pregbridge:wcf-schema:"


@dataclass(frozen=True)
class WcfContract:
    namespace: str
    basic_address: str
    ws_address: str
    wsdl: bytes
    schema: etree.XMLSchema
    operations: tuple[str, ...]
    actions: dict[str, str]  # operation -> its input action (the SOAPAction)
    output_actions: dict[str, str]  # operation -> its output action (wsa:Action of the answer)
    fault_actions: dict[str, str]  # operation -> the action of its GenericFault

    def output_action(self, operation: str) -> str:
        return self.output_actions.get(operation, "")

    def fault_action(self, operation: str) -> str:
        return self.fault_actions.get(operation, "")


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


def _action(el: etree._Element | None) -> str:
    if el is None:
        return ""
    return str(el.get(f"{{{_WSAM}}}Action") or el.get(f"{{{_WSAW}}}Action") or "")


def load_contract(wsdl_file: Path, public_base_url: str, path: str) -> WcfContract:
    """The contract of ``wsdl_file`` served at ``public_base_url + path`` (SOAP 1.2) and ``…/Basic``."""
    ws_address = public_base_url.rstrip("/") + path
    basic_address = ws_address + "/Basic"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(wsdl_file), parser).getroot()
    for port in root.iter(f"{{{_WSDL}}}port"):
        for address in port.iter(f"{{{_SOAP}}}address"):
            address.set("location", basic_address)
        for address in port.iter(f"{{{_SOAP12}}}address"):
            address.set("location", ws_address)
        for address in port.iter(f"{{{_WSA10}}}Address"):
            address.text = ws_address
    port_type = root.find(f"{{{_WSDL}}}portType")
    if port_type is None:
        raise ValueError(f"{wsdl_file.name}: the WSDL has no portType")
    operations: list[str] = []
    actions: dict[str, str] = {}
    outputs: dict[str, str] = {}
    faults: dict[str, str] = {}
    for op in port_type.findall(f"{{{_WSDL}}}operation"):
        name = op.get("name", "")
        operations.append(name)
        actions[name] = _action(op.find(f"{{{_WSDL}}}input"))
        outputs[name] = _action(op.find(f"{{{_WSDL}}}output"))
        for fault in op.findall(f"{{{_WSDL}}}fault"):
            if fault.get("name") == "GenericFaultFault":
                faults[name] = _action(fault)
    wsdl = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return WcfContract(namespace=root.get("targetNamespace", ""), basic_address=basic_address,
                       ws_address=ws_address, wsdl=wsdl, schema=compile_schemas(root),
                       operations=tuple(operations), actions=actions, output_actions=outputs,
                       fault_actions=faults)
