"""Persontjenesten ``Person`` (NHN's Person API, OpenAPI v2/v3 components) ⇄ pregbridge person documents.

:func:`store_document` turns a ``Person`` JSON object into a person document of docs/data-formats.md, which
the sync then validates with :func:`store.document.from_document` like any loaded or fed person (one set of
store rules; a person that breaks one is rejected with the field named, never the value).
:func:`person_json` is the inverse, for the fake Persontjenesten and for tests: a loaded population served
through the real contract syncs into exactly the store a file load makes (tested person by person).

Every information part is a list of items with history metadata, mapped one to one
(isValid → current, validFrom/validTo → dates, registeredAt → UTC date-time, source); the API's
``reason`` has no place in the store and is left out. Which part feeds which store element:

| Persontjenesten part (Person key) | store element |
|---|---|
| NorwegianIdentificationNumber (norwegianIdentificationNumber) | identifiers (kind and status below) |
| Name (name) | names |
| Birth (birth) | birth |
| Gender (gender) | gender |
| Status (status) | status |
| Death (death, one object) | death |
| ResidentialAddress (residentialAddress) | addresses of type bosted |
| PresentAddress (presentAddress) | addresses of type opphold (with stayElsewhere) |
| SharedResidence (sharedResidence) | addresses of type deltBosted (with the contract period) |
| PostalAddress (postalAddress) | addresses of type post |
| ForeignPostalAddress (foreignPostalAddress) | addresses of type postUtland |
| AddressProtection (addressProtection) | protection; each address's addressConfidentiality → its protection |
| MaritalStatus (maritalStatus) | maritalStatus |
| Citizenship (citizenship) | citizenship |
| FamilyRelation (familyRelation) | relations |

Identifier kinds: NationalIdentityNumber → fnr, DNumber → dnr, AlternateIdentificationNumber (felles
hjelpenummer) → fh; status InUse → iBruk, Discontinued → opphoert.

**Unknown enum values** (a value the contract of today does not list; the API may add some) never crash
the sync and never reject the person: each is counted by its enum type in the ``unknown`` counter the caller
passes (the sync logs the counts by type, never the value) and the item is kept with the value below:

| enum | kept as |
|---|---|
| NorwegianIdentificationNumberType | the kind the number itself has (store.identity.parse) |
| IdentificationStatus | iBruk when the item isValid, else opphoert |
| AddressConfidentiality (an address's, or protectionLevel) | strengtFortrolig: fail closed, never released |
| MaritalStatusType | uoppgitt (unspecified) |
| StayElsewhere | none (the address is kept without the reason) |
| Gender, PersonStatusType, FamilyRelationType | the item is left out (the store has no neutral value) |

Structural faults (a part that is not a list, an item that is not an object, a house number that is not a
number) raise :class:`store.errors.InvalidDocument` naming the field: the person is rejected, the sync
moves on.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from store import identity
from store.errors import InvalidDocument

__all__ = [
    "ADDRESS_PARTS",
    "EVENT_TYPES",
    "Doc",
    "person_json",
    "store_document",
]

Doc = dict[str, Any]
Json = Mapping[str, Any]

# -- value sets (Persontjenesten enum → store value) --------------------------------------------------

_ID_KIND = {"NationalIdentityNumber": "fnr", "DNumber": "dnr", "AlternateIdentificationNumber": "fh"}
_ID_STATUS = {"InUse": "iBruk", "Discontinued": "opphoert"}
_GENDER = {"Female": "kvinne", "Male": "mann"}
_STATUS = {"Resident": "bosatt", "Emigrated": "utflyttet", "Disappeared": "forsvunnet", "Deceased": "doed",
           "Discontinued": "opphoert", "RegisteredAtBirth": "foedselsregistrert", "Temporary": "midlertidig",
           "Inactive": "inaktiv", "NotResident": "ikkeBosatt", "Active": "aktiv"}
_PROTECTION = {"Unclassified": "ugradert", "ClientAddress": "klientadresse", "Confidential": "fortrolig",
               "StrictlyConfidential": "strengtFortrolig"}
_MARITAL = {"Unspecified": "uoppgitt", "Unmarried": "ugift", "Married": "gift", "WidowOrWidower": "enkeEllerEnkemann",
            "Divorced": "skilt", "Separated": "separert", "RegisteredPartner": "registrertPartner",
            "SeparatedPartner": "separertPartner", "DivorcedPartner": "skiltPartner",
            "SurvivingPartner": "gjenlevendePartner"}
_ROLE = {"Mother": "mor", "Father": "far", "CoMother": "medmor", "Child": "barn", "Sibling": "soesken",
         "SpouseOrPartner": "ektefelleEllerPartner", "StillbornChild": "doedfoedtBarn"}
_STAY = {"Military": "militaer", "Abroad": "utenriks", "OnSvalbard": "paaSvalbard", "Commuter": "pendler"}


def _inverse(m: Mapping[str, str]) -> dict[str, str]:
    return {v: k for k, v in m.items()}


#: Person key of each address part → the store's address type.
ADDRESS_PARTS = {"residentialAddress": "bosted", "presentAddress": "opphold", "sharedResidence": "deltBosted",
                 "postalAddress": "post", "foreignPostalAddress": "postUtland"}

#: FREG hendelsestype (the feed files' eventType, docs/data-formats.md) → Persontjenesten EventType.
EVENT_TYPES = {
    "personErOpprettet": "PersonIsCreated", "personErReaktivert": "PersonIsReactivated",
    "personErOppdatert": "PersonIsUpdated", "personErOpphoert": "PersonIsDiscontinued",
    "personErViderefoertPaaAnnetIdentifikasjonsnummer": "PersonIsContinuedAsValidUponMerger",
    "personErOpphoertSomDublett": "PersonIsDiscontinuedAsDuplicate", "personErDoed": "PersonIsDeceased",
    "personErBosatt": "PersonIsResident", "personErUtflyttet": "PersonIsEmigrated",
    "endringIStatus": "ChangeInStatus", "endringIIdentifikasjonsnummer": "ChangeInNorwegianIdentificationNumber",
    "endringIFolkeregisteridentifikator": "ChangeInNorwegianIdentificationNumber",
    "endringIDeltBosted": "ChangeInSharedResidence", "endringIFoedsel": "ChangeInBirth",
    "endringIKjoenn": "ChangeInGender", "endringIFamilierelasjon": "ChangeInFamilyRelation",
    "endringISivilstand": "ChangeInMaritalStatus", "endringIDoedsfall": "ChangeInDeath",
    "endringINavn": "ChangeInName", "endringIAdressebeskyttelse": "ChangeInAddressProtection",
    "endringIBostedsadresse": "ChangeInResidentialAddress", "endringIOppholdsadresse": "ChangeInPresentAddress",
    "endringIPostadresse": "ChangeInPostalAddress", "endringIPostadresseIUtlandet": "ChangeInForeignPostalAddress",
    "endringIStatsborgerskap": "ChangeInCitizenship", "endringIInnflytting": "ChangeInImmigrationToNorway",
    "endringIUtflytting": "ChangeInEmigrationFromNorway",
}


# -- reading the API's values --------------------------------------------------------------------------


def _is_object(v: Any) -> bool:
    return type(v) is dict or isinstance(v, Mapping)  # parsed JSON is a dict: the ABC check only otherwise


def _list(person: Json, key: str) -> list[Json]:
    raw = person.get(key)
    if raw is None:
        return []
    if type(raw) is not list:
        if _is_object(raw):  # `death` is one object in the v2 contract; a list is taken as well
            raw = [raw]
        elif not isinstance(raw, list):
            raise InvalidDocument("not a list", field=key)
    if not all(type(item) is dict for item in raw):
        for i, item in enumerate(raw):
            if not _is_object(item):
                raise InvalidDocument("not an object", field=f"{key}[{i}]")
    return raw  # type: ignore[no-any-return]


def _obj(item: Json, key: str, field: str) -> Json | None:
    v = item.get(key)
    if v is None:
        return None
    if not _is_object(v):
        raise InvalidDocument("not an object", field=f"{field}.{key}")
    return v  # type: ignore[no-any-return]


def _day(v: Any, field: str, sub: str = "") -> str | None:
    """A date-time of the API as the store's date (its date part: the API says time and zone of dates such
    as birthDate are unknown and must be ignored). The field named in an error is ``field + sub``."""
    if v is None:
        return None
    if not isinstance(v, str) or len(v) < 10:
        raise InvalidDocument("not a date-time", field=field + sub)
    return v[:10]  # from_document checks it is a date


def _instant(v: Any, field: str, sub: str = "") -> str | None:
    """registeredAt as the store's UTC ``YYYY-MM-DDTHH:MM:SSZ``."""
    if v is None:
        return None
    if not isinstance(v, str):
        raise InvalidDocument("not a date-time", field=field + sub)
    if len(v) == 25 and v.endswith("+00:00") and v[10] == "T" and v[:19].replace("-", "").replace("T", "").replace(
            ":", "").isdigit():  # the usual form, UTC to the second: no parsing needed
        return v[:19] + "Z"
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00") if v.endswith("Z") else v)
    except ValueError:
        raise InvalidDocument("not a date-time (ISO 8601)", field=field + sub) from None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return t.isoformat(timespec="seconds") + "Z"


