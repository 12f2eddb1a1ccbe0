"""The PREG operations: authenticate, authorise, validate, call the store, mask, encode, audit.

Transport-thin by design: spyne (service.py) hands each call here as the request element plus the
WSGI environ and SOAP headers; this class answers with the response element or raises a
:class:`~store.errors.PregbridgeError` whose ``soap_fault_code`` becomes the fault. Every call, answered
or refused, writes one audit record (who, when, operation, numbers asked and returned, purpose, outcome).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree
from sqlalchemy import Connection, Engine

from adapters.preg import Preg
from server.access import (
    AccessProfile,
    Account,
    AuditRecord,
    AuditWriter,
    Authenticator,
    apply_profile,
    authorize,
    basic_username,
    client_address,
    resolve_profile,
    search_scope,
)
from server.access.throttle import account_part
from server.metrics import current_request_id
from server.soap.preg.contract import PregContract
from server.soap.refusals import mark_audited
from server.soap.wssecurity import find_username_token
from store import identity
from store.changes import changes_since
from store.engine import Reader, write_transaction
from store.errors import InvalidIdentifierError, InvalidInput, NotFound, PregbridgeError, TooManyHits
from store.hjelpenummer import allocate, link
from store.repository import Lookup, PersonRepository
from store.search import check, search
from store.source import PersonSource

__all__ = ["OPERATIONS", "PregFace"]

log = logging.getLogger("server.soap.preg")

OPERATIONS = ("ping", "getPerson", "getPersons", "getAdresses", "searchPerson", "getPersonHistory",
              "requestHjelpenummer", "getHjelpenummer", "linkHjelpenummer", "getChanges")
DEFAULT_MAX_HITS = 50
MAX_MAX_HITS = 200
DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass
class _Call:
    """What one call asked and returned, for its audit record."""

    asked: list[str]
    returned: list[str]


def _valid_number(number: str) -> identity.IdentityNumber:
    try:
        return identity.parse(number)
    except identity.InvalidIdentifier as exc:
        raise InvalidIdentifierError(f"invalid personnummer: {exc}", reason=exc.reason.value) from None


class PregFace:
    def __init__(self, engine: Engine, contract: PregContract, authenticator: Authenticator,
                 profiles: dict[str, AccessProfile], audit: AuditWriter, *,
                 source: PersonSource | None = None) -> None:
        self.engine = engine
        self.source = source  # read-through mode: where persons the store lacks come from (store/source.py)
        self.reader = Reader(engine)
        self.contract = contract
        self.preg = Preg(contract.namespace)
        self.authenticator = authenticator
        self.profiles = profiles
        self.audit = audit
        self._ops: dict[str, Callable[[etree._Element, AccessProfile, _Call], etree._Element]] = {
            op: getattr(self, f"_op_{op}") for op in OPERATIONS
        }

    # -- the one entry point ----------------------------------------------------------------------

    def call(self, operation: str, body: etree._Element | None, environ: dict[str, Any],
             headers: Iterable[Any] | None) -> etree._Element:
        source = client_address(environ)
        purpose = self._purpose(headers)
        account: Account | None = None
        record = _Call([], [])
        outcome = "ok"
        try:
            account = self._authenticate(environ, headers, source)
            profile = resolve_profile(account.profile, self.profiles)
            authorize(profile, operation)
            if body is None or not self.contract.schema.validate(body):
                error = self.contract.schema.error_log.last_error
                raise InvalidInput(f"the request does not follow the contract: {error.message if error else ''}"
                                   .strip())
            return self._ops[operation](body, profile, record)
        except PregbridgeError as exc:
            outcome = exc.soap_fault_code
            raise
        except Exception:
            outcome = "Server"
            raise
        finally:
            mark_audited(environ)
            name = account.username if account else self._attempted(environ, headers)
            self.audit.write(AuditRecord.now(account=name, face="soap-preg", operation=operation, outcome=outcome,
                                             source=source or None, purpose=purpose, asked=record.asked,
                                             returned=record.returned))

    def _authenticate(self, environ: dict[str, Any], headers: Iterable[Any] | None, source: str) -> Account:
        token = find_username_token(headers)
        if token is not None:
            return self.authenticator.username_token(token.username, token.password, token.password_type,
                                                     token.nonce, token.created, source)
        return self.authenticator.basic(environ.get("HTTP_AUTHORIZATION"), source)

    @staticmethod
    def _attempted(environ: dict[str, Any], headers: Iterable[Any] | None) -> str | None:
        """The account name a refused call tried (never its password), as the throttle keys it."""
        token = find_username_token(headers)
        name = token.username if token is not None else basic_username(environ.get("HTTP_AUTHORIZATION"))
        return account_part(name) if name else None

    def _purpose(self, headers: Iterable[Any] | None) -> str | None:
        for h in headers or ():
            if getattr(h, "tag", None) == f"{{{self.contract.namespace}}}formaal":
                return (h.text or "").strip()[:200] or None
        return None

    # -- helpers ----------------------------------------------------------------------------------

    def _find(self, number: str, call: _Call, *, felles_hjelpenummer: bool = False) -> Lookup:
        call.asked.append(number)  # first: a refused number is audited too
        if _valid_number(number).kind != identity.IdKind.FH and felles_hjelpenummer:
            raise InvalidIdentifierError("not a felles hjelpenummer", reason="unknownKind")
        if self.source is not None:  # read-through: fetch it first if the store lacks it (SourceUnavailable)
            self.source.ensure_numbers([number], request_id=current_request_id())
        with self.reader.connection() as conn:
            found = PersonRepository(conn).find(number)
        if found is None:
            raise NotFound("no person with that number")
        if found.current is not None:
            call.returned.append(found.current.number)
        return found

    def _writing(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction holding SQLite's write lock from its start (store.hjelpenummer takes the same
        lock on PostgreSQL): a deferred one would fail, not wait, when another writer commits first."""
        return write_transaction(self.engine)

    def _response(self, op: str) -> etree._Element:
        return self.preg.element(f"{op}Response")

    # -- operations -------------------------------------------------------------------------------

    def _op_ping(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        r = self._response("ping")
        self.preg.sub(r, "status", "OK")
        self.preg.sub(r, "tidspunkt", dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
        return r

    def _op_getPerson(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        number = self.preg.child_text(body, "personnummer") or ""
        found = self._find(number, call)
        r = self._response("getPerson")
        self.preg.sub(r, "oppslagsnummer", number)
        is_current = found.current is not None and found.current.number == number
        self.preg.sub(r, "erGjeldendeNummer", "true" if is_current else "false")
        self.preg.person(r, apply_profile(found.person, profile))
        return r

    def _op_getPersons(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        numbers = list(self.preg.numbers(body))
        call.asked.extend(numbers)
        valid: list[str] = []
        reasons: dict[str, str] = {}
        for n in numbers:
            try:
                _valid_number(n)
                valid.append(n)
            except InvalidIdentifierError as exc:
                reasons[n] = exc.reason
        if self.source is not None and valid:
            self.source.ensure_numbers(valid, request_id=current_request_id())
        with self.reader.connection() as conn:
            found = PersonRepository(conn).find_many(valid)
        r = self._response("getPersons")
        for n in numbers:
            item = self.preg.sub(r, "oppslag")
            self.preg.sub(item, "oppslagsnummer", n)
            if n in reasons:
                self.preg.sub(item, "status", "UGYLDIG")
                self.preg.sub(item, "melding", f"invalid personnummer ({reasons[n]})")
            elif n not in found:
                self.preg.sub(item, "status", "IKKE_FUNNET")
            else:
                self.preg.sub(item, "status", "FUNNET")
                lookup = found[n]
                if lookup.current is not None:
                    call.returned.append(lookup.current.number)
                self.preg.person(item, apply_profile(lookup.person, profile))
        return r

    def _op_getAdresses(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        found = self._find(self.preg.child_text(body, "personnummer") or "", call)
        view = apply_profile(found.person, profile)
        r = self._response("getAdresses")
        self.preg.sub(r, "personnummer", found.current.number if found.current else "")
        self.preg.sub(r, "spesregKode", self.preg.person_dsf_code(view))
        for a in view.addresses:
            if a.meta.current:
                self.preg.address(r, a, history=False)
        return r

    def _op_searchPerson(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        criteria, asked_max = self.preg.search_criteria(body)
        max_hits = DEFAULT_MAX_HITS if asked_max is None else min(asked_max, MAX_MAX_HITS)
        if max_hits < 1:
            raise InvalidInput("maksAntall must be at least 1")
        scope = search_scope(profile)
        if self.source is not None:  # read-through: the register's candidates into the store first
            check(criteria, scope)  # a refused search asks nothing
            try:
                self.source.ensure_search(criteria, request_id=current_request_id())
            except TooManyHits as exc:  # more than the register lists (upstream/readthrough_search.py)
                limit = min(max_hits, exc.limit)
                raise TooManyHits(f"more than {limit} hits; narrow the search", limit=limit) from None
        with self.reader.connection() as conn:
            try:
                hits = search(conn, criteria, limit=max_hits, scope=scope)
            except TooManyHits:
                raise TooManyHits(f"more than {max_hits} hits; narrow the search", limit=max_hits) from None
            persons = PersonRepository(conn).load([h.person_id for h in hits])
        r = self._response("searchPerson")
        self.preg.sub(r, "antallTreff", len(hits))
        for h in hits:
            person = persons[h.person_id]
            if person.current_identifier is not None:
                call.returned.append(person.current_identifier.number)
            hit = self.preg.sub(r, "treff")
            self.preg.sub(hit, "score", f"{h.score:.1f}")
            self.preg.person(hit, apply_profile(person, profile))
        return r

    def _op_getPersonHistory(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        found = self._find(self.preg.child_text(body, "personnummer") or "", call)
        r = self._response("getPersonHistory")
        self.preg.history(r, apply_profile(found.person, profile))
        return r

    def _op_requestHjelpenummer(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        request = self.preg.hjelpenummer_request(body)
        with self._writing() as conn:
            number, new = allocate(conn, request)
        call.returned.append(number)
        r = self._response("requestHjelpenummer")
        self.preg.sub(r, "hjelpenummer", number)
        self.preg.sub(r, "nyttNummer", "true" if new else "false")
        return r

    def _op_getHjelpenummer(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        number = self.preg.child_text(body, "hjelpenummer") or ""
        found = self._find(number, call, felles_hjelpenummer=True)
        r = self._response("getHjelpenummer")
        self.preg.sub(r, "hjelpenummer", number)
        self.preg.sub(r, "erAktivt", "true" if found.matched.status == "iBruk" else "false")
        self.preg.person(r, apply_profile(found.person, profile))
        return r

    def _op_linkHjelpenummer(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        fh = self.preg.child_text(body, "hjelpenummer") or ""
        number = self.preg.child_text(body, "personnummer") or ""
        call.asked.extend([fh, number])
        with self._writing() as conn:
            found = link(conn, fh, number)
        if found.current is not None:
            call.returned.append(found.current.number)
        r = self._response("linkHjelpenummer")
        self.preg.person(r, apply_profile(found.person, profile))
        return r

    def _op_getChanges(self, body: etree._Element, profile: AccessProfile, call: _Call) -> etree._Element:
        after = int(self.preg.child_text(body, "fraSekvensnummer") or "0")
        page = int(self.preg.child_text(body, "sideStorrelse") or DEFAULT_PAGE)
        if not 1 <= page <= MAX_PAGE:
            raise InvalidInput(f"sideStorrelse must be 1–{MAX_PAGE}")
        numbers = [n for n in self.preg.numbers(body) if identity.is_valid(n)]
        call.asked.extend(numbers)
        with self.reader.connection() as conn:
            found = PersonRepository(conn).find_many(numbers)
            by_key: dict[str, tuple[str, Lookup]] = {}
            for n, lookup in found.items():
                by_key.setdefault(lookup.person.person_key, (n, lookup))
            changes, more = changes_since(conn, after, list(by_key), page)
        r = self._response("getChanges")
        for c in changes:
            asked, lookup = by_key[c.person_key]
            current = lookup.current.number if lookup.current else asked
            call.returned.append(current)
            e = self.preg.sub(r, "endring")
            self.preg.sub(e, "sekvensnummer", c.seq)
            self.preg.sub(e, "hendelsestype", c.event_type)
            self.preg.sub(e, "personnummer", asked)
            self.preg.sub(e, "gjeldendePersonnummer", current)
            reg = self.preg.sub(e, "registrert")
            if c.registered_at is None:
                reg.set("{http://www.w3.org/2001/XMLSchema-instance}nil", "true")
            else:
                reg.text = c.registered_at.isoformat(timespec="seconds") + "Z"
        self.preg.sub(r, "nesteSekvensnummer", changes[-1].seq if changes else after)
        self.preg.sub(r, "flereEndringer", "true" if more else "false")
        return r
