"""The FLR operations: validate, query the store (store/flr.py, store/ar.py), encode (adapters/flr.py), audit.

Transport-thin, on the shared Grunndata seam (server/soap/wcf/face.py: authorisation, schema validation,
one audit record per call with face ``soap-flr``). A patient's number asked for goes into the record's
``asked`` and every patient number answered into ``returned``, so an FLR lookup is a person lookup in the
audit trail (``pregbridge audit --person``).

Operations answered (:data:`OPERATIONS`): the read operations of IFlrReadOperations an EPJ uses. The
NAV-only operation (GetGPContractForNav) and the streamed exports (NavGetEncryptedPatientList,
NavGetEncryptedPatientListAlternate, GetNavPatientLists) answer GenericFault ``OperationNotSupported``.

"Now" is the Norwegian date (Europe/Oslo). A patient is found by any number they have had: a number not on
any list is resolved through the person store to the person's other numbers (a ceased D-nummer or
fødselsnummer finds the list the patient is on under their current one, and the other way round).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from zoneinfo import ZoneInfo

from lxml import etree
from sqlalchemy import Connection, Engine

from adapters.flr import FLR, FlrEncoder, Memo, Related
from adapters.wcf import child_text, values
from server.access import AccessProfile, AuditWriter, apply_profile
from server.soap.flr.errors import ContractNotFound, FlrArgumentError, InvalidPatientNin, NoGP
from server.soap.wcf.contract import WcfContract
from server.soap.wcf.errors import InvalidRequest
from server.soap.wcf.face import Call, WcfFace
from store import ar
from store import flr as store
from store.engine import deadline, read_connection
from store.identity import IdKind, InvalidIdentifier, parse
from store.normalize import name_tokens
from store.repository import PersonRepository

__all__ = ["NOT_OFFERED", "OPERATIONS", "FlrFace"]

OPERATIONS: Final = (
    "GetPatientGPDetails", "GetPatientsGPDetails", "GetPatientsGPDetailsAtTime", "GetPatientGPHistory",
    "GetGPContract", "GetGPContractsOnOffice", "GetGPPatientList", "GetGPWithAssociatedGPContracts", "ConfirmGP",
    "GetGPContractIdsOperatingInPostalCode", "SearchForGP", "QueryGPContracts", "GetPrimaryHealthCareTeam",
)
NOT_OFFERED: Final = ("GetGPContractForNav", "NavGetEncryptedPatientList", "NavGetEncryptedPatientListAlternate",
                      "GetNavPatientLists")
MAX_PATIENTS: Final = 1000  # numbers per GetPatientsGPDetails / …AtTime call
MAX_PAGE: Final = 100_000
MAX_PAGE_SIZE: Final = 1000
OSLO: Final = ZoneInfo("Europe/Oslo")
_NIN_KINDS: Final = (IdKind.FNR, IdKind.DNR)


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1")


def _int(text: str | None) -> int:
    return int(text) if text else 0


class FlrFace(WcfFace):
    audit_face = "soap-flr"

    def __init__(self, engine: Engine, contract: WcfContract, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(engine, contract, profiles, audit, clock=clock)
        self.memo: Memo | None = Memo()
        for op in OPERATIONS:
            self.handlers[op] = getattr(self, "_op_" + op)

    def not_offered(self, operation: str) -> str:
        if operation in NOT_OFFERED:
            return (f"{operation}: NAV-only and streamed export operations are not offered by pregbridge "
                    "(docs/flr.md)")
        return f"{operation} is not offered by pregbridge (docs/flr.md lists the operations offered)"

    # -- helpers ----------------------------------------------------------------------------------

    def _today(self) -> dt.date:
        return self.clock().astimezone(OSLO).date()

    @staticmethod
    def _day(text: str | None) -> dt.date | None:
        """An ``xs:dateTime`` as the Norwegian date it falls on (a time without zone is Norwegian time)."""
        if not text:
            return None
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest("not an xs:dateTime") from None
        return t.astimezone(OSLO).date() if t.tzinfo is not None else t.date()

    @staticmethod
    def _nin(text: str | None, call: Call) -> str:
        number = (text or "").strip()
        call.asked.append(number[:11])
        try:
            if parse(number).kind not in _NIN_KINDS:
                raise InvalidPatientNin()
        except InvalidIdentifier:
            raise InvalidPatientNin() from None
        return number

    @staticmethod
    def _periods(conn: Connection, numbers: Sequence[str]) -> dict[str, list[store.PatientPeriod]]:
        """Each number's list periods; a number not on any list is resolved through the person store to
        every number the person has had (module docstring)."""
        periods = store.periods_of(conn, numbers)
        out: dict[str, list[store.PatientPeriod]] = {n: [p for p in periods if p.number == n] for n in numbers}
        missing = [n for n, found in out.items() if not found]
        if missing:
            people = PersonRepository(conn).find_many(missing)
            others = {n: [i.number for i in people[n].person.identifiers if i.number != n]
                      for n in missing if n in people}
            more = store.periods_of(conn, [o for v in others.values() for o in v])
            for n, numbers_of in others.items():
                out[n] = [p for p in more if p.number in numbers_of]
        return out

    def _related(self, conn: Connection, docs: Iterable[Mapping[str, Any]], *, patients: Sequence[str] = (),
                 profile: AccessProfile | None = None) -> Related:
        docs = list(docs)
        offices = {int(d["officeHerId"]) for d in docs if isinstance(d.get("officeHerId"), int)}
        hpr = {c.hpr_number for d in docs for c in store.cycles_of(d)}
        masked: dict[str, Any] = {}
        if patients and profile is not None:
            found = PersonRepository(conn).find_many(patients)
            masked = {n: apply_profile(found[n].person, profile) for n in patients if n in found}
        return Related(offices=ar.get_many(conn, sorted(offices)), hpr=ar.hpr_records(conn, hpr),
                       patients=masked, office_sizes=store.gp_counts(conn, offices))

    def _contract(self, conn: Connection, contract_id: int) -> dict[str, Any]:
        if contract_id <= 0:
            raise FlrArgumentError("gpContractId må være høyere enn 0")
        doc = store.contracts(conn, [str(contract_id)]).get(str(contract_id))
        if doc is None:
            raise ContractNotFound()
        return doc

    @staticmethod
    def _page(params: etree._Element | None) -> tuple[int, int]:
        page = _int(child_text(params, FLR, "Page")) if params is not None else 0
        size = _int(child_text(params, FLR, "PageSize")) if params is not None else 0
        if not 1 <= page <= MAX_PAGE:
            raise FlrArgumentError(f"Page må være mellom 1 og {MAX_PAGE}")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise FlrArgumentError(f"PageSize må være mellom 1 og {MAX_PAGE_SIZE}")
        return page, size

    @staticmethod
    def _code_value(params: etree._Element | None, name: str) -> str | None:
        el = params.find(f"{{{FLR}}}{name}") if params is not None else None
        if el is None:
            return None
        return child_text(el, "http://register.nhn.no/Common", "CodeValue") or None

    # -- patient operations -----------------------------------------------------------------------

    def _associations(self, op: str, wanted: Sequence[tuple[str, dt.date]], call: Call, *, omit_missing: bool
                      ) -> etree._Element:
        today = self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            periods = self._periods(conn, list(dict.fromkeys(n for n, _ in wanted)))
            found: list[tuple[store.PatientPeriod, dt.date]] = []
            for number, day in wanted:
                active = store.active_on(periods.get(number, ()), day)
                if active is not None:
                    found.append((active, day))
                elif not omit_missing:
                    raise NoGP()
            docs = store.contracts(conn, {p.contract_id for p, _ in found})
            enc = FlrEncoder(self._related(conn, docs.values()))
        r = enc.response(op)
        box = r if op == "GetPatientGPDetails" else etree.SubElement(r, f"{{{FLR}}}{op}Result")
        for period, day in found:
            doc = docs.get(period.contract_id)
            her_id = store.gp_her_id(doc, today) if doc is not None and day == today else None
            name = f"{op}Result" if op == "GetPatientGPDetails" else "PatientToGPContractAssociation"
            enc.association(box, name, period, doc, gp_her_id=her_id, day=day)
            call.returned.append(period.number)
        return r

    def _op_GetPatientGPDetails(self, body: etree._Element, call: Call) -> etree._Element:
        """The hot path: one indexed join for the list and its contract, one query for the office, one per GP in
        force (store/flr.py ``lists_of``, ``office_of``, ``gp_record``); a number on no list goes the general
        way (:meth:`_associations`, which resolves ceased numbers). Equivalence-tested against it
        (tests/integration/test_flr_soap.py)."""
        nin = self._nin(child_text(body, FLR, "patientNin"), call)
        today = self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            found = store.lists_of(conn, nin)
            if not found:
                return self._associations("GetPatientGPDetails", [(nin, today)], call, omit_missing=False)
            active = next((pd for pd in reversed(found) if pd[0].covers(today)), None)
            if active is None:
                raise NoGP()
            period, doc = active
            cycles = [c for c in store.cycles_of(doc) if c.covers(today)]
            office = store.office_of(conn, doc["officeHerId"]) if isinstance(doc.get("officeHerId"), int) else None
            hpr = {str(c.hpr_number): rec for c in cycles if (rec := store.gp_record(conn, c.hpr_number)) is not None}
        related = Related(offices={int(doc["officeHerId"]): office[0]} if office else {}, hpr=hpr,
                          office_sizes={int(doc["officeHerId"]): office[1]} if office else {})
        enc = FlrEncoder(related, self.memo)
        r = enc.response("GetPatientGPDetails")
        enc.association(r, "GetPatientGPDetailsResult", period, doc, gp_her_id=store.gp_her_id(doc, today), day=today)
        call.returned.append(period.number)
        return r

    def _op_GetPatientsGPDetails(self, body: etree._Element, call: Call) -> etree._Element:
        numbers = values(body, FLR, "patientNins", "string")
        if len(numbers) > MAX_PATIENTS:
            raise InvalidRequest(f"at most {MAX_PATIENTS} patients per call")
        today = self._today()
        wanted = [(self._nin(n, call), today) for n in numbers]
        return self._associations("GetPatientsGPDetails", wanted, call, omit_missing=False)

    def _op_GetPatientsGPDetailsAtTime(self, body: etree._Element, call: Call) -> etree._Element:
        box = body.find(f"{{{FLR}}}patientNins")
        items = [] if box is None else box.findall(f"{{{FLR}}}NinWithTimestamp")
        if len(items) > MAX_PATIENTS:
            raise InvalidRequest(f"at most {MAX_PATIENTS} patients per call")
        wanted = [(self._nin(child_text(i, FLR, "NIN"), call), self._day(child_text(i, FLR, "AtTime")) or
                   self._today()) for i in items]
        return self._associations("GetPatientsGPDetailsAtTime", wanted, call, omit_missing=True)

    def _op_GetPatientGPHistory(self, body: etree._Element, call: Call) -> etree._Element:
        nin = self._nin(child_text(body, FLR, "patientNin"), call)
        with_patient = _bool(child_text(body, FLR, "includePatientData"))
        with read_connection(self.engine) as conn, deadline(conn):
            history = self._periods(conn, [nin])[nin]
            if not history:
                raise NoGP()
            docs = store.contracts(conn, {p.contract_id for p in history})
            numbers = sorted({p.number for p in history}) if with_patient else []
            enc = FlrEncoder(self._related(conn, docs.values(), patients=numbers, profile=call.profile))
        r = enc.response("GetPatientGPHistory")
        box = etree.SubElement(r, f"{{{FLR}}}GetPatientGPHistoryResult")
        for period in history:
            enc.association(box, "PatientToGPContractAssociation", period, docs.get(period.contract_id),
                            gp_her_id=None, day=None, with_patient=with_patient)
            call.returned.append(period.number)
        return r

    def _op_ConfirmGP(self, body: etree._Element, call: Call) -> etree._Element:
        nin = self._nin(child_text(body, FLR, "patientNin"), call)
        hpr = _int(child_text(body, FLR, "hprNumber"))
        if hpr <= 0:
            raise FlrArgumentError("hprNumber er ugyldig")
        day = self._day(child_text(body, FLR, "atTime")) or self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            active = store.active_on(self._periods(conn, [nin])[nin], day)
            doc = store.contracts(conn, [active.contract_id]).get(active.contract_id) if active else None
        confirmed = doc is not None and any(c.hpr_number == hpr and c.covers(day) for c in store.cycles_of(doc))
        r = FlrEncoder.response("ConfirmGP")
        FlrEncoder.result(r, "ConfirmGP", confirmed)
        return r

    # -- contract operations ----------------------------------------------------------------------

    def _op_GetGPContract(self, body: etree._Element, call: Call) -> etree._Element:
        with read_connection(self.engine) as conn, deadline(conn):
            doc = self._contract(conn, _int(child_text(body, FLR, "gpContractId")))
            enc = FlrEncoder(self._related(conn, [doc]))
        r = enc.response("GetGPContract")
        build = enc.contract(doc)
        assert callable(build)
        build(etree.SubElement(r, f"{{{FLR}}}GetGPContractResult"))
        return r

    def _op_GetGPPatientList(self, body: etree._Element, call: Call) -> etree._Element:
        today = self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            doc = self._contract(conn, _int(child_text(body, FLR, "gpContractId")))
            patients = store.list_of(conn, str(doc["contractId"]), today)
            enc = FlrEncoder(self._related(conn, [doc], patients=[p.number for p in patients], profile=call.profile))
        her_id = store.gp_her_id(doc, today)
        r = enc.response("GetGPPatientList")
        box = etree.SubElement(r, f"{{{FLR}}}GetGPPatientListResult")
        for period in patients:
            enc.association(box, "PatientToGPContractAssociation", period, None, gp_her_id=her_id, day=today,
                            with_patient=True)
            call.returned.append(period.number)
        return r

    def _op_GetGPContractsOnOffice(self, body: etree._Element, call: Call) -> etree._Element:
        number = _int(child_text(body, FLR, "organizationNumber"))
        day = self._day(child_text(body, FLR, "atTime"))
        with read_connection(self.engine) as conn, deadline(conn):
            offices = {int(d["herId"]) for d in ar.by_organization_number(conn, str(number))} if number > 0 else set()
            if not offices:
                raise FlrArgumentError("organizationNumber er ugyldig")
            docs = [d for d in store.all_contracts(conn) if d.get("officeHerId") in offices
                    and (day is None or store.contract_covers(d, day))]
            if not docs:
                raise FlrArgumentError("Virksomheten har ingen fastlegeavtaler")
            enc = FlrEncoder(self._related(conn, docs))
        r = enc.response("GetGPContractsOnOffice")
        enc.contracts(r, "GetGPContractsOnOfficeResult", docs)
        return r

    def _op_GetGPWithAssociatedGPContracts(self, body: etree._Element, call: Call) -> etree._Element:
        hpr = _int(child_text(body, FLR, "hprNumber"))
        day = self._day(child_text(body, FLR, "atTime"))
        with read_connection(self.engine) as conn, deadline(conn):
            docs = store.contracts_of_gp(conn, hpr) if hpr > 0 else []
            worked = [(d, [c for c in store.cycles_of(d) if c.hpr_number == hpr and (day is None or c.covers(day))])
                      for d in docs]
            worked = [(d, cycles) for d, cycles in worked if cycles]
            if not worked:
                raise FlrArgumentError("HPR-nummeret er ikke registrert som fastlege")
            enc = FlrEncoder(self._related(conn, [d for d, _ in worked]))
        r = enc.response("GetGPWithAssociatedGPContracts")
        enc.gp_details(r, "GetGPWithAssociatedGPContractsResult", hpr, worked)
        return r

    def _op_GetGPContractIdsOperatingInPostalCode(self, body: etree._Element, call: Call) -> etree._Element:
        prefix = (child_text(body, FLR, "postNr") or "").strip()
        if not (prefix.isascii() and prefix.isdigit() and 2 <= len(prefix) <= 4):
            raise FlrArgumentError("postNr må være 2, 3 eller 4 siffer")
        today = self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            docs = [d for d in store.all_contracts(conn) if store.contract_covers(d, today)]
            offices = ar.get_many(conn, sorted({int(d["officeHerId"]) for d in docs
                                                if isinstance(d.get("officeHerId"), int)}))
        ids = [int(d["contractId"]) for d in docs if any(
            str(a.get("postalCode") or "").startswith(prefix) and (a.get("type") or {}).get("value") == "RES"
            for a in (offices.get(d.get("officeHerId") or -1) or {}).get("physicalAddresses") or ())]
        r = FlrEncoder.response("GetGPContractIdsOperatingInPostalCode")
        FlrEncoder.longs(r, "GetGPContractIdsOperatingInPostalCodeResult", ids)
        return r

    def _op_SearchForGP(self, body: etree._Element, call: Call) -> etree._Element:
        params = body.find(f"{{{FLR}}}searchParameters")
        page, size = self._page(params)
        words = name_tokens(child_text(params, FLR, "FullText") if params is not None else None)
        kommune = self._code_value(params, "HasGPOfficeInMunicipality")
        today = self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            docs = [d for d in store.all_contracts(conn) if store.contract_covers(d, today)
                    and (kommune is None or d.get("kommune") == kommune)]
            by_gp: dict[int, list[tuple[dict[str, Any], list[store.Cycle]]]] = {}
            for d in docs:
                for c in store.cycles_of(d):
                    if c.covers(today):
                        by_gp.setdefault(c.hpr_number, []).append((d, [c]))
            records = ar.hpr_records(conn, by_gp)
            hits = []
            for hpr, worked in by_gp.items():
                rec = records.get(str(hpr), {})
                tokens = set(name_tokens(" ".join(str(rec.get(k) or "") for k in
                                                  ("givenName", "middleName", "familyName"))))
                if all(w in tokens or w == str(hpr) for w in words):
                    hits.append(((rec.get("familyName") or "", rec.get("givenName") or "", hpr), worked))
            hits.sort(key=lambda h: h[0])
            chosen = hits[(page - 1) * size: page * size]
            enc = FlrEncoder(self._related(conn, [d for _, worked in chosen for d, _ in worked]))
        r = enc.response("SearchForGP")
        results = enc.paged(r, "SearchForGPResult", len(hits))
        for (_, _, hpr), worked in chosen:
            enc.gp_details(results, "GPDetails", hpr, worked)
        return r

    def _op_QueryGPContracts(self, body: etree._Element, call: Call) -> etree._Element:
        params = body.find(f"{{{FLR}}}queryParameters")
        page, size = self._page(params)
        kommune = self._code_value(params, "Municipality")
        team = child_text(params, FLR, "HasPrimaryHealthCareTeam") if params is not None else None
        today = self._today()
        with read_connection(self.engine) as conn, deadline(conn):
            docs = [d for d in store.all_contracts(conn) if store.contract_covers(d, today)
                    and (kommune is None or d.get("kommune") == kommune)
                    and (team is None or _bool(team) == (d.get("primaryHealthCareTeamId") is not None))]
            chosen = docs[(page - 1) * size: page * size]
            enc = FlrEncoder(self._related(conn, chosen))
        r = enc.response("QueryGPContracts")
        results = enc.paged(r, "QueryGPContractsResult", len(docs))
        for doc in chosen:
            build = enc.contract(doc)
            assert callable(build)
            build(etree.SubElement(results, f"{{{FLR}}}GPContract"))
        return r

    def _op_GetPrimaryHealthCareTeam(self, body: etree._Element, call: Call) -> etree._Element:
        team_id = _int(child_text(body, FLR, "id"))
        with read_connection(self.engine) as conn, deadline(conn):
            docs = [d for d in store.all_contracts(conn) if d.get("primaryHealthCareTeamId") == team_id]
        if team_id <= 0 or not docs:
            raise FlrArgumentError("Primærhelseteamet finnes ikke")
        r = FlrEncoder.response("GetPrimaryHealthCareTeam")
        FlrEncoder(Related()).team(r, "GetPrimaryHealthCareTeamResult", team_id, docs)
        return r