def _meta(item: Json, field: str) -> Doc:
    valid = item.get("isValid")
    if valid is None:
        valid = True
    elif valid is not True and valid is not False:
        raise InvalidDocument("not a boolean", field=f"{field}.isValid")
    start, end, registered = item.get("validFrom"), item.get("validTo"), item.get("registeredAt")
    return {"current": valid,
            "validFrom": None if start is None else _day(start, field, ".validFrom"),
            "validTo": None if end is None else _day(end, field, ".validTo"),
            "registeredAt": None if registered is None else _instant(registered, field, ".registeredAt"),
            "source": item.get("source")}


def _int(v: Any, field: str) -> int | None:
    if v is None or v == "":
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.isascii() and v.isdigit():
        return int(v)
    raise InvalidDocument("not a number", field=field)


class _Enums:
    """Enum lookups that count unknown values by enum type (module docstring)."""

    def __init__(self, unknown: Counter[str] | None) -> None:
        self.unknown = unknown if unknown is not None else Counter()

    def get(self, table: Mapping[str, str], value: Any, enum: str) -> str | None:
        if value is None:
            return None
        found = table.get(value) if isinstance(value, str) else None
        if found is None:
            self.unknown[enum] += 1
        return found


# -- Person → store document ---------------------------------------------------------------------------


