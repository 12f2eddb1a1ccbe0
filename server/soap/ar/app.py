"""The AR WSGI application: ``/v1/AR/Basic`` (SOAP 1.1) and ``/v1/AR`` (SOAP 1.2 + WS-Addressing).

Both paths are served by one application (mount it at both). ``GET ?wsdl`` (or ``?singleWsdl``) answers
NHN's real WSDL with our addresses (contract.py), without credentials, as WCF's metadata endpoint does.
A ``POST`` is authenticated first (before the SOAP guard looks at the body) with HTTP Basic: the contract's
binding policies say ``http:BasicAuthentication`` over HTTPS (transport security), and WCF refuses missing or
wrong credentials at the transport, with ``HTTP 401`` and ``WWW-Authenticate: Basic`` and no SOAP envelope; so
do we (a throttled account or address also gets 401, with ``Retry-After``). Then the request goes to the spyne
application of its SOAP version (``application/soap+xml`` is 1.2, anything else 1.1, on either path) behind
:class:`~server.soap.middleware.SoapGuard` (size, DTDs, charsets, version mismatch, escaped exceptions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from spyne import Application
from spyne.server.wsgi import WsgiApplication
from sqlalchemy import Engine

from server.access import (
    AccessProfile,
    AuditWriter,
    AuthenticationFailed,
    Authenticator,
    Throttled,
    client_address,
)
from server.soap.ar.contract import ArContract, load_contract
from server.soap.ar.face import ACCOUNT_KEY, ArFace
from server.soap.ar.protocol import WSA, ArSoap11, ArSoap12
from server.soap.ar.service import build_service
from server.soap.faults import fault_for_exception, fault_response, soap_version
from server.soap.middleware import DEFAULT_MAX_BODY, SoapGuard, silence_spyne_loggers
from server.soap.refusals import RefusalAudit, operation_of

__all__ = ["REALM", "build_ar_app", "build_ar_app_for"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
REALM = "pregbridge AR"
log = logging.getLogger("server.soap.ar")


def build_ar_app(engine: Engine, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, public_base_url: str, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    """The AR application; ``public_base_url`` (``https://host:port``) goes into the served WSDL."""
    face = ArFace(engine, load_contract(public_base_url), profiles, audit)
    return build_ar_app_for(face, authenticator, max_body=max_body)


def build_ar_app_for(face: ArFace, authenticator: Authenticator, *, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    silence_spyne_loggers()
    contract: ArContract = face.contract
    service = build_service(face)

    def spyne_app(protocol_in: Any, protocol_out: Any) -> WsgiApplication:
        app = Application([service], tns=contract.namespace, name="CommunicationParty", in_protocol=protocol_in,
                          out_protocol=protocol_out)
        return WsgiApplication(app, max_content_length=max_body)

    soap11 = spyne_app(ArSoap11(validator=None), ArSoap11())
    soap12 = spyne_app(ArSoap12(validator=None), ArSoap12())

    def router(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in ("GET", "HEAD"):
            if environ.get("QUERY_STRING", "").lower() in ("wsdl", "singlewsdl"):
                body = contract.wsdl
                start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"),
                                          ("Content-Length", str(len(body)))])
                return [body] if method == "GET" else []
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"ask ?wsdl for the contract"]
        if soap_version(environ.get("CONTENT_TYPE")) == "1.2":  # multipart/related by its root part's type
            return soap12(environ, start_response)  # type: ignore[no-any-return]
        return soap11(environ, start_response)  # type: ignore[no-any-return]

    # mustUnderstand header blocks AR processes: WS-Addressing 1.0 (wsa:Action, To, MessageID, ... of WCF's
    # WSHttpBinding on the SOAP 1.2 port; server.soap.ar.protocol answers with Action and RelatesTo).
    guarded = SoapGuard(router, max_body=max_body, understood={f"{{{WSA}}}*"},
                        multipart=False, refused=RefusalAudit(face.audit, "soap-ar"))

    def authenticated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD"):
            return guarded(environ, start_response)
        source = client_address(environ)
        try:
            environ[ACCOUNT_KEY] = authenticator.basic(environ.get("HTTP_AUTHORIZATION"), source)
        except AuthenticationFailed as exc:
            face.audit_refusal(environ, operation_of(environ), "Unauthorized")
            headers = [("WWW-Authenticate", f'Basic realm="{REALM}"'), ("Content-Type", "text/plain")]
            if isinstance(exc, Throttled):
                headers.append(("Retry-After", str(exc.retry_after)))
            start_response("401 Unauthorized", headers)
            return [b"401 Unauthorized: HTTP Basic credentials required"]
        except Exception as exc:  # noqa: BLE001 - the account store failing: a fault, never a bare 500
            code, message = fault_for_exception(exc)
            log.warning("authentication failed: %s (%s)", code, type(exc).__name__)
            try:
                face.audit_refusal(environ, operation_of(environ), code)
            except Exception as audit_exc:  # noqa: BLE001 - the store is down: answer the fault all the same
                log.error("audit record of a refusal not written (%s)", type(audit_exc).__name__)
            status, headers, body = fault_response(soap_version(environ.get("CONTENT_TYPE")), code, message)
            start_response(status, headers)
            return [body]
        return guarded(environ, start_response)

    return authenticated
