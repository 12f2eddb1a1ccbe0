"""Reading a WS-Security UsernameToken from SOAP header elements (OASIS WSS 1.0 UsernameToken profile).

Only reads: verification (PasswordText/PasswordDigest, Created freshness, nonce replay) is
:class:`server.access.Authenticator`'s. spyne's typed-header route breaks zeep's WSDL loading
, so the raw header elements are read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["UsernameToken", "find_username_token"]

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"


@dataclass(frozen=True, slots=True)
class UsernameToken:
    username: str
    password: str
    password_type: str | None
    nonce: str | None
    created: str | None


def find_username_token(headers: Iterable[Any] | None) -> UsernameToken | None:
    """The UsernameToken of a ``wsse:Security`` header among ``headers``, or None."""
    for header in headers or ():
        if getattr(header, "tag", None) != f"{{{WSSE}}}Security":
            continue
        token = header.find(f"{{{WSSE}}}UsernameToken")
        if token is None:
            continue
        password = token.find(f"{{{WSSE}}}Password")
        return UsernameToken(
            username=(token.findtext(f"{{{WSSE}}}Username") or "").strip(),
            password=((password.text or "") if password is not None else "").strip(),
            password_type=password.get("Type") if password is not None else None,
            nonce=(token.findtext(f"{{{WSSE}}}Nonce") or "").strip() or None,
            created=(token.findtext(f"{{{WSU}}}Created") or "").strip() or None,
        )
    return None
