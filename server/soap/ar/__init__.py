"""The AR (Adresseregisteret) face: NHN's ICommunicationPartyService on SOAP 1.1 and 1.2, from the store."""

from server.soap.ar.app import build_ar_app
from server.soap.ar.contract import ArContract, load_contract

__all__ = ["ArContract", "build_ar_app", "load_contract"]
