"""Faults of the Grunndata (WCF) faces: each a :class:`~store.errors.PregbridgeError` leaf carrying its
GenericFault code.

    PregbridgeError
    └── WcfFault                         GenericFault on the wire (SOAP Client/Sender unless noted)
        ├── InvalidRequest               ErrorCode InvalidRequest (schema-invalid body, bad search)
        ├── OperationNotSupported        ErrorCode OperationNotSupported (writes; operations not offered)
        └── (each face's own leaves: server/soap/ar/errors.py, server/soap/flr/errors.py, …)

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

__all__ = ["InvalidRequest", "OperationNotSupported", "WcfFault", "generic_fault_for"]


class WcfFault(PregbridgeError):
    soap_fault_code = "Client"
    error_code = "InternalError"


class InvalidRequest(WcfFault):
    error_code = "InvalidRequest"


class OperationNotSupported(WcfFault):
    error_code = "OperationNotSupported"


_UNAVAILABLE = (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError, StoreUnavailable)


def generic_fault_for(exc: BaseException) -> tuple[str, str, str]:
    """``(SOAP fault code, GenericFault.ErrorCode, message)`` for an exception that reached a face."""
    if isinstance(exc, WcfFault):
        return exc.soap_fault_code, exc.error_code, str(exc)
    if isinstance(exc, (AuthorizationFailed, AuthenticationFailed)):
        return "Client", "AccessDenied", str(exc)
    if isinstance(exc, InvalidInput):
        return "Client", "InvalidRequest", str(exc)
    if isinstance(exc, _UNAVAILABLE):
        return "Server", "ServiceUnavailable", "the register is temporarily unavailable"
    return "Server", "InternalError", "internal error"
