"""FLR (Fastlegeregisteret) reads: GP contracts and patient lists (``flr_contract``, ``flr_patient``).

A contract is its ``flr.jsonl`` document (docs/registers.md) without the patient list; the list is one
``flr_patient`` row per patient period, indexed by the patient's number. Every read here is one indexed
query, except those that filter on a contract document's own fields (office, kommune, postal code of the
office, primary health care team): those read the contract table whole, which holds one row per GP list
(about 5,000 in Norway) and serves only rare directory operations.

Doctor cycles: a contract's ``doctorCycles`` (optional) lists who works the list and when, as FLR's
``GPOnContractAssociation`` does; a contract without them has one implied cycle: its GP
(``gpHprNumber``/``gpHerId``) as fastlege (relationship ``LPFL``) for the contract's whole period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, func, or_, select

from store import schema as s

__all__ = [
    "FASTLEGE",
    "VIKAR",
    "Cycle",
    "PatientPeriod",
    "active_on",
    "all_contracts",
    "contract_covers",
    "contract_period",
    "contracts",
    "contracts_of_gp",
    "cycles_of",
    "gp_counts",
    "gp_her_id",
    "list_of",
    "periods_of",
]

FASTLEGE: Final = "LPFL"  # OID 7750 relationship: the list's own GP
VIKAR: Final = "LPVI"  # OID 7750 relationship: a substitute
_F, _P = s.flr_contract.c, s.flr_patient.c
_MAX_IN: Final = 500


@dataclass(frozen=True, slots=True)
class PatientPeriod:
    """One ``flr_patient`` row: a patient on a list for a period (``valid_to`` None: still on it)."""

    id: int
    contract_id: str
    number: str
    valid_from: dt.date | None
    valid_to: dt.date | None

    def covers(self, day: dt.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day < self.valid_to)


@dataclass(frozen=True, slots=True)
class Cycle:
    """A doctor cycle: who works a list (``relationship`` LPFL or LPVI) from ``valid_from`` until ``valid_to``."""

    id: int
    hpr_number: int
    her_id: int | None
    relationship: str
    valid_from: dt.date | None
    valid_to: dt.date | None
    substitute_for: int | None = None
    working_percentage: int | None = None

    def covers(self, day: dt.date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day < self.valid_to)


def _date(v: Any) -> dt.date | None:
    if v is None or v == "":
        return None
    text = str(v)[:10]
    return None if text.startswith("9999-12-31") else dt.date.fromisoformat(text)


def _row(r: Any) -> PatientPeriod:
    return PatientPeriod(int(r.id), str(r.contract_id), str(r.person_number), r.valid_from, r.valid_to)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _MAX_IN):
        yield items[i:i + _MAX_IN]


def periods_of(conn: Connection, numbers: Sequence[str]) -> list[PatientPeriod]:
    """Every list period of the patients with these numbers (history included), oldest first."""
    wanted = list(dict.fromkeys(n for n in numbers if n))
    out: list[PatientPeriod] = []
    for chunk in _chunks(wanted):
        stmt = select(_P.id, _P.contract_id, _P.person_number, _P.valid_from, _P.valid_to).where(
            _P.person_number.in_(chunk) if len(chunk) > 1 else _P.person_number == chunk[0])
        out.extend(_row(r) for r in conn.execute(stmt))
    out.sort(key=lambda p: (p.valid_from or dt.date.min, p.id))
    return out


def active_on(periods: Iterable[PatientPeriod], day: dt.date) -> PatientPeriod | None:
    """The period in force on ``day`` (the latest begun, if the register overlaps two)."""
    found = [p for p in periods if p.covers(day)]
    return found[-1] if found else None


def list_of(conn: Connection, contract_id: str, day: dt.date | None) -> list[PatientPeriod]:
    """The patients on a list on ``day`` (every period, history included, when ``day`` is None)."""
    stmt = (select(_P.id, _P.contract_id, _P.person_number, _P.valid_from, _P.valid_to)
            .where(_P.contract_id == contract_id).order_by(_P.id))
    if day is not None:
        stmt = stmt.where(or_(_P.valid_from.is_(None), _P.valid_from <= day),
                          or_(_P.valid_to.is_(None), _P.valid_to > day))
    return [_row(r) for r in conn.execute(stmt)]


def contracts(conn: Connection, contract_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Contract documents by id (unknown ids are left out)."""
    wanted = sorted(set(contract_ids))
    out: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(wanted):
        for cid, doc in conn.execute(select(_F.contract_id, _F.doc).where(_F.contract_id.in_(chunk))):
            out[str(cid)] = dict(doc)
    return out