def _identifier(item: Json, f: str, enums: _Enums) -> Doc:
    number = item.get("identificationNumber")
    meta = _meta(item, f)
    kind = enums.get(_ID_KIND, item.get("identificationNumberType"), "NorwegianIdentificationNumberType")
    if kind is None and isinstance(number, str):
        try:
            kind = identity.parse(number).kind.value
        except identity.InvalidIdentifier:
            kind = None  # from_document rejects the number, naming the field
    status = enums.get(_ID_STATUS, item.get("status"), "IdentificationStatus")
    if status is None:
        status = "iBruk" if meta["current"] else "opphoert"
    return {"number": number, "kind": kind, "status": status, **meta}


def _street_fields(street: Json, f: str) -> Doc:
    number = _obj(street, "addressNumber", f) or {}
    city = _obj(street, "city", f) or {}
    return {"street": street.get("addressName"),
            "houseNumber": _int(number.get("houseNumber"), f"{f}.addressNumber.houseNumber"),
            "houseLetter": number.get("houseLetter"), "unit": street.get("separatelyOccupiedUnitNumber"),
            "co": street.get("coAddressName"), "postnummer": city.get("postalCode"), "poststed": city.get("cityName"),
            "kommune": street.get("municipalityNumber")}


def _cadastral_fields(cad: Json, f: str) -> Doc:
    number = _obj(cad, "cadastralNumber", f) or {}
    city = _obj(cad, "city", f) or {}
    return {"gardsnummer": _int(number.get("municipalityLandNumber"), f"{f}.cadastralNumber.municipalityLandNumber"),
            "bruksnummer": _int(number.get("titleNumber"), f"{f}.cadastralNumber.titleNumber"),
            "festenummer": _int(number.get("leaseholdNumber"), f"{f}.cadastralNumber.leaseholdNumber"),
            "unit": cad.get("separatelyOccupiedUnitNumber"), "co": cad.get("coAddressName"),
            "street": cad.get("addressAdditionalName"), "postnummer": city.get("postalCode"),
            "poststed": city.get("cityName"), "kommune": number.get("municipalityNumber")}


