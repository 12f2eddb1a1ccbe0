"""search/person for the fake: the contract's rules, matched by reading every person (a fake, not an index).

Rules (the contract's description of search/person): a name (GivenName, MiddleName, FamilyName or FullName)
with at least three letters in all, and a BirthDate, a MunicipalityNumber (four digits) or a StreetAddress
with at least three letters. Names match as prefixes, case-insensitively; FullName's first three words
each match the start of some part of the name; BirthDate matches YYYY, YYYY-MM or YYYY-MM-DD; addresses
are the current residential, present and shared-residence ones. Persons known only by a felles
hjelpenummer are left out unless ``includeAinResults``. Current data only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from upstream.fake.population import Population, Version

__all__ = ["search"]

_NAME_FIELDS = ("GivenName", "MiddleName", "FamilyName", "FullName")
_HOME = ("bosted", "opphold", "deltBosted")


def _letters(s: str) -> int:
    return sum(1 for c in s if c.isalpha())


def _current(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((i for i in items if i.get("current", True)), None)


def _check(form: Mapping[str, str]) -> None:
    if sum(_letters(form.get(k, "")) for k in _NAME_FIELDS) < 3:
        raise ValueError("a search needs a name with at least three letters")
    street = form.get("StreetAddress", "")
    kommune = form.get("MunicipalityNumber", "")
    if not (form.get("BirthDate") or (len(kommune) == 4 and kommune.isdigit()) or _letters(street) >= 3):
        raise ValueError("a search needs BirthDate, MunicipalityNumber or StreetAddress as well")
    for key in ("PostalCode", "MunicipalityNumber"):
        v = form.get(key)
        if v and not (len(v) == 4 and v.isdigit()):
            raise ValueError(f"{key} must be four digits")
    if form.get("Gender") not in (None, "", "Female", "Male"):
        raise ValueError("Gender must be Female or Male")


def _matches(doc: dict[str, Any], form: Mapping[str, str], include_ain: bool) -> bool:
    in_use = [i["kind"] for i in doc.get("identifiers") or [] if i.get("status", "iBruk") == "iBruk"]
    if not include_ain and in_use and all(k == "fh" for k in in_use):
        return False
    name = _current(doc.get("names") or [])
    if name is None:
        return False
    given, middle, family = (str(name.get(k) or "").lower() for k in ("given", "middle", "family"))
    for key, value in (("GivenName", given), ("MiddleName", middle), ("FamilyName", family)):
        if form.get(key) and not value.startswith(form[key].strip().lower()):
            return False
    if form.get("FullName"):
        parts = f"{given} {middle} {family}".split()
        for word in form["FullName"].lower().split()[:3]:
            if not any(p.startswith(word) for p in parts):
                return False
    birth = _current(doc.get("birth") or [])
    if form.get("BirthDate") and not str((birth or {}).get("date") or "").startswith(form["BirthDate"]):
        return False
    gender = _current(doc.get("gender") or [])
    if form.get("Gender") and (gender or {}).get("value") != {"Female": "kvinne", "Male": "mann"}[form["Gender"]]:
        return False
    wants_address = any(form.get(k) for k in ("MunicipalityNumber", "StreetAddress", "PostalCode", "CityName"))
    if not wants_address:
        return True
    for a in doc.get("addresses") or []:
        if not a.get("current", True) or a.get("type") not in _HOME:
            continue
        line = " ".join(str(x) for x in (a.get("street"), a.get("houseNumber"), a.get("houseLetter")) if x)
        if form.get("MunicipalityNumber") and a.get("kommune") != form["MunicipalityNumber"]:
            continue
        if form.get("StreetAddress") and not line.lower().startswith(form["StreetAddress"].strip().lower()):
            continue
        if form.get("PostalCode") and a.get("postnummer") != form["PostalCode"]:
            continue
        if form.get("CityName") and str(a.get("poststed") or "").lower() != form["CityName"].strip().lower():
            continue
        return True
    return False


def search(population: Population, form: Mapping[str, str], upto: int, *, include_ain: bool, limit: int,
           keep: Callable[[Version], bool]) -> list[Version]:
    """At most ``limit`` persons as of ``upto`` that match ``form``; ValueError when the rules are not met."""
    _check(form)
    hits: list[Version] = []
    for person_id in population.person_ids():
        version = population.version(person_id, upto)
        if version is not None and _matches(version.document, form, include_ain) and keep(version):
            hits.append(version)
            if len(hits) >= limit:
                break
    return hits
