"""The access layer's exceptions, leaves of :class:`store.errors.PregbridgeError`.

    PregbridgeError
    ├── AuthenticationFailed      wire: Client.Authentication / AR / 207
    │   └── Throttled             wire: Client.Authentication / AR / 207 (with ``retry_after`` seconds)
    └── AuthorizationFailed       wire: Client.Authorization / AR / 207

Why AR and 207 on HL7: HL7 v2 table 0357 (message error condition codes: 0, 100–104, 200–207) has no
code for security failures. An unauthenticated or unauthorised message is refused before any of its
content is processed, which is an *application reject* (MSA-1 ``AR``; ``CR`` in enhanced mode), not an
error in the content (``AE``). ERR-3 then carries the nearest code, ``207`` (application internal
error), and ERR-8 the message text below; sites that want a specific code can send table 0533
(user-defined) in ERR-5. The SOAP faces use the fault codes.

Messages are written for the caller and are deliberately uninformative: an authentication failure
never says whether the account exists, is disabled, or which part of the credentials was wrong, and
:class:`Throttled` says only to try later. Nothing here ever carries patient data.
"""

from __future__ import annotations

from store.errors import PregbridgeError

__all__ = ["AuthenticationFailed", "AuthorizationFailed", "Throttled"]

INVALID_CREDENTIALS = "invalid username or password"


class AuthenticationFailed(PregbridgeError):
    """The caller could not be authenticated (any reason: unknown account, wrong password, disabled, replay)."""

    soap_fault_code = "Client.Authentication"
    hl7_ack_code = "AR"
    hl7_error_code = "207"  # table 0357 has no security code; see the module docstring

    def __init__(self, message: str = INVALID_CREDENTIALS) -> None:
        super().__init__(message)


class Throttled(AuthenticationFailed):
    """A login delay runs for this attempt's (address, account), account or address (server/access/throttle.py);
    refused without checking the password, and not counted. ``retry_after``: seconds until it ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed attempts; try again later")
        self.retry_after = max(1, int(retry_after))


class AuthorizationFailed(PregbridgeError):
    """The authenticated account's access profile does not allow the operation."""

    soap_fault_code = "Client.Authorization"
    hl7_ack_code = "AR"
    hl7_error_code = "207"
