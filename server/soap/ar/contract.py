"""The AR contract as served: NHN's real WSDL (wsdl/nhn-adresseregisteret-sok.wsdl) with our addresses.

The file is NHN's 2025 single-file WSDL, byte-identical to its public copy (wsdl/SOURCE.md); only the
``soap:address``/``soap12:address`` locations and the ``wsa10:EndpointReference`` address are replaced
by the configured public URL (``…/v1/AR/Basic`` for the SOAP 1.1 port, ``…/v1/AR`` for SOAP 1.2). Loading,
schema compilation and the actions are the shared WCF ones (server/soap/wcf/contract.py).
"""

from __future__ import annotations

from typing import Final

from server.soap.contract_files import contract_file
from server.soap.wcf.contract import WcfContract, compile_schemas
from server.soap.wcf.contract import load_contract as load_wcf_contract

__all__ = ["WSDL_FILE", "ArContract", "compile_schemas", "load_contract"]

WSDL_FILE: Final = contract_file("wsdl", "nhn-adresseregisteret-sok.wsdl")
DEFAULT_BASE_URL: Final = "http://localhost:8080"

ArContract = WcfContract


def load_contract(public_base_url: str = DEFAULT_BASE_URL, *, path: str = "/v1/AR") -> WcfContract:
    return load_wcf_contract(WSDL_FILE, public_base_url, path)
