"""The HPR operations: validate, query the store (store/hpr.py), encode (adapters/hpr.py); audited as ``soap-hpr``.

Built on the shared Grunndata seam (server/soap/wcf/face.py: authorisation, schema validation, one audit record
per call). Each call records the HPR numbers (and the fødselsnummer, when one is asked for or returned)
in its audit record, so a lookup by a person's number shows in that person's audit trail.

``påTidspunkt`` is honoured: a record is cut to what was valid on that day (store.hpr.at); without it, to
today (HPR v2's ``HentPerson`` answers the register as it stands; ``HentPersonMedHistorikk`` answers the
whole record). The read operations an EPJ uses are answered (:data:`READ_OPERATIONS`); the maintenance
operations and the administrative reads answer GenericFault ``OperationNotSupported`` (docs/hpr.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from lxml import etree
from sqlalchemy import Engine

from adapters.hpr import HPR, HprEncoder, request_datetime, search_query
from adapters.wcf import child_text, values
from server.access import AccessProfile, AuditWriter
from server.soap.hpr.errors import ApprovalNotFound, HprNumberMissing, HprNumberNotFound, PersonNumberNotFound
from server.soap.wcf.contract import WcfContract
from server.soap.wcf.errors import InvalidRequest
from server.soap.wcf.face import Call, WcfFace
from store import hpr
from store.engine import deadline, read_connection

__all__ = ["MAX_NUMBERS", "READ_OPERATIONS", "HprFace"]

READ_OPERATIONS: Final = ("HentPerson", "HentPersonMedPersonnummer", "HentPersonMedHistorikk", "HentPersoner", "Søk",
                          "Søk2", "HentGodkjenning", "HentEndringerForPerson", "HentRegisterEndringer", "Ping")
MAX_NUMBERS: Final = 1000  # HentPersoner
DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
_OP_NAMES: Final = {"Søk": "Sok", "Søk2": "Sok2"}  # method names


class HprFace(WcfFace):
    audit_face = "soap-hpr"

    def __init__(self, engine: Engine, contract: WcfContract, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(engine, contract, profiles, audit, clock=clock)
        for op in READ_OPERATIONS:
            self.handlers[op] = getattr(self, "_op_" + _OP_NAMES.get(op, op))

    def not_offered(self, operation: str) -> str:
        return (f"{operation}: pregbridge offers HPR for reading; this operation is not offered "
                "(docs/hpr.md lists the operations offered)")

    # -- helpers ----------------------------------------------------------------------------------

    def _when(self, body: etree._Element) -> dt.datetime:
        asked = request_datetime(body, "påTidspunkt")
        return asked if asked is not None else self.clock().astimezone(dt.UTC).replace(tzinfo=None)

    @staticmethod
    def _hpr_number(body: etree._Element, call: Call) -> int:
        text = child_text(body, HPR, "hprNummer")
        number = int(text) if text else 0
        if number <= 0:
            raise HprNumberMissing()
        call.asked.append(str(number))
        return number

    @staticmethod
    def _returned(call: Call, doc: Mapping[str, Any]) -> None:
        call.returned.append(str(doc["hprNumber"]))
        if doc.get("nin"):
            call.returned.append(str(doc["nin"]))

    def _person(self, number: int) -> dict[str, Any]:
        with read_connection(self.engine) as conn, deadline(conn):
            doc = hpr.get(conn, number)
        if doc is None:
            raise HprNumberNotFound()
        return doc

    # -- operations -------------------------------------------------------------------------------

    def _op_Ping(self, body: etree._Element, call: Call) -> etree._Element:
        return HprEncoder.text("Ping", child_text(body, HPR, "requestId") or "Pong")

    def _op_HentPerson(self, body: etree._Element, call: Call) -> etree._Element:
        doc = self._person(self._hpr_number(body, call))
        self._returned(call, doc)
        return HprEncoder.person("HentPerson", hpr.at(doc, self._when(body)))

    def _op_HentPersonMedHistorikk(self, body: etree._Element, call: Call) -> etree._Element:
        doc = self._person(self._hpr_number(body, call))
        self._returned(call, doc)
        return HprEncoder.person("HentPersonMedHistorikk", doc)

    def _op_HentPersonMedPersonnummer(self, body: etree._Element, call: Call) -> etree._Element:
        number = child_text(body, HPR, "personNummer") or ""
        call.asked.append(number[:11])
        doc = None
        if len(number) == 11 and number.isascii() and number.isdigit():
            with read_connection(self.engine) as conn, deadline(conn):
                doc = hpr.by_nin(conn, number)
        if doc is None:
            raise PersonNumberNotFound()
        self._returned(call, doc)
        return HprEncoder.person("HentPersonMedPersonnummer", hpr.at(doc, self._when(body)))

    def _op_HentPersoner(self, body: etree._Element, call: Call) -> etree._Element:
        numbers = [int(n) for n in values(body, HPR, "hprNummer", "int") if n]
        if len(numbers) > MAX_NUMBERS:
            raise InvalidRequest(f"at most {MAX_NUMBERS} HPR numbers per call")
        call.asked.extend(str(n) for n in numbers)
        with read_connection(self.engine) as conn, deadline(conn):
            found = hpr.get_many(conn, numbers)
        when = self._when(body)
        docs = [found[n] for n in dict.fromkeys(numbers) if n in found]
        for doc in docs:
            self._returned(call, doc)
        return HprEncoder.persons("HentPersoner", (hpr.at(d, when) for d in docs))

    def _search(self, body: etree._Element, call: Call, paged: bool) -> tuple[hpr.HprQuery, bool, int, list[Any]]:
        query, basic, unsupported = search_query(body)
        if unsupported:
            raise InvalidRequest(f"search parameter(s) not answered by pregbridge: {', '.join(unsupported)} "
                                 "(docs/hpr.md lists the ones answered)")
        indexed = (query.hpr_number, query.nin, query.given, query.family, query.name, query.birth_date,
                   query.changed_from, query.changed_to)
        if not paged and all(v is None for v in indexed) and not query.categories:
            raise InvalidRequest("Søk needs at least one search parameter besides Kjønn and the paging ones "
                                 "(Søk2 pages through the whole register)")
        size = query.page_size if query.page_size > 0 else DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE:
            raise InvalidRequest(f"ResultaterPerSide is at most {MAX_PAGE_SIZE}")
        query = replace(query, page=max(query.page, 1), page_size=size)
        if query.nin:
            call.asked.append(query.nin[:11])
        if query.hpr_number:
            call.asked.append(str(query.hpr_number))
        with read_connection(self.engine) as conn, deadline(conn):
            total, docs = hpr.search(conn, query)
        now = self.clock().astimezone(dt.UTC).replace(tzinfo=None)
        docs = [hpr.at(d, now) for d in docs]
        for doc in docs:
            self._returned(call, doc)
        return query, basic, total, docs

    def _op_Sok(self, body: etree._Element, call: Call) -> etree._Element:
        _, basic, _, docs = self._search(body, call, paged=False)
        return HprEncoder.persons("Søk", docs, basic=basic)

    def _op_Sok2(self, body: etree._Element, call: Call) -> etree._Element:
        query, basic, total, docs = self._search(body, call, paged=True)
        return HprEncoder.page("Søk2", docs, query.page, query.page_size, total, basic=basic)

    def _op_HentGodkjenning(self, body: etree._Element, call: Call) -> etree._Element:
        text = child_text(body, HPR, "godkjenningId")
        approval_id = int(text) if text else 0
        call.asked.append(f"godkjenning:{approval_id}")
        with read_connection(self.engine) as conn, deadline(conn):
            found = hpr.approval(conn, approval_id) if approval_id > 0 else None
        if found is None:
            raise ApprovalNotFound()
        doc, approval = found
        self._returned(call, doc)
        when = self._when(body).date()
        cut = dict(approval,
                   specialities=[x for x in approval.get("specialities") or () if hpr.holds(x.get("valid"), when)],
                   requisitionRights=[x for x in approval.get("requisitionRights") or ()
                                      if hpr.holds(x.get("valid"), when)],
                   suspensions=[x for x in approval.get("suspensions") or () if hpr.holds(x.get("period"), when)])
        return HprEncoder.approval("HentGodkjenning", cut)

    def _op_HentEndringerForPerson(self, body: etree._Element, call: Call) -> etree._Element:
        doc = self._person(self._hpr_number(body, call))
        since = request_datetime(body, "fra") or dt.datetime.min
        updated = doc.get("lastUpdated")
        entries = []
        if updated and hpr_time(updated) >= since:
            entries.append((int(doc["hprNumber"]), int(doc["hprNumber"]), str(updated)))
        call.returned.append(str(doc["hprNumber"]))
        return HprEncoder.changes("HentEndringerForPerson", entries)

    def _op_HentRegisterEndringer(self, body: etree._Element, call: Call) -> etree._Element:
        since = request_datetime(body, "fra") or dt.datetime.min
        until = request_datetime(body, "til") or dt.datetime.max
        page = int(child_text(body, HPR, "side") or 0) or 1
        size = int(child_text(body, HPR, "resultaterPerSide") or 0) or DEFAULT_PAGE_SIZE
        if size > MAX_PAGE_SIZE or page < 1 or size < 1:
            raise InvalidRequest(f"side must be 1 or more and resultaterPerSide 1 to {MAX_PAGE_SIZE}")
        with read_connection(self.engine) as conn, deadline(conn):
            total, docs = hpr.changed(conn, since, until, page, size)
        now = self.clock().astimezone(dt.UTC).replace(tzinfo=None)
        for doc in docs:
            self._returned(call, doc)
        return HprEncoder.page("HentRegisterEndringer", [hpr.at(d, now) for d in docs], page, size, total)


def hpr_time(value: object) -> dt.datetime:
    """A stored ``lastUpdated`` (``YYYY-MM-DDTHH:MM:SSZ``) as a naive UTC date-time."""
    t = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t
