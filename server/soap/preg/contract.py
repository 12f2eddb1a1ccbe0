"""The PREG contract as served: wsdl/preg.wsdl with xsd/preg.xsd inlined, namespace and address configured.

The files in wsdl/ and xsd/ are the contract, kept by hand and read from the checkout at start (the
server runs from its source tree: ``pip install -e .``). The served WSDL is one self-contained document
(schema inlined) because several generated clients do not follow ``xs:include`` over HTTP; the XSD is
also served alone at ``?xsd``. Requests are validated against the same compiled schema.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from adapters.preg import DEFAULT_NAMESPACE
from server.soap.contract_files import contract_file

__all__ = ["DEFAULT_ADDRESS", "PregContract", "load_contract"]

WSDL_FILE = contract_file("wsdl", "preg.wsdl")
XSD_FILE = contract_file("xsd", "preg.xsd")
DEFAULT_ADDRESS = "http://localhost:8080/preg/v1/Personregister"
_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_XS = "http://www.w3.org/2001/XMLSchema"
_SLOT = "pregbridge: the schema goes here"


@dataclass(frozen=True)
class PregContract:
    namespace: str
    address: str
    wsdl: bytes
    xsd: bytes
    schema: etree.XMLSchema


def load_contract(namespace: str = DEFAULT_NAMESPACE, address: str = DEFAULT_ADDRESS) -> PregContract:
    xsd_text = XSD_FILE.read_text(encoding="utf-8").replace(DEFAULT_NAMESPACE, namespace)
    wsdl_text = (WSDL_FILE.read_text(encoding="utf-8").replace(DEFAULT_NAMESPACE, namespace)
                 .replace(DEFAULT_ADDRESS, address))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=True)
    xsd_root = etree.fromstring(xsd_text.encode(), parser)
    wsdl_root = etree.fromstring(wsdl_text.encode(), parser)
    types = wsdl_root.find(f"{{{_WSDL}}}types")
    assert types is not None, "wsdl/preg.wsdl has no wsdl:types"
    for old in types.findall(f"{{{_XS}}}schema"):
        types.remove(old)
    xsd = etree.tostring(xsd_root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    # Inlined as text and parsed once: appending the element would strip the namespace declarations its new
    # ancestors already make (lxml does), so the schema's QName values (type="tns:...") would resolve only
    # through wsdl:definitions, and a tool that extracts the schema from the WSDL gets one that does not compile.
    types.append(etree.Comment(_SLOT))
    wsdl_text = etree.tostring(wsdl_root, encoding="unicode").replace(
        f"<!--{_SLOT}-->", etree.tostring(xsd_root, encoding="unicode"), 1)
    wsdl_root = etree.fromstring(wsdl_text.encode(), parser)
    wsdl = etree.tostring(wsdl_root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return PregContract(namespace, address, wsdl, xsd, etree.XMLSchema(xsd_root))
