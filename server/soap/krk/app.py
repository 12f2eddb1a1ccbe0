"""The KRK WSGI application: ``/v1/krk/Basic`` (SOAP 1.1) and ``/v1/krk`` (SOAP 1.2 + WS-Addressing).

The shared Grunndata application (server/soap/wcf/app.py) around :class:`~server.soap.krk.face.KrkFace`. The
contract is wsdl/nhn-krk.wsdl, written by us from NHN's published C# service contract (wsdl/SOURCE.md), served
with only its addresses changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sqlalchemy import Engine

from server.access import AccessProfile, AuditWriter, Authenticator
from server.soap.contract_files import contract_file
from server.soap.krk.face import KrkFace
from server.soap.middleware import DEFAULT_MAX_BODY
from server.soap.wcf.app import WsgiApp, build_wcf_app
from server.soap.wcf.contract import WcfContract, load_contract

__all__ = ["PATH", "REALM", "SERVICE_NAME", "WSDL_FILE", "build_krk_app", "build_krk_app_for", "krk_contract"]

REALM: Final = "pregbridge KRK"
SERVICE_NAME: Final = "KrkService"
PATH: Final = "/v1/krk"
WSDL_FILE: Final = contract_file("wsdl", "nhn-krk.wsdl")


def krk_contract(public_base_url: str) -> WcfContract:
    return load_contract(WSDL_FILE, public_base_url, PATH)


def build_krk_app(engine: Engine, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                  audit: AuditWriter, *, public_base_url: str, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    """The KRK application; ``public_base_url`` (``https://host:port``) goes into the served WSDL."""
    return build_krk_app_for(KrkFace(engine, krk_contract(public_base_url), profiles, audit), authenticator,
                             max_body=max_body)


def build_krk_app_for(face: KrkFace, authenticator: Authenticator, *, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    return build_wcf_app(face, authenticator, realm=REALM, service_name=SERVICE_NAME, max_body=max_body)
