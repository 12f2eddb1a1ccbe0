"""The operation seam every Grunndata face shares: authorise, validate, dispatch, audit.

A face subclasses :class:`WcfFace`, sets :attr:`WcfFace.audit_face` (``soap-ar``, ``soap-flr``, …) and
registers one handler per operation it answers in :attr:`WcfFace.handlers`; the handler gets the request
element (already validated against the contract's schemas) and a :class:`Call` (with the caller's access
profile, for masking) in which it records the
numbers asked for and returned (the audit trail indexes them: a patient's fødselsnummer asked for or
returned makes the call a person lookup of that person). An operation of the contract without a handler
answers GenericFault ``OperationNotSupported`` with :meth:`WcfFace.not_offered`'s text.

Every call, answered or refused, writes one audit record: the account, the operation, ``asked`` and
``returned``, and the outcome (``ok`` or the GenericFault ErrorCode). Authorisation is
:meth:`WcfFace.authorize` (by default the access profile must allow the operation by name; a face may
also accept the register's roles, see server/soap/flr/face.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from lxml import etree
from sqlalchemy import Engine

from server.access import (
    AccessProfile,
    Account,
    AuditRecord,
    AuditWriter,
    authorize,
    basic_username,
    client_address,
    resolve_profile,
)
from server.access.throttle import account_part
from server.soap.refusals import mark_audited
from server.soap.wcf.contract import WcfContract
from server.soap.wcf.errors import InvalidRequest, OperationNotSupported, generic_fault_for

__all__ = ["ACCOUNT_KEY", "Call", "Handler", "WcfFace"]

ACCOUNT_KEY: Final = "pregbridge.account"


@dataclass
class Call:
    """What one call asked for and returned, for its audit record."""

    asked: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)
    profile: AccessProfile | None = None  # the caller's access profile, set before the handler runs


Handler = Callable[[etree._Element, Call], etree._Element]


class WcfFace:
    audit_face: ClassVar[str] = "soap-wcf"

    def __init__(self, engine: Engine, contract: WcfContract, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.engine = engine
        self.contract = contract
        self.profiles = profiles
        self.audit = audit
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.handlers: dict[str, Handler] = {}

    # -- hooks ------------------------------------------------------------------------------------

    def authorize(self, profile: AccessProfile, operation: str) -> None:
        """Raise ``AuthorizationFailed`` unless ``profile`` may call ``operation``."""
        authorize(profile, operation)

    def not_offered(self, operation: str) -> str:
        """The GenericFault message of an operation of the contract the face does not answer."""
        return f"{operation} is not offered by pregbridge"

    # -- the one entry point ----------------------------------------------------------------------

    def call(self, operation: str, body: etree._Element | None, environ: Mapping[str, Any]) -> etree._Element:
        account: Account | None = environ.get(ACCOUNT_KEY)
        record = Call()
        outcome = "ok"
        try:
            if account is None:  # the app authenticates before SOAP; never answer without an account
                raise InvalidRequest("no authenticated account")
            record.profile = resolve_profile(account.profile, self.profiles)
            self.authorize(record.profile, operation)
            handler = self.handlers.get(operation)
            if handler is None:
                raise OperationNotSupported(self.not_offered(operation))
            if body is None or not self.contract.schema.validate(body):
                error = self.contract.schema.error_log.last_error
                raise InvalidRequest(f"the request does not follow the contract: {error.message if error else ''}"
                                     .strip())
            return handler(body, record)
        except Exception as exc:
            outcome = generic_fault_for(exc)[1]
            raise
        finally:
            if isinstance(environ, MutableMapping):  # the guard's refusal audit then writes no second record
                mark_audited(environ)
            self.audit.write(AuditRecord.now(account=account.username if account else None, face=self.audit_face,
                                             operation=operation, outcome=outcome,
                                             source=client_address(environ) or None, purpose=None,
                                             asked=record.asked, returned=record.returned))

    def audit_refusal(self, environ: Mapping[str, Any], operation: str, outcome: str) -> None:
        """Record a call refused before SOAP (no or wrong credentials), with the account name it tried."""
        name = basic_username(environ.get("HTTP_AUTHORIZATION"))
        self.audit.write(AuditRecord.now(account=account_part(name) if name else None, face=self.audit_face,
                                         operation=operation[:80] or "?", outcome=outcome,
                                         source=client_address(environ) or None, purpose=None, asked=[], returned=[]))
