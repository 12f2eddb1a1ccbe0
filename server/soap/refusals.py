"""The audit record of a SOAP request that no face recorded: refused by the guard, by spyne, or failed.

A face (server/soap/preg/face.py, server/soap/ar/) writes one audit record per call it handles and marks
the request (:func:`mark_audited`). Requests refused before a face sees them — size, DTD, charset, SOAP
version, an empty or broken envelope, an unknown operation (spyne's own fault), an exception escaping
spyne — pass through :class:`~server.soap.middleware.SoapGuard`'s one refusal seam, which calls a
:class:`RefusalAudit`: it writes the record unless the face already did, so every refusal is recorded
exactly once, whichever check made it.

The record holds what the trail holds for any call and nothing of the body: the attempted account (the
HTTP Basic username, else the WS-Security ``Username`` as the body names it; never a password; a name
outside the username rules is kept as ``#`` + a hash), the operation (the ``SOAPAction`` or SOAP 1.2
``action``, else the first element in the Body), the outcome (the fault code and, for the guard's own
refusals, its fixed reason) and the client's address (trusted proxies applied). The body is searched
with two bounded byte patterns only; it is never parsed here (it may be the DTD that was refused).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from server.access import AuditRecord, AuditWriter, basic_username, client_address
from server.access.throttle import account_part

__all__ = ["AUDITED_KEY", "BODY_KEY", "RefusalAudit", "mark_audited", "operation_of"]

AUDITED_KEY: Final = "pregbridge.audited"
BODY_KEY: Final = "pregbridge.body"
_SCAN: Final = 64 * 1024  # bytes of the body searched for a username or an operation
_USERNAME = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,40}:)?Username(?:\s[^<>]{0,400})?>([^<]{1,200})</")
_BODY_CHILD = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,40}:)?Body(?:\s[^<>]{0,400})?>\s*(?:<!--.{0,400}?-->\s*)?"
                         rb"<(?:[A-Za-z_][\w.-]{0,40}:)?([A-Za-z_][\w.-]{0,79})", re.S)


def mark_audited(environ: MutableMapping[str, Any]) -> None:
    """Say that the request's audit record is written (a face calls this when it writes one)."""
    environ[AUDITED_KEY] = True


def operation_of(environ: Mapping[str, Any], body: bytes | None = None) -> str:
    """The operation a request named: ``SOAPAction`` or the SOAP 1.2 ``action`` parameter (its last path
    segment), else the first element of the Body, else ``?``."""
    action = str(environ.get("HTTP_SOAPACTION") or "")
    if not action:
        for param in str(environ.get("CONTENT_TYPE") or "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key.lower() == "action":
                action = value
    name = action.strip().strip('"').rstrip("/").rpartition("/")[2].rpartition("#")[2][:80]
    if not name and body:
        m = _BODY_CHILD.search(body, 0, _SCAN)
        name = m[1].decode("ascii", "replace") if m else ""
    return name or "?"


def _attempted_account(environ: Mapping[str, Any], body: bytes | None) -> str | None:
    name = basic_username(environ.get("HTTP_AUTHORIZATION"))
    if name is None and body:
        m = _USERNAME.search(body, 0, _SCAN)
        name = m[1].decode("utf-8", "replace").strip() if m else None
    return account_part(name) if name else None


class RefusalAudit:
    """Writes the record of a refused or failed SOAP request for ``face`` (``soap-preg``, ``soap-ar``)."""

    def __init__(self, writer: AuditWriter, face: str) -> None:
        self.writer = writer
        self.face = face

    def __call__(self, environ: MutableMapping[str, Any], outcome: str) -> None:
        if environ.get(AUDITED_KEY):
            return
        mark_audited(environ)
        body = environ.get(BODY_KEY)
        body = body if isinstance(body, bytes) else None
        self.writer.write(AuditRecord.now(account=_attempted_account(environ, body), face=self.face,
                                          operation=operation_of(environ, body), outcome=outcome[:60],
                                          source=client_address(environ) or None))
