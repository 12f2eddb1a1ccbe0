"""The FLR contract as served: NHN's real IFlrReadOperations WSDL (wsdl/nhn-fastlegeregisteret-read.wsdl).

Kept byte-identical to its public copy (wsdl/SOURCE.md); served at ``/v2/flr?wsdl`` and ``/v2/flr/Basic?wsdl``
with only the port addresses replaced (server/soap/wcf/contract.py).
"""

from __future__ import annotations

from typing import Final

from server.soap.contract_files import contract_file
from server.soap.wcf.contract import WcfContract
from server.soap.wcf.contract import load_contract as load_wcf_contract

__all__ = ["PATH", "WSDL_FILE", "load_contract"]

WSDL_FILE: Final = contract_file("wsdl", "nhn-fastlegeregisteret-read.wsdl")
PATH: Final = "/v2/flr"


def load_contract(public_base_url: str = "http://localhost:8080") -> WcfContract:
    return load_wcf_contract(WSDL_FILE, public_base_url, PATH)