_INTERNATIONAL_LINES = ("addressName", "building", "floorNumber", "housingUnit", "postBox")


def _international_fields(a: Json) -> Doc:
    """A structured foreign address as the store keeps foreign addresses: its lines and country."""
    lines = [a[k] for k in _INTERNATIONAL_LINES if isinstance(a.get(k), str) and a[k]]
    place = " ".join(x for x in (a.get("postCode"), a.get("cityOrPlaceName")) if isinstance(x, str) and x)
    lines += [place] if place else []
    lines += [a[k] for k in ("districtName", "region") if isinstance(a.get(k), str) and a[k]]
    return {"form": "utenlandsk", "lines": lines, "country": a.get("countryCode"), "co": a.get("coAddressName")}


def _free_international_fields(a: Json) -> Doc:
    lines = list(a.get("addressLine") or [])
    place = " ".join(x for x in (a.get("postCode"), a.get("cityOrPlaceName")) if isinstance(x, str) and x)
    return {"form": "utenlandsk", "lines": lines + ([place] if place else []), "country": a.get("countryCode")}


def _residence_fields(item: Json, f: str) -> Doc:
    """The forms of a residence-like address (residential, present, shared): street, cadastral, unknown."""
    street = _obj(item, "streetAddress", f)
    cadastral = _obj(item, "cadastralAddress", f)
    unknown = _obj(item, "unknownResidence", f)
    if street is not None:
        return {"form": "vegadresse", **_street_fields(street, f"{f}.streetAddress")}
    if cadastral is not None:
        return {"form": "matrikkeladresse", **_cadastral_fields(cadastral, f"{f}.cadastralAddress")}
    if unknown is not None:
        return {"form": "ukjentBosted", "kommune": unknown.get("municipalityNumber")}
    foreign = _obj(item, "foreignAddress", f)
    if foreign is not None:
        return _international_fields(foreign)
    if item.get("isAddressUnknown") is True:
        return {"form": "ukjentBosted"}
    raise InvalidDocument("an address without any address form", field=f)


def _contact_fields(item: Json, f: str) -> Doc:
    """The forms of a postal address: PO box, street, free form."""
    box = _obj(item, "postBoxAddress", f)
    street = _obj(item, "streetAddress", f)
    free = _obj(item, "freeFormPostalAddress", f)
    if box is not None:
        city = _obj(box, "city", f"{f}.postBoxAddress") or {}
        ident = box.get("postBoxIdentification")
        return {"form": "postboks", "lines": [ident] if ident else [], "co": box.get("postBoxOwner"),
                "postnummer": city.get("postalCode"), "poststed": city.get("cityName")}
    if street is not None:
        city = _obj(street, "city", f"{f}.streetAddress") or {}
        number = _obj(street, "streetAddressNumber", f"{f}.streetAddress") or {}
        return {"form": "vegadresse", "street": street.get("addressName"),
                "houseNumber": _int(number.get("houseNumber"), f"{f}.streetAddress.streetAddressNumber.houseNumber"),
                "houseLetter": number.get("houseLetter"), "unit": street.get("separatelyOccupiedUnitNumber"),
                "co": street.get("coAddressName"), "postnummer": city.get("postalCode"),
                "poststed": city.get("cityName")}
    if free is not None:
        city = _obj(free, "city", f"{f}.freeFormPostalAddress") or {}
        return {"form": "fritekst", "lines": list(free.get("addressLine") or free.get("adresselinje") or []),
                "postnummer": city.get("postalCode"), "poststed": city.get("cityName")}
    raise InvalidDocument("an address without any address form", field=f)


