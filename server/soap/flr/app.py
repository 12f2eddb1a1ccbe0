"""The FLR WSGI application: ``/v2/flr/Basic`` (SOAP 1.1) and ``/v2/flr`` (SOAP 1.2 + WS-Addressing).

The shared Grunndata application (server/soap/wcf/app.py) around :class:`~server.soap.flr.face.FlrFace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sqlalchemy import Engine

from server.access import AccessProfile, AuditWriter, Authenticator
from server.soap.flr.contract import load_contract
from server.soap.flr.face import FlrFace
from server.soap.middleware import DEFAULT_MAX_BODY
from server.soap.wcf.app import WsgiApp, build_wcf_app

__all__ = ["REALM", "SERVICE_NAME", "build_flr_app", "build_flr_app_for"]

REALM: Final = "pregbridge FLR"
SERVICE_NAME: Final = "FlrReadOperations"


def build_flr_app(engine: Engine, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                  audit: AuditWriter, *, public_base_url: str, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    """The FLR application; ``public_base_url`` (``https://host:port``) goes into the served WSDL."""
    return build_flr_app_for(FlrFace(engine, load_contract(public_base_url), profiles, audit), authenticator,
                             max_body=max_body)


def build_flr_app_for(face: FlrFace, authenticator: Authenticator, *, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    return build_wcf_app(face, authenticator, realm=REALM, service_name=SERVICE_NAME, max_body=max_body)
