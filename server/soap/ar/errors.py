"""The AR face's faults: each a :class:`~store.errors.PregbridgeError` leaf carrying its GenericFault code.

    PregbridgeError
    └── ArFault                          GenericFault on the wire (SOAP Client/Sender unless noted)
        ├── InvalidHerId                 ErrorCode InvalidHerIdSupplied (the real AR's code and text)
        ├── InvalidOrganizationNumber    ErrorCode InvalidOrganizationNumberSupplied
        ├── InvalidRequest               ErrorCode InvalidRequest (schema-invalid body, bad search)
        └── OperationNotSupported        ErrorCode OperationNotSupported (writes; reads not offered)

Exceptions from elsewhere become a GenericFault at one seam (:func:`generic_fault_for`):
``AuthorizationFailed`` → ``AccessDenied``; ``InvalidInput`` → ``InvalidRequest``; ``StoreUnavailable`` and
SQLAlchemy's connection errors → ``ServiceUnavailable`` (Server/Receiver); anything else →
``InternalError`` (Server/Receiver) with a fixed message, never the exception's text. Messages never carry
person data. (Authentication never reaches a fault: it is refused with HTTP 401 before the SOAP layer,
as WCF's transport-level Basic authentication does.)
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from server.access import AuthenticationFailed, AuthorizationFailed
from store.errors import InvalidInput, PregbridgeError, StoreUnavailable

__all__ = [
    "ArFault",
    "InvalidHerId",
    "InvalidOrganizationNumber",
    "InvalidRequest",
    "OperationNotSupported",
    "generic_fault_for",
]


class ArFault(PregbridgeError):
    soap_fault_code = "Client"
    error_code = "InternalError"


class InvalidHerId(ArFault):
    error_code = "InvalidHerIdSupplied"

    def __init__(self) -> None:
        super().__init__("Kommunikasjonspart med oppgitt HER-id eksisterer ikke.")


class InvalidOrganizationNumber(ArFault):
    error_code = "InvalidOrganizationNumberSupplied"

    def __init__(self) -> None:
        super().__init__("Virksomhet med oppgitt organisasjonsnummer eksisterer ikke.")


class InvalidRequest(ArFault):
    error_code = "InvalidRequest"


class OperationNotSupported(ArFault):
    error_code = "OperationNotSupported"


_UNAVAILABLE = (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError, StoreUnavailable)


def generic_fault_for(exc: BaseException) -> tuple[str, str, str]:
    """``(SOAP fault code, GenericFault.ErrorCode, message)`` for an exception that reached the face."""
    if isinstance(exc, ArFault):
        return exc.soap_fault_code, exc.error_code, str(exc)
    if isinstance(exc, AuthorizationFailed):
        return "Client", "AccessDenied", str(exc)
    if isinstance(exc, AuthenticationFailed):
        return "Client", "AccessDenied", str(exc)
    if isinstance(exc, InvalidInput):
        return "Client", "InvalidRequest", str(exc)
    if isinstance(exc, _UNAVAILABLE):
        return "Server", "ServiceUnavailable", "the register is temporarily unavailable"
    return "Server", "InternalError", "internal error"