def _foreign_contact_fields(item: Json, f: str) -> Doc:
    structured = _obj(item, "foreignAddress", f)
    if structured is not None:
        return _international_fields(structured)
    free = _obj(item, "freeFormForeignAddress", f)
    if free is not None:
        return _free_international_fields(free)
    raise InvalidDocument("an address without any address form", field=f)


_EMPTY_ADDRESS: Doc = {"street": None, "houseNumber": None, "houseLetter": None, "unit": None, "co": None,
                       "gardsnummer": None, "bruksnummer": None, "festenummer": None, "lines": [], "country": None,
                       "postnummer": None, "poststed": None, "kommune": None, "bydel": None, "movedAt": None}


def _address(type_: str, item: Json, f: str, enums: _Enums) -> Doc:
    if type_ == "post":
        fields = _contact_fields(item, f)
    elif type_ == "postUtland":
        fields = _foreign_contact_fields(item, f)
    else:
        fields = _residence_fields(item, f)
    doc: Doc = {"type": type_, **_EMPTY_ADDRESS, **fields}
    doc["bydel"] = item.get("urbanDistrictCode") if type_ != "post" and type_ != "postUtland" else None
    level = item.get("addressConfidentiality")
    doc["protection"] = "ugradert" if level is None else (
        enums.get(_PROTECTION, level, "AddressConfidentiality") or "strengtFortrolig")
    if type_ == "bosted":
        doc["movedAt"] = _day(item.get("moveDate"), f"{f}.moveDate")
    elif type_ == "opphold":
        doc["movedAt"] = _day(item.get("presentAddressDate"), f"{f}.presentAddressDate")
        stay = enums.get(_STAY, item.get("stayElsewhere"), "StayElsewhere")
        if stay is not None:
            doc["stayElsewhere"] = stay
    elif type_ == "deltBosted":
        start = _day(item.get("contractValidFrom"), f"{f}.contractValidFrom")
        end = _day(item.get("contractValidTo"), f"{f}.contractValidTo")
        if start is not None:
            doc["contractFrom"] = start
        if end is not None:
            doc["contractTo"] = end
    return {**doc, **_meta(item, f)}


def _valued(items: Iterable[tuple[int, Json]], key: str, part: str, table: Mapping[str, str], enum: str,
            enums: _Enums) -> list[Doc]:
    out = []
    for i, item in items:
        value = enums.get(table, item.get(key), enum)
        if value is not None:
            out.append({"value": value, **_meta(item, f"{part}[{i}]")})
    return out


