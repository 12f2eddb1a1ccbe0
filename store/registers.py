"""HPR, AR and FLR records (docs/registers.md) to rows of the register tables.

The registers are kept as their documents, with the keys the faces look them up by in columns of
their own (HPR number, HER-id, parent HER-id, organisation number, GP contract, patient number).
AR parties also get their business type and last-changed time as columns and one ``ar_name_word``
row per name word (store/ar.py searches by them). FLR patient lists are exploded into ``flr_patient``
rows (one per patient, indexed by number), and left out of the stored contract document.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table

from store import schema as s
from store.errors import InvalidDocument
from store.hpr import key_columns as hpr_key_columns
from store.normalize import name_tokens

__all__ = ["REGISTER_FILES", "register_rows"]

# register name → its tables, parents first
REGISTER_FILES: dict[str, tuple[Table, ...]] = {
    "hpr": (s.hpr_person, s.hpr_approval),
    "ar": (s.ar_party, s.ar_name_word),
    "flr": (s.flr_contract, s.flr_patient),
}

# AR's CommunicationPartyType: an organisation person is "Person" on the wire
_AR_TYPES = frozenset({"Organization", "Service", "Person"})


def _req(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    v = doc.get(key)
    if v is None or not isinstance(v, kind) or isinstance(v, bool):
        raise InvalidDocument("missing or of the wrong type", field=key)
    return v


def _opt_date(v: Any, key: str) -> dt.date | None:
    if v is None:
        return None
    try:
        return dt.date.fromisoformat(str(v)[:10])
    except ValueError:
        raise InvalidDocument("not a date", field=key) from None


def _opt_datetime(v: Any, key: str) -> dt.datetime | None:
    """A UTC date-time (naive, as stored) from ``YYYY-MM-DDTHH:MM:SSZ`` or a date."""
    if v is None:
        return None
    try:
        t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidDocument("not a date-time", field=key) from None
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _opt_str(doc: Mapping[str, Any], key: str, limit: int) -> str | None:
    v = doc.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise InvalidDocument(f"not a string of at most {limit} characters", field=key)
    return v


def _hpr_rows(doc: Mapping[str, Any]) -> dict[Table, list[dict[str, Any]]]:
    """An HPR record's ``hpr_person`` row (with its lookup and search columns) and ``hpr_approval`` rows."""
    raw = _req(doc, "hprNumber", (str, int))
    number = int(raw) if isinstance(raw, int) or raw.isascii() and raw.isdigit() else 0
    if not 0 < number <= 2**31 - 1:  # HPRNummer is an xs:int on the wire
        raise InvalidDocument("not a positive 32-bit number", field="hprNumber")
    approvals = doc.get("approvals") or []
    if not isinstance(approvals, list):
        raise InvalidDocument("not a list", field="approvals")
    rows = []
    for i, a in enumerate(approvals):
        if not isinstance(a, Mapping) or not isinstance(a.get("id"), int) or isinstance(a.get("id"), bool):
            raise InvalidDocument("missing or of the wrong type", field=f"approvals[{i}].id")
        category = a.get("category")
        value = category.get("value") if isinstance(category, Mapping) else None
        if not isinstance(value, str) or not 0 < len(value) <= 10:
            raise InvalidDocument("missing or of the wrong type", field=f"approvals[{i}].category.value")
        rows.append({"approval_id": a["id"], "hpr_number": str(number), "category": value})
    if len({r["approval_id"] for r in rows}) != len(rows):
        raise InvalidDocument("approval ids repeat", field="approvals")
    nin = _opt_str(doc, "nin", 11)
    _opt_str(doc, "familyName", 200)  # refused unless a string of at most 200 characters
    _opt_str(doc, "givenName", 200)
    return {
        s.hpr_person: [{
            "hpr_number": str(number), "person_key": doc.get("personId"), "doc": dict(doc),
            "nin": nin,
            **hpr_key_columns(doc),  # the name keys, layout store.hpr.KEY_LAYOUT (store/derived.py)
            "birth_date": _opt_date(doc.get("birthDate"), "birthDate"),
            "last_updated": _opt_datetime(doc.get("lastUpdated"), "lastUpdated"),
        }],
        s.hpr_approval: rows,
    }


def register_rows(name: str, doc: Any) -> dict[Table, list[dict[str, Any]]]:
    if not isinstance(doc, Mapping):
        raise InvalidDocument("a register record must be a JSON object")
    if name == "hpr":
        return _hpr_rows(doc)
    if name == "ar":
        party_type = _req(doc, "type", str)
        if party_type not in _AR_TYPES:
            raise InvalidDocument("not Organization, Service or Person", field="type")
        her_id = _req(doc, "herId", int)
        name_text = _req(doc, "name", str)
        parent = doc.get("parentHerId")
        org = doc.get("organizationNumber")
        municipality = doc.get("municipality")
        kommune = municipality.get("value") if isinstance(municipality, Mapping) else doc.get("kommune")
        business = doc.get("businessType") or doc.get("parentBusinessType")
        business_type = business.get("value") if isinstance(business, Mapping) else None
        words = sorted({w[:200] for w in name_tokens(name_text) + name_tokens(doc.get("displayName"))})
        return {s.ar_party: [{
            "her_id": her_id,
            "parent_her_id": parent if isinstance(parent, int) and parent > 0 else None,
            "party_type": party_type,
            "organization_number": str(org) if isinstance(org, int) and org > 0 else None,
            "name": name_text,
            "kommune": kommune if isinstance(kommune, str) else None,
            "doc": dict(doc),
            "business_type": str(business_type)[:10] if business_type is not None else None,
            "last_changed": _opt_datetime(doc.get("lastChanged"), "lastChanged"),
        }], s.ar_name_word: [{"word": w, "her_id": her_id} for w in words]}
    if name == "flr":
        contract_id = str(_req(doc, "contractId", (str, int)))
        patients = doc.get("patients") or []
        if not isinstance(patients, list):
            raise InvalidDocument("not a list", field="patients")
        rows = []
        for i, p in enumerate(patients):
            if not isinstance(p, Mapping) or not isinstance(p.get("personNumber"), str):
                raise InvalidDocument("missing personNumber", field=f"patients[{i}]")
            rows.append({"contract_id": contract_id, "person_number": p["personNumber"],
                         "valid_from": _opt_date(p.get("validFrom"), f"patients[{i}].validFrom"),
                         "valid_to": _opt_date(p.get("validTo"), f"patients[{i}].validTo")})
        office = doc.get("officeHerId")
        return {
            s.flr_contract: [{"contract_id": contract_id, "gp_hpr_number": str(doc.get("gpHprNumber") or "") or None,
                              "office_her_id": office if isinstance(office, int) else None,
                              "kommune": doc.get("kommune"),
                              "doc": {k: v for k, v in doc.items() if k != "patients"}}],
            s.flr_patient: rows,
        }
    raise ValueError(f"unknown register {name}")
