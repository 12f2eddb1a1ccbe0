"""The AR WSGI application: ``/v1/AR/Basic`` (SOAP 1.1) and ``/v1/AR`` (SOAP 1.2 + WS-Addressing).

The shared Grunndata application (server/soap/wcf/app.py: the served WSDL, HTTP Basic refused with 401
before SOAP, the SOAP guard, GenericFault faults, WS-Addressing on SOAP 1.2) around :class:`ArFace`, with
``i:type`` values re-qualified in the CommunicationParty namespace.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine

from adapters.ar import CP
from server.access import AccessProfile, AuditWriter, Authenticator
from server.soap.ar.contract import load_contract
from server.soap.ar.face import ArFace
from server.soap.ar.service import SERVICE_NAME
from server.soap.middleware import DEFAULT_MAX_BODY
from server.soap.wcf.app import WsgiApp, build_wcf_app

__all__ = ["REALM", "build_ar_app", "build_ar_app_for"]

REALM = "pregbridge AR"


def build_ar_app(engine: Engine, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, public_base_url: str, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    """The AR application; ``public_base_url`` (``https://host:port``) goes into the served WSDL."""
    face = ArFace(engine, load_contract(public_base_url), profiles, audit)
    return build_ar_app_for(face, authenticator, max_body=max_body)


def build_ar_app_for(face: ArFace, authenticator: Authenticator, *, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    return build_wcf_app(face, authenticator, realm=REALM, service_name=SERVICE_NAME, type_namespace=CP,
                         max_body=max_body)