def store_document(person: Any, unknown: Counter[str] | None = None) -> Doc:
    """A Persontjenesten ``Person`` as a person document (not yet validated: pass it to
    :func:`store.document.from_document`). ``unknown`` counts enum values the contract does not list, by enum
    type. Raises :class:`InvalidDocument` for a structurally broken person."""
    if not isinstance(person, Mapping):
        raise InvalidDocument("a person must be a JSON object")
    key = person.get("id")
    if not isinstance(key, str) or not key:
        raise InvalidDocument("missing", field="id")
    enums = _Enums(unknown)

    def each(part: str) -> list[tuple[int, Json]]:
        return list(enumerate(_list(person, part)))

    addresses = [_address(type_, item, f"{part}[{i}]", enums)
                 for part, type_ in ADDRESS_PARTS.items() for i, item in each(part)]
    marital = []
    for i, m in each("maritalStatus"):
        value = enums.get(_MARITAL, m.get("status"), "MaritalStatusType")
        if value is None and m.get("status") is not None:
            value = "uoppgitt"
        if value is not None:
            marital.append({"value": value, "spouse": m.get("relatedByMaritalStatus"),
                            "date": _day(m.get("statusDate"), f"maritalStatus[{i}].statusDate"),
                            **_meta(m, f"maritalStatus[{i}]")})
    relations = []
    for i, r in each("familyRelation"):
        role = enums.get(_ROLE, r.get("relatedPersonsRole"), "FamilyRelationType")
        mine = r.get("myRoleForRelatedPerson")
        my_role = enums.get(_ROLE, mine, "FamilyRelationType")
        if role is not None and (mine is None or my_role is not None):
            relations.append({"relatedNumber": r.get("relatedPerson"), "relatedRole": role, "myRole": my_role,
                              **_meta(r, f"familyRelation[{i}]")})
    protection = []
    for i, p in each("addressProtection"):
        level = p.get("protectionLevel")
        if level is not None:
            protection.append({"level": enums.get(_PROTECTION, level, "AddressConfidentiality") or "strengtFortrolig",
                               **_meta(p, f"addressProtection[{i}]")})
    return {
        "personId": key,
        "identifiers": [_identifier(x, f"norwegianIdentificationNumber[{i}]", enums)
                        for i, x in each("norwegianIdentificationNumber")],
        "names": [{"given": n.get("givenName"), "middle": n.get("middleName"), "family": n.get("familyName"),
                   **_meta(n, f"name[{i}]")} for i, n in each("name")],
        "birth": [{"date": _day(b.get("birthDate"), f"birth[{i}].birthDate"),
                   "year": _int(b.get("birthYear"), f"birth[{i}].birthYear"), "place": b.get("birthPlace"),
                   "kommune": b.get("birthMunicipalityNumber"), "country": b.get("birthCountry"),
                   **_meta(b, f"birth[{i}]")} for i, b in each("birth")],
        "gender": _valued(each("gender"), "gender", "gender", _GENDER, "Gender", enums),
        "status": _valued(each("status"), "status", "status", _STATUS, "PersonStatusType", enums),
        "death": [{"date": _day(d.get("deceasedDate"), f"death[{i}].deceasedDate"), **_meta(d, f"death[{i}]")}
                  for i, d in each("death")],
        "addresses": addresses,
        "protection": protection,
        "maritalStatus": marital,
        "citizenship": [{"country": c.get("countryCode"),
                         "acquired": _day(c.get("aquiredDate"), f"citizenship[{i}].aquiredDate"),
                         **_meta(c, f"citizenship[{i}]")} for i, c in each("citizenship")],
        "relations": relations,
    }


# -- store document → Person (the fake's and the tests' direction) ---------------------------------------


def _at(day: str | None) -> str | None:
    return None if day is None else f"{day}T00:00:00+00:00"


def _api_meta(d: Json) -> Doc:
    reg = d.get("registeredAt")
    return {"isValid": d.get("current", True), "validFrom": _at(d.get("validFrom")), "validTo": _at(d.get("validTo")),
            "registeredAt": None if reg is None else reg[:-1] + "+00:00" if reg.endswith("Z") else reg,
            "source": d.get("source"), "reason": None}


def _city(a: Json) -> Doc | None:
    if a.get("postnummer") is None and a.get("poststed") is None:
        return None
    return {"postalCode": a.get("postnummer"), "cityName": a.get("poststed")}


def _api_street(a: Json) -> Doc:
    number = None
    if a.get("houseNumber") is not None or a.get("houseLetter") is not None:
        hn = a.get("houseNumber")
        number = {"houseNumber": None if hn is None else str(hn), "houseLetter": a.get("houseLetter")}
    return {"municipalityNumber": a.get("kommune"), "addressName": a.get("street"), "addressNumber": number,
            "separatelyOccupiedUnitNumber": a.get("unit"), "coAddressName": a.get("co"), "city": _city(a)}


def _api_cadastral(a: Json) -> Doc:
    return {"cadastralNumber": {"municipalityNumber": a.get("kommune"), "municipalityLandNumber": a.get("gardsnummer"),
                                "titleNumber": a.get("bruksnummer"), "leaseholdNumber": a.get("festenummer")},
            "separatelyOccupiedUnitNumber": a.get("unit"), "coAddressName": a.get("co"),
            "addressAdditionalName": a.get("street"), "city": _city(a)}


