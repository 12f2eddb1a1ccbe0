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

import orjson
from sqlalchemy import Connection, bindparam, func, literal_column, or_, select

from store import schema as s
from store.engine import driver_sql

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
    "gp_record",
    "lists_of",
    "office_of",
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


# -- the hot path: GetPatientGPDetails (driver-level SQL compiled once, one row per query) -------------------

_A, _A2, _H = s.ar_party.c, s.ar_party.alias("gp").c, s.hpr_person.c
_LISTS_OF = (select(_P.id, _P.contract_id, _P.person_number, _P.valid_from, _P.valid_to, _F.doc)
             .join(s.flr_contract, _F.contract_id == _P.contract_id).where(_P.person_number == bindparam("number")))
_OFFICE_OF = select(_A.doc, select(func.count()).where(_A2.parent_her_id == _A.her_id,
                                                       _A2.party_type == literal_column("'Person'"))
                    .scalar_subquery()).where(_A.her_id == bindparam("her_id"))  # one parameter: driver_sql
_GP_RECORD = select(_H.doc).where(_H.hpr_number == bindparam("hpr_number"))


def _json(value: Any) -> dict[str, Any]:
    """A JSON column as the driver returns it: text on SQLite, already decoded on PostgreSQL."""
    return dict(value) if isinstance(value, Mapping) else dict(orjson.loads(value))


def _day(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _one(conn: Connection, statement: Any, name: str, value: Any) -> list[Any]:
    sql, positional = driver_sql(statement, conn.dialect)
    return list(conn.exec_driver_sql(sql, (value,) if positional else {name: value}).all())


def lists_of(conn: Connection, number: str) -> list[tuple[PatientPeriod, dict[str, Any]]]:
    """Every list period of the number with its contract document, oldest first (one indexed join); what
    :func:`periods_of` and :func:`contracts` answer together, for the hot path."""
    out = [(PatientPeriod(int(r[0]), str(r[1]), str(r[2]), _day(r[3]), _day(r[4])), _json(r[5]))
           for r in _one(conn, _LISTS_OF, "number", number)]
    out.sort(key=lambda pd: (pd[0].valid_from or dt.date.min, pd[0].id))
    return out


def office_of(conn: Connection, her_id: int) -> tuple[dict[str, Any], int] | None:
    """An office's AR document and how many organisation persons AR lists under it (one query)."""
    rows = _one(conn, _OFFICE_OF, "her_id", her_id)
    return (_json(rows[0][0]), int(rows[0][1])) if rows else None


def gp_record(conn: Connection, hpr_number: int) -> dict[str, Any] | None:
    rows = _one(conn, _GP_RECORD, "hpr_number", str(hpr_number))
    return _json(rows[0][0]) if rows else None
