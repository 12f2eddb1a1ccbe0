"""The FLR (Fastlegeregisteret) face: NHN's IFlrReadOperations on SOAP 1.1 and 1.2, from the store."""

from server.soap.flr.app import build_flr_app
from server.soap.flr.contract import load_contract

__all__ = ["build_flr_app", "load_contract"]