def _api_international(a: Json) -> Doc:
    """The store's foreign lines as a structured address that :func:`_international_fields` reads back the same
    (one line a field, in its order; a sixth line on goes to cityOrPlaceName, districtName, region)."""
    lines = list(a.get("lines") or [])
    keys = (*_INTERNATIONAL_LINES, "cityOrPlaceName", "districtName", "region")
    out: Doc = dict.fromkeys(keys)
    for k, line in zip(keys, lines, strict=False):
        out[k] = line
    if len(lines) > len(keys):
        out["region"] = ", ".join(lines[len(keys) - 1:])
    return {**out, "coAddressName": a.get("co"), "countryCode": a.get("country"), "postCode": None}


def _api_residence(a: Json) -> Doc:
    form = a.get("form")
    if form == "vegadresse":
        return {"streetAddress": _api_street(a)}
    if form == "matrikkeladresse":
        return {"cadastralAddress": _api_cadastral(a)}
    if form == "utenlandsk":
        return {"foreignAddress": _api_international(a)}
    return {"unknownResidence": {"municipalityNumber": a.get("kommune")}}


def _api_contact(a: Json) -> Doc:
    form = a.get("form")
    if form == "postboks":
        lines = a.get("lines") or []
        return {"postBoxAddress": {"postBoxOwner": a.get("co"), "postBoxIdentification": lines[0] if lines else None,
                                   "city": _city(a)}}
    if form == "vegadresse":
        number = _api_street(a)["addressNumber"]
        return {"streetAddress": {"coAddressName": a.get("co"), "addressName": a.get("street"),
                                  "streetAddressNumber": number, "city": _city(a),
                                  "separatelyOccupiedUnitNumber": a.get("unit")}}
    return {"freeFormPostalAddress": {"addressLine": list(a.get("lines") or []), "city": _city(a)}}


_PROTECTION_OUT = _inverse(_PROTECTION)
_PART_OF_TYPE = _inverse(ADDRESS_PARTS)
_STAY_OUT = _inverse(_STAY)
_GENDER_OUT, _STATUS_OUT, _ROLE_OUT = _inverse(_GENDER), _inverse(_STATUS), _inverse(_ROLE)
_ID_KIND_OUT, _ID_STATUS_OUT, _MARITAL_OUT = _inverse(_ID_KIND), _inverse(_ID_STATUS), _inverse(_MARITAL)


def _api_address(a: Json) -> Doc:
    type_ = a["type"]
    out: Doc = {"addressConfidentiality": _PROTECTION_OUT.get(a.get("protection", "ugradert")), **_api_meta(a)}
    if type_ == "post":
        out.update(_api_contact(a))
        return out
    if type_ == "postUtland":
        out["freeFormForeignAddress"] = {"addressLine": list(a.get("lines") or []), "postCode": None,
                                         "cityOrPlaceName": None, "countryCode": a.get("country")}
        return out
    fields = _api_residence(a)
    if type_ == "opphold" and "unknownResidence" in fields:
        fields = {"isAddressUnknown": True}
    out.update(fields)
    out["urbanDistrictCode"] = a.get("bydel")
    if type_ == "bosted":
        out["moveDate"] = _at(a.get("movedAt"))
    elif type_ == "opphold":
        out["presentAddressDate"] = _at(a.get("movedAt"))
        stay = _STAY_OUT.get(a.get("stayElsewhere") or "")
        if stay is not None:  # an enum, not nullable: absent when there is none
            out["stayElsewhere"] = stay
    elif type_ == "deltBosted":
        if a.get("contractFrom") is not None:  # date-time, not nullable: absent when unknown
            out["contractValidFrom"] = _at(a.get("contractFrom"))
        out["contractValidTo"] = _at(a.get("contractTo"))
    return out


