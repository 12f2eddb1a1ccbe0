"""Person documents for tests, built with synthetic identity numbers (store.identity.generate)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from store.identity import IdKind, generate

_rng = random.Random(20261121)
_issued: dict[tuple[str, dt.date | None], set[str]] = {}


def number(kind: str = "fnr", born: dt.date = dt.date(1980, 5, 17), *, female: bool | None = None) -> str:
    """A synthetic number not handed out before in this process for this kind and date, while unused ones of
    the gender asked for are left.

    Only ~200 valid numbers exist per birth date and gender, and which ones a test draws depends on the tests its
    worker ran before: drawn blindly, two persons of one test shared a number now and then (a flaky failure).
    When every number of a date and gender has been handed out, those are handed out again (some tests make
    hundreds of persons with the default date and do not care); the other gender's stay taken.
    """
    key = (kind, None if kind == "fh" else born)
    issued = _issued.setdefault(key, set())
    for _ in range(2_000):
        drawn = generate(IdKind(kind), key[1], _rng, female=female)
        if drawn not in issued:
            issued.add(drawn)
            return drawn
    # every number of this date and gender is out: another round for them (digit 9 is odd for men)
    issued -= {n for n in issued if female is None or kind == "fh" or (int(n[8]) % 2 == 0) == female}
    drawn = generate(IdKind(kind), key[1], _rng, female=female)
    issued.add(drawn)
    return drawn


def meta(current: bool = True, valid_from: str | None = "2000-01-01", valid_to: str | None = None) -> dict[str, Any]:
    return {"current": current, "validFrom": valid_from, "validTo": valid_to,
            "registeredAt": "2020-01-01T10:00:00Z", "source": "Skatteetaten"}


def person_doc(key: str, *, given: str = "Ola", family: str = "Nordmann", born: str = "1980-05-17",
               gender: str = "mann", status: str = "bosatt", kommune: str = "0301", postnummer: str = "0150",
               street: str = "Storgata", house: int = 1, identifiers: list[dict[str, Any]] | None = None,
               protection: str = "ugradert", **extra: Any) -> dict[str, Any]:
    birth = dt.date.fromisoformat(born)
    ids = identifiers or [{"number": number("fnr", birth, female=gender == "kvinne"), "kind": "fnr",
                           "status": "iBruk", **meta()}]
    doc: dict[str, Any] = {
        "personId": key,
        "identifiers": ids,
        "names": [{"given": given, "middle": None, "family": family, **meta()}],
        "birth": [{"date": born, "year": birth.year, "place": None, "kommune": kommune, "country": "NOR", **meta()}],
        "gender": [{"value": gender, **meta()}],
        "status": [{"value": status, **meta()}],
        "death": [],
        "addresses": [{
            "type": "bosted", "form": "vegadresse", "street": street, "houseNumber": house, "houseLetter": None,
            "unit": "H0101", "co": None, "gardsnummer": None, "bruksnummer": None, "festenummer": None,
            "lines": [], "country": None, "postnummer": postnummer, "poststed": "OSLO", "kommune": kommune,
            "bydel": "030101" if kommune == "0301" else None, "protection": protection, "movedAt": "2015-06-01",
            **meta()}],
        "protection": [{"level": protection, **meta()}],
        "maritalStatus": [{"value": "ugift", "spouse": None, "date": None, **meta()}],
        "citizenship": [{"country": "NOR", "acquired": None, **meta()}],
        "relations": [],
    }
    doc.update(extra)
    return doc


def hpr_history_doc(hpr_number: int = 9100001, *, given: str = "Åse", family: str = "Ødegård",
                    born: str = "1970-03-14") -> dict[str, Any]:
    """An HPR record (docs/registers.md) with history: a doctor authorised since 2000 with a speciality that
    ended in 2015 and one from 2016, a requisition right from 2001, a suspension in 2019, and an expired nurse
    approval (1995–1999). Approval ids are the HPR number times 10 plus 1–6."""
    def code(oid: int, value: str, text: str) -> dict[str, Any]:
        return {"oid": oid, "value": value, "text": text}

    base = hpr_number * 10
    return {
        "hprNumber": hpr_number, "personId": None, "nin": number("fnr", dt.date.fromisoformat(born), female=True),
        "givenName": given, "middleName": None, "familyName": family, "birthDate": born,
        "gender": code(3101, "2", "Kvinne"), "lastUpdated": "2026-11-17T06:00:00Z",
        "approvals": [
            {"id": base + 1, "category": code(9060, "LE", "Lege"), "authorization": code(7704, "1", "Autorisasjon"),
             "valid": {"from": "2000-01-01", "to": None},
             "specialities": [
                 {"id": base + 2, "type": code(7426, "1", "Allmennmedisin"),
                  "valid": {"from": "2006-01-01", "to": "2015-12-31"}},
                 {"id": base + 3, "type": code(7426, "2", "Samfunnsmedisin"),
                  "valid": {"from": "2016-01-01", "to": None}}],
             "requisitionRights": [{"id": base + 4, "type": code(7701, "1", "Full rekvisisjonsrett"),
                                    "valid": {"from": "2001-01-01", "to": None}}],
             "suspensions": [{"id": base + 5, "period": {"from": "2019-01-01", "to": "2019-06-30"}}]},
            {"id": base + 6, "category": code(9060, "SP", "Sykepleier"),
             "authorization": code(7704, "1", "Autorisasjon"),
             "valid": {"from": "1995-01-01", "to": "1999-12-31"},
             "specialities": [], "requisitionRights": [], "suspensions": []},
        ],
    }
