"""The PREG Personregister face: SOAP 1.1 and 1.2 on one path, over spyne, answering from the store."""

from server.soap.preg.app import build_preg_app
from server.soap.preg.contract import PregContract, load_contract

__all__ = ["PregContract", "build_preg_app", "load_contract"]