def contracts_of_gp(conn: Connection, hpr_number: int) -> list[dict[str, Any]]:
    """The contracts a GP works: as the list's GP (indexed), or in one of its doctor cycles."""
    own = {str(cid): dict(doc) for cid, doc in
           conn.execute(select(_F.contract_id, _F.doc).where(_F.gp_hpr_number == str(hpr_number)))}
    for doc in all_contracts(conn):
        if str(doc.get("contractId")) not in own and any(
                c.get("hprNumber") == hpr_number for c in doc.get("doctorCycles") or ()):
            own[str(doc["contractId"])] = doc
    return sorted(own.values(), key=lambda d: int(d["contractId"]))


def all_contracts(conn: Connection) -> list[dict[str, Any]]:
    """Every contract document, by contract id (the directory operations' scan; see the module docstring)."""
    docs = [dict(d) for d in conn.execute(select(_F.doc)).scalars()]
    docs.sort(key=lambda d: int(d["contractId"]))
    return docs


def contract_period(doc: Mapping[str, Any]) -> tuple[dt.date | None, dt.date | None]:
    return _date(doc.get("validFrom")), _date(doc.get("validTo"))


def contract_covers(doc: Mapping[str, Any], day: dt.date) -> bool:
    start, end = contract_period(doc)
    return (start is None or start <= day) and (end is None or day < end)


def cycles_of(doc: Mapping[str, Any]) -> list[Cycle]:
    """The contract's doctor cycles, or its one implied fastlege cycle (module docstring)."""
    given = doc.get("doctorCycles")
    if isinstance(given, list) and given:
        out = []
        for i, c in enumerate(given):
            relationship = c.get("relationship")
            rel = relationship.get("value") if isinstance(relationship, Mapping) else relationship
            valid = c.get("valid") or {}
            out.append(Cycle(int(c.get("id") or int(doc["contractId"]) * 100 + i + 1), int(c["hprNumber"]),
                             c.get("herId"), str(rel or FASTLEGE), _date(valid.get("from")), _date(valid.get("to")),
                             c.get("substituteForHprNumber"), c.get("workingPercentage")))
        return out
    if doc.get("gpHprNumber") is None:
        return []
    start, end = contract_period(doc)
    return [Cycle(int(doc["contractId"]) * 100, int(doc["gpHprNumber"]), doc.get("gpHerId"), FASTLEGE, start, end)]


def gp_her_id(doc: Mapping[str, Any], day: dt.date) -> int | None:
    """FLR's ``GPHerId`` of a list on ``day``: the HER-id of the GP active on the list; if the list has no
    active GP but exactly one active substitute, the substitute's; else the list's own service party
    ("liste uten fast lege", ``serviceHerId``) if it has one; else None."""
    active = [c for c in cycles_of(doc) if c.covers(day)]
    for c in active:
        if c.relationship == FASTLEGE and c.her_id is not None:
            return int(c.her_id)
    substitutes = [c for c in active if c.relationship == VIKAR]
    if len(substitutes) == 1 and substitutes[0].her_id is not None:
        return int(substitutes[0].her_id)
    service = doc.get("serviceHerId")
    return int(service) if isinstance(service, int) else None


def gp_counts(conn: Connection, office_her_ids: Iterable[int]) -> dict[int, int]:
    """How many organisation persons (GPs) AR lists under each office (FLR's ``IsGroupOffice``: more than one)."""
    wanted = sorted({int(h) for h in office_her_ids})
    if not wanted:
        return {}
    a = s.ar_party.c
    rows = conn.execute(select(a.parent_her_id, func.count()).where(a.parent_her_id.in_(wanted),
                                                                   a.party_type == "Person")
                        .group_by(a.parent_her_id))
    return {int(h): int(n) for h, n in rows}
