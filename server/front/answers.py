"""What the front answers when it refuses a request before any face sees it (pure: bytes in, bytes out).

A refusal at the HTTP level (a malformed request line or header, an over-long request line or header
block, headers or a body that did not arrive in time, a body over the limit) is answered in the form the
request indicates, as far as the bytes received so far tell:

* a request that names a SOAP media type in its ``Content-Type`` (``text/xml``, ``application/soap+xml``,
  or ``multipart/related`` with a SOAP root part) or carries a ``SOAPAction`` header gets a SOAP fault of
  that version, in exactly the shape the SOAP guard and spyne write (:mod:`server.soap.faults`), with HTTP
  500 as every fault (the reason is in that module's docstring): ``Client.InvalidRequest`` for a malformed
  or over-long head, ``Client.RequestTooLarge`` for a body over the limit (the SOAP guard's code for the
  same thing), ``Client.RequestTimeout`` for a request that did not arrive in time;
* anything else gets the HTTP status (400, 408, 413, 414, 431, 503) with a one-line ``text/plain`` body.

Never an HTML page, never a byte of the request echoed back. Every answer closes the connection.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Final

from server.soap.faults import SoapVersion, fault_response, media_type, soap_version

__all__ = ["Refusal", "answer", "busy_answer", "soap_version_of_head"]

_SOAP_MEDIA: Final = frozenset({"text/xml", "application/soap+xml", "multipart/related"})
_CONTENT_TYPE = re.compile(rb"\r?\ncontent-type[ \t]*:[ \t]*([^\r\n]{0,1000})", re.IGNORECASE)
_SOAP_ACTION = re.compile(rb"\r?\nsoapaction[ \t]*:", re.IGNORECASE)


class Refusal(Enum):
    """Why the front refused a request: (HTTP status, SOAP fault code, message)."""

    MALFORMED = ("400 Bad Request", "Client.InvalidRequest", "the HTTP request line or a header is malformed")
    LINE_TOO_LONG = ("414 URI Too Long", "Client.InvalidRequest", "the HTTP request line is too long")
    HEADERS_TOO_LARGE = ("431 Request Header Fields Too Large", "Client.InvalidRequest",
                         "the HTTP request headers are too large or too many")
    HEADER_TIMEOUT = ("408 Request Timeout", "Client.RequestTimeout", "the request headers did not arrive in time")
    BODY_TIMEOUT = ("408 Request Timeout", "Client.RequestTimeout", "the request body did not arrive in time")
    BODY_TOO_LARGE = ("413 Content Too Large", "Client.RequestTooLarge", "the request body is too large")
    UNSUPPORTED = ("501 Not Implemented", "Client.InvalidRequest",
                   "the request uses an HTTP feature this server does not implement")

    @property
    def status(self) -> str:
        return self.value[0]

    @property
    def fault_code(self) -> str:
        return self.value[1]

    @property
    def message(self) -> str:
        return self.value[2]


def soap_version_of_head(head: bytes) -> SoapVersion | None:
    """"1.1" or "1.2" when the request head received so far says it is SOAP, else None.

    ``head`` is the raw request line and headers (possibly cut short). The last ``Content-Type`` seen
    counts; a multipart one is SOAP 1.2 when its root part is (:func:`server.soap.faults.soap_version`).
    """
    types = _CONTENT_TYPE.findall(head)
    if types:
        value = types[-1].decode("latin-1").strip()
        if media_type(value) in _SOAP_MEDIA:
            return soap_version(value)
    if _SOAP_ACTION.search(head):
        return "1.1"
    return None


def _encode(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def answer(refusal: Refusal, head: bytes) -> bytes:
    """The whole HTTP response (status line, headers, body) refusing a request whose head began ``head``."""
    version = soap_version_of_head(head)
    if version is not None:
        status, headers, body = fault_response(version, refusal.fault_code, refusal.message)
        return _encode(status, headers, body)
    body = (refusal.message + "\n").encode("ascii")
    return _encode(refusal.status, [("Content-Type", "text/plain; charset=utf-8"),
                                    ("Content-Length", str(len(body)))], body)


def busy_answer(message: str) -> bytes:
    """A ``503`` with ``Retry-After: 1``, sent before a request is read (a connection over a cap)."""
    body = (message + "\n").encode("ascii")
    return _encode("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body))), ("Retry-After", "1")], body)
