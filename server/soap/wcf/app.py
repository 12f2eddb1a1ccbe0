"""The WSGI application of a Grunndata face: ``…/Basic`` (SOAP 1.1) and the bare path (SOAP 1.2 + WS-Addressing).

Both paths are served by one application (mount it at both). ``GET ?wsdl`` (or ``?singleWsdl``) answers
the contract's WSDL with our addresses (contract.py), without credentials, as WCF's metadata endpoint does.
A ``POST`` is authenticated first (before the SOAP guard looks at the body) with HTTP Basic: the NHN
contracts' binding policies say ``http:BasicAuthentication`` over HTTPS (transport security), and WCF
refuses missing or wrong credentials at the transport, with ``HTTP 401`` and ``WWW-Authenticate: Basic`` and
no SOAP envelope; so do we (a throttled account or address also gets 401, with ``Retry-After``). Then the
request goes to the spyne application of its SOAP version (``application/soap+xml`` is 1.2, anything else
1.1, on either path) behind :class:`~server.soap.middleware.SoapGuard` (size, DTDs, charsets, version
mismatch, escaped exceptions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from spyne import Application
from spyne.server.wsgi import WsgiApplication

from server.access import AuthenticationFailed, Authenticator, Throttled, client_address
from server.soap.faults import fault_for_exception, fault_response, soap_version
from server.soap.middleware import DEFAULT_MAX_BODY, SoapGuard, silence_spyne_loggers
from server.soap.refusals import RefusalAudit, operation_of
from server.soap.wcf.face import ACCOUNT_KEY, WcfFace
from server.soap.wcf.protocol import WSA, WcfSoap11, WcfSoap12
from server.soap.wcf.service import build_service

__all__ = ["WsgiApp", "build_wcf_app"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
log = logging.getLogger("server.soap.wcf")


def build_wcf_app(face: WcfFace, authenticator: Authenticator, *, realm: str, service_name: str,
                  type_namespace: str | None = None, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    """The application of ``face``; ``service_name`` is spyne's (the WSDL's service, e.g. ``CommunicationParty``)."""
    silence_spyne_loggers()
    contract = face.contract
    service = build_service(face, service_name)

    def spyne_app(protocol_in: Any, protocol_out: Any) -> WsgiApplication:
        app = Application([service], tns=contract.namespace, name=service_name, in_protocol=protocol_in,
                          out_protocol=protocol_out)
        return WsgiApplication(app, max_content_length=max_body)

    soap11 = spyne_app(WcfSoap11(validator=None, contract=contract),
                       WcfSoap11(contract=contract, type_namespace=type_namespace))
    soap12 = spyne_app(WcfSoap12(validator=None, contract=contract),
                       WcfSoap12(contract=contract, type_namespace=type_namespace))

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

    # mustUnderstand header blocks the Grunndata faces process: WS-Addressing 1.0 (wsa:Action, To, MessageID, ...
    # of WCF's WSHttpBinding on the SOAP 1.2 port; server.soap.wcf.protocol answers with Action and RelatesTo).
    guarded = SoapGuard(router, max_body=max_body, understood={f"{{{WSA}}}*"}, multipart=False,
                        refused=RefusalAudit(face.audit, face.audit_face))

    def authenticated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD"):
            return guarded(environ, start_response)
        source = client_address(environ)
        try:
            environ[ACCOUNT_KEY] = authenticator.basic(environ.get("HTTP_AUTHORIZATION"), source)
        except AuthenticationFailed as exc:
            face.audit_refusal(environ, operation_of(environ), "Unauthorized")
            headers = [("WWW-Authenticate", f'Basic realm="{realm}"'), ("Content-Type", "text/plain")]
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

