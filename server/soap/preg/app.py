"""The PREG WSGI application: SOAP 1.1 and 1.2 on one path, the contract at ``?wsdl``/``?xsd``.

``POST`` goes to the spyne application of the caller's SOAP version (``application/soap+xml`` is 1.2,
anything else 1.1), behind :class:`~server.soap.middleware.SoapGuard` (size limit, DTDs, charsets,
version mismatch, every escaped exception as a fault). ``GET ?wsdl`` answers the configured contract
(server.soap.preg.contract), not spyne's generated one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from spyne import Application
from spyne.server.wsgi import WsgiApplication

from server.soap.faults import soap_version
from server.soap.middleware import SoapGuard, silence_spyne_loggers
from server.soap.preg.face import PregFace
from server.soap.preg.protocol import PregSoap11, PregSoap12
from server.soap.preg.service import build_service
from server.soap.refusals import RefusalAudit
from server.soap.wssecurity import WSSE

__all__ = ["UNDERSTOOD", "build_preg_app"]

# mustUnderstand header blocks PREG processes: WS-Security, for its UsernameToken (server.soap.wssecurity).
UNDERSTOOD = frozenset({f"{{{WSSE}}}Security"})

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build_preg_app(face: PregFace, *, max_body: int = 2 * 1024 * 1024) -> WsgiApp:
    silence_spyne_loggers()
    service = build_service(face)
    tns = face.contract.namespace

    def spyne_app(protocol_in: Any, protocol_out: Any) -> WsgiApplication:
        app = Application([service], tns=tns, name="Personregister", in_protocol=protocol_in,
                          out_protocol=protocol_out)
        return WsgiApplication(app, max_content_length=max_body)

    soap11 = spyne_app(PregSoap11(validator=None), PregSoap11())
    soap12 = spyne_app(PregSoap12(validator=None), PregSoap12())

    def router(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in ("GET", "HEAD"):
            query = environ.get("QUERY_STRING", "").lower()
            if query in ("wsdl", "singlewsdl"):
                return _send(start_response, face.contract.wsdl)
            if query == "xsd":
                return _send(start_response, face.contract.xsd)
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"ask ?wsdl for the contract"]
        if soap_version(environ.get("CONTENT_TYPE")) == "1.2":  # multipart/related by its root part's type
            return soap12(environ, start_response)  # type: ignore[no-any-return]
        return soap11(environ, start_response)  # type: ignore[no-any-return]

    return SoapGuard(router, max_body=max_body, understood=UNDERSTOOD, multipart=False,
                     refused=RefusalAudit(face.audit, "soap-preg"))


def _send(start_response: Callable[..., Any], body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