_PART_KEYS: dict[str, str] = {  # InformationPart → Person key it fills
    "NorwegianIdentificationNumber": "norwegianIdentificationNumber", "Name": "name", "Birth": "birth",
    "Gender": "gender", "Status": "status", "Death": "death", "ResidentialAddress": "residentialAddress",
    "PresentAddress": "presentAddress", "SharedResidence": "sharedResidence", "PostalAddress": "postalAddress",
    "ForeignPostalAddress": "foreignPostalAddress", "AddressProtection": "addressProtection",
    "MaritalStatus": "maritalStatus", "Citizenship": "citizenship", "FamilyRelation": "familyRelation",
}


def person_json(doc: Json, *, parts: Collection[str] | None = None, include_history: bool = True,
                sequence_number: int | None = None) -> Doc:
    """A person document as a Persontjenesten ``Person`` (the fake's answers): only the keys of the
    InformationParts in ``parts`` (all that pregbridge maps when None); without ``include_history`` only the
    items that are valid."""
    def keep(items: Iterable[Json]) -> list[Json]:
        return [x for x in items if include_history or x.get("current", True)]

    gender_out, status_out, role_out = _GENDER_OUT, _STATUS_OUT, _ROLE_OUT
    kind_out, id_status_out, marital_out = _ID_KIND_OUT, _ID_STATUS_OUT, _MARITAL_OUT
    full: Doc = {
        "norwegianIdentificationNumber": [
            {"identificationNumber": i["number"], "identificationNumberType": kind_out.get(i["kind"]),
             "status": id_status_out.get(i.get("status", "iBruk")), **_api_meta(i)}
            for i in keep(doc.get("identifiers") or []) if i["kind"] in kind_out],
        "name": [{"givenName": n.get("given"), "middleName": n.get("middle"), "familyName": n.get("family"),
                  "shortName": None, **_api_meta(n)} for n in keep(doc.get("names") or [])],
        "birth": [{"birthDate": _at(b.get("date")), "birthYear": None if b.get("year") is None else str(b["year"]),
                   "birthPlace": b.get("place"), "birthMunicipalityNumber": b.get("kommune"),
                   "birthCountry": b.get("country"), **_api_meta(b)} for b in keep(doc.get("birth") or [])],
        "gender": [{"gender": gender_out[g["value"]], **_api_meta(g)} for g in keep(doc.get("gender") or [])],
        "status": [{"status": status_out[s["value"]], **_api_meta(s)} for s in keep(doc.get("status") or [])],
        "addressProtection": [{"protectionLevel": _PROTECTION_OUT[p["level"]], **_api_meta(p)}
                              for p in keep(doc.get("protection") or [])],
        "maritalStatus": [{"status": marital_out[m["value"]], "relatedByMaritalStatus": m.get("spouse"),
                           "statusDate": _at(m.get("date")), **_api_meta(m)}
                          for m in keep(doc.get("maritalStatus") or [])],
        "citizenship": [{"countryCode": c.get("country"), "aquiredDate": _at(c.get("acquired")), **_api_meta(c)}
                        for c in keep(doc.get("citizenship") or [])],
        "familyRelation": [{"relatedPerson": r.get("relatedNumber"), "relatedPersonsRole": role_out[r["relatedRole"]],
                            **({"myRoleForRelatedPerson": role_out[r["myRole"]]} if r.get("myRole") else {}),
                            **_api_meta(r)}
                           for r in keep(doc.get("relations") or [])],
    }
    deaths = keep(doc.get("death") or [])  # one object in the contract: the current item, else the latest
    death = next((d for d in deaths if d.get("current", True)), deaths[-1] if deaths else None)
    if death is not None:  # Person.death is allOf + nullable: absent, never null (OpenAPI 3.0.3)
        full["death"] = {"deceasedDate": _at(death.get("date")), **_api_meta(death)}
    for part in ADDRESS_PARTS:
        full[part] = []
    for a in keep(doc.get("addresses") or []):
        full[_PART_OF_TYPE[a["type"]]].append(_api_address(a))
    wanted = set(_PART_KEYS) if parts is None else set(parts)
    out: Doc = {"id": doc["personId"], "sequenceNumber": sequence_number}
    for part, key in _PART_KEYS.items():
        if part in wanted and key in full:
            out[key] = full[key]
    return out
