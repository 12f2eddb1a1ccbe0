"""Person documents (docs/data-formats.md) to and from :class:`store.model.Person`, with the store's rules.

``from_document`` is the one place where a person enters the store from outside (bulk load, change
feed, tests): it checks the closed value sets, dates, identity numbers and the one-current-item rule,
and raises :class:`InvalidDocument` naming the field (never the value: values may be patient data).
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import orjson

from store import identity
from store.errors import InvalidDocument
from store.model import (
    ADDRESS_FORMS,
    ADDRESS_ORDER,
    ADDRESS_TYPES,
    GENDERS,
    MARITAL_STATUSES,
    PERSON_STATUSES,
    PROTECTION_LEVELS,
    RELATION_ROLES,
    STAY_ELSEWHERE,
    Address,
    Birth,
    Citizenship,
    Death,
    Identifier,
    IdentifierStatus,
    MaritalStatus,
    Meta,
    Name,
    Person,
    Protection,
    Relation,
    Value,
)

__all__ = ["FORMAT_DEFLATE_1", "StoredFormatError", "decode_stored", "deflate_1", "dump_stored", "from_document",
           "from_stored", "load_stored", "to_document"]

Doc = Mapping[str, Any]
T = TypeVar("T")
_ID_KINDS = frozenset(k.value for k in identity.IdKind)
_ID_STATUSES = frozenset(s.value for s in IdentifierStatus)
_ADDRESS_RANK = {t: i for i, t in enumerate(ADDRESS_ORDER)}


def _date(v: Any, field: str) -> dt.date | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise InvalidDocument("not a date", field=field)
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        raise InvalidDocument("not a date (YYYY-MM-DD)", field=field) from None


def _datetime(v: Any, field: str) -> dt.datetime | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise InvalidDocument("not a date-time", field=field)
    try:
        t = dt.datetime.fromisoformat(v)
    except ValueError:
        raise InvalidDocument("not a date-time (ISO 8601)", field=field) from None
    # The store keeps naive UTC (SQLite has no time zones); documents say "Z".
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _str(v: Any, field: str, *, required: bool = False, max_len: int = 200) -> str | None:
    if v is None or v == "":
        if required:
            raise InvalidDocument("missing", field=field)
        return None
    if not isinstance(v, str) or len(v) > max_len:
        raise InvalidDocument(f"not a string of at most {max_len} characters", field=field)
    return v


_INT_LIMIT = 2**31  # every integer of a person (years, house and matrikkel numbers) is far below; the store's
# derived views are JSON that orjson writes only up to 64 bits, and SQL integer columns are 32 or 64 bits


def _int(v: Any, field: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidDocument("not an integer", field=field)
    if not -_INT_LIMIT < v < _INT_LIMIT:
        raise InvalidDocument("integer out of range", field=field)
    return v


def _code(v: Any, field: str, allowed: Iterable[str]) -> str:
    if v not in allowed:
        raise InvalidDocument("not an allowed value", field=field)
    return str(v)


def _digits(v: Any, field: str, n: int) -> str | None:
    s = _str(v, field)
    if s is not None and (len(s) != n or not s.isdigit()):
        raise InvalidDocument(f"not {n} digits", field=field)
    return s


def _meta(d: Doc, field: str) -> Meta:
    current = d.get("current", True)
    if not isinstance(current, bool):
        raise InvalidDocument("not a boolean", field=f"{field}.current")
    return Meta(
        current=current,
        valid_from=_date(d.get("validFrom"), f"{field}.validFrom"),
        valid_to=_date(d.get("validTo"), f"{field}.validTo"),
        registered_at=_datetime(d.get("registeredAt"), f"{field}.registeredAt"),
        source=_str(d.get("source"), f"{field}.source"),
    )


def _items(doc: Doc, key: str, make: Callable[[Doc, str], T], *, one_current: bool = True) -> tuple[T, ...]:
    raw = doc.get(key) or []
    if not isinstance(raw, list):
        raise InvalidDocument("not a list", field=key)
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidDocument("not an object", field=f"{key}[{i}]")
        out.append(make(item, f"{key}[{i}]"))
    if one_current and sum(1 for o in out if getattr(o, "meta").current) > 1:  # noqa: B009 (T is any item)
        raise InvalidDocument("more than one current item", field=key)
    return tuple(out)


def _identifier(d: Doc, f: str) -> Identifier:
    number = _str(d.get("number"), f"{f}.number", required=True, max_len=11) or ""
    kind = _code(d.get("kind"), f"{f}.kind", _ID_KINDS)
    try:
        parsed = identity.parse(number)
    except identity.InvalidIdentifier as exc:
        raise InvalidDocument(f"invalid identity number ({exc.reason})", field=f"{f}.number") from None
    if parsed.kind != kind:
        raise InvalidDocument(f"number is a {parsed.kind.value}, not a {kind}", field=f"{f}.kind")
    status = _code(d.get("status", "iBruk"), f"{f}.status", _ID_STATUSES)
    return Identifier(number, kind, status, _meta(d, f))


def _name(d: Doc, f: str) -> Name:
    return Name(
        given=_str(d.get("given"), f"{f}.given", required=True) or "",
        family=_str(d.get("family"), f"{f}.family", required=True) or "",
        middle=_str(d.get("middle"), f"{f}.middle"),
        meta=_meta(d, f),
    )


def _birth(d: Doc, f: str) -> Birth:
    date = _date(d.get("date"), f"{f}.date")
    year = _int(d.get("year"), f"{f}.year")
    if year is None and date is not None:
        year = date.year
    return Birth(date, year, _str(d.get("place"), f"{f}.place"), _digits(d.get("kommune"), f"{f}.kommune", 4),
                 _str(d.get("country"), f"{f}.country", max_len=3), _meta(d, f))


def _value(allowed: frozenset[str]) -> Callable[[Doc, str], Value]:
    def make(d: Doc, f: str) -> Value:
        return Value(_code(d.get("value"), f"{f}.value", allowed), _meta(d, f))

    return make


def _death(d: Doc, f: str) -> Death:
    return Death(_date(d.get("date"), f"{f}.date"), _meta(d, f))


def _address(d: Doc, f: str) -> Address:
    lines = d.get("lines") or []
    if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
        raise InvalidDocument("not a list of strings", field=f"{f}.lines")
    return Address(
        type=_code(d.get("type"), f"{f}.type", ADDRESS_TYPES),
        form=_code(d.get("form"), f"{f}.form", ADDRESS_FORMS),
        street=_str(d.get("street"), f"{f}.street"),
        house_number=_int(d.get("houseNumber"), f"{f}.houseNumber"),
        house_letter=_str(d.get("houseLetter"), f"{f}.houseLetter", max_len=2),
        unit=_str(d.get("unit"), f"{f}.unit", max_len=10),
        co=_str(d.get("co"), f"{f}.co"),
        gardsnummer=_int(d.get("gardsnummer"), f"{f}.gardsnummer"),
        bruksnummer=_int(d.get("bruksnummer"), f"{f}.bruksnummer"),
        festenummer=_int(d.get("festenummer"), f"{f}.festenummer"),
        lines=tuple(lines),
        country=_str(d.get("country"), f"{f}.country", max_len=3),
        postnummer=_digits(d.get("postnummer"), f"{f}.postnummer", 4),
        poststed=_str(d.get("poststed"), f"{f}.poststed"),
        kommune=_digits(d.get("kommune"), f"{f}.kommune", 4),
        bydel=_digits(d.get("bydel"), f"{f}.bydel", 6),
        protection=_code(d.get("protection", "ugradert"), f"{f}.protection", PROTECTION_LEVELS),
        moved_at=_date(d.get("movedAt"), f"{f}.movedAt"),
        meta=_meta(d, f),
        contract_from=_date(d.get("contractFrom"), f"{f}.contractFrom"),
        contract_to=_date(d.get("contractTo"), f"{f}.contractTo"),
        stay_elsewhere=None if d.get("stayElsewhere") is None
        else _code(d.get("stayElsewhere"), f"{f}.stayElsewhere", STAY_ELSEWHERE),
    )


def _protection(d: Doc, f: str) -> Protection:
    return Protection(_code(d.get("level"), f"{f}.level", PROTECTION_LEVELS), _meta(d, f))


def _marital(d: Doc, f: str) -> MaritalStatus:
    return MaritalStatus(_code(d.get("value"), f"{f}.value", MARITAL_STATUSES),
                         _str(d.get("spouse"), f"{f}.spouse", max_len=11), _date(d.get("date"), f"{f}.date"),
                         _meta(d, f))


def _citizenship(d: Doc, f: str) -> Citizenship:
    return Citizenship(_str(d.get("country"), f"{f}.country", required=True, max_len=3) or "",
                       _date(d.get("acquired"), f"{f}.acquired"), _meta(d, f))


def _relation(d: Doc, f: str) -> Relation:
    my_role = d.get("myRole")
    return Relation(
        _str(d.get("relatedNumber"), f"{f}.relatedNumber", max_len=11),
        _code(d.get("relatedRole"), f"{f}.relatedRole", RELATION_ROLES),
        None if my_role is None else _code(my_role, f"{f}.myRole", RELATION_ROLES),
        _meta(d, f),
    )


def from_document(doc: Any) -> Person:
    """Validate a person document and return the Person; raises InvalidDocument."""
    if not isinstance(doc, Mapping):
        raise InvalidDocument("a person document must be a JSON object")
    key = _str(doc.get("personId"), "personId", required=True, max_len=64) or ""
    identifiers = _items(doc, "identifiers", _identifier, one_current=False)
    if not identifiers:
        raise InvalidDocument("a person needs at least one identifier", field="identifiers")
    # kept in the canonical order by type (store.model.ADDRESS_ORDER; stable within a type), whatever order a
    # file or the upstream gave: the faces list the primary address first
    addresses = tuple(sorted(_items(doc, "addresses", _address, one_current=False),
                             key=lambda a: _ADDRESS_RANK[a.type]))
    seen: set[str] = set()
    for a in addresses:
        if a.meta.current:
            if a.type in seen:
                raise InvalidDocument(f"more than one current {a.type} address", field="addresses")
            seen.add(a.type)
    return Person(
        person_key=key,
        identifiers=identifiers,
        names=_items(doc, "names", _name),
        birth=_items(doc, "birth", _birth),
        gender=_items(doc, "gender", _value(GENDERS)),
        status=_items(doc, "status", _value(PERSON_STATUSES)),
        death=_items(doc, "death", _death),
        addresses=addresses,
        protection=_items(doc, "protection", _protection),
        marital_status=_items(doc, "maritalStatus", _marital),
        citizenship=_items(doc, "citizenship", _citizenship, one_current=False),
        relations=_items(doc, "relations", _relation, one_current=False),
    )


def _iso(v: dt.date | dt.datetime | None) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(timespec="seconds") + "Z"
    return v.isoformat()


def _m(meta: Meta) -> dict[str, Any]:
    return {"current": meta.current, "validFrom": _iso(meta.valid_from), "validTo": _iso(meta.valid_to),
            "registeredAt": _iso(meta.registered_at), "source": meta.source}


def _address_extras(a: Address) -> dict[str, Any]:
    """The address keys added after the first layout (shared residence's contract, present address's
    stayElsewhere), written only when set: documents of persons without them stay byte for byte as before."""
    out: dict[str, Any] = {}
    if a.contract_from is not None:
        out["contractFrom"] = a.contract_from.isoformat()
    if a.contract_to is not None:
        out["contractTo"] = a.contract_to.isoformat()
    if a.stay_elsewhere is not None:
        out["stayElsewhere"] = a.stay_elsewhere
    return out


def to_document(p: Person) -> dict[str, Any]:
    """The person as a document of docs/data-formats.md (the inverse of from_document)."""
    return {
        "personId": p.person_key,
        "identifiers": [{"number": i.number, "kind": i.kind, "status": i.status, **_m(i.meta)}
                        for i in p.identifiers],
        "names": [{"given": n.given, "middle": n.middle, "family": n.family, **_m(n.meta)} for n in p.names],
        "birth": [{"date": _iso(b.date), "year": b.year, "place": b.place, "kommune": b.kommune,
                   "country": b.country, **_m(b.meta)} for b in p.birth],
        "gender": [{"value": g.value, **_m(g.meta)} for g in p.gender],
        "status": [{"value": s.value, **_m(s.meta)} for s in p.status],
        "death": [{"date": _iso(d.date), **_m(d.meta)} for d in p.death],
        "addresses": [
            {"type": a.type, "form": a.form, "street": a.street, "houseNumber": a.house_number,
             "houseLetter": a.house_letter, "unit": a.unit, "co": a.co, "gardsnummer": a.gardsnummer,
             "bruksnummer": a.bruksnummer, "festenummer": a.festenummer, "lines": list(a.lines),
             "country": a.country, "postnummer": a.postnummer, "poststed": a.poststed, "kommune": a.kommune,
             "bydel": a.bydel, "protection": a.protection, "movedAt": _iso(a.moved_at), **_m(a.meta),
             **_address_extras(a)}
            for a in p.addresses
        ],
        "protection": [{"level": x.level, **_m(x.meta)} for x in p.protection],
        "maritalStatus": [{"value": m.value, "spouse": m.spouse, "date": _iso(m.date), **_m(m.meta)}
                          for m in p.marital_status],
        "citizenship": [{"country": c.country, "acquired": _iso(c.acquired), **_m(c.meta)} for c in p.citizenship],
        "relations": [{"relatedNumber": r.related_number, "relatedRole": r.related_role, "myRole": r.my_role,
                       **_m(r.meta)} for r in p.relations],
    }


# -- stored documents -------------------------------------------------------------------------------
# Documents in the store were validated by from_document and written by to_document, so reading them
# back needs no checks: a plain decoder is ~3× faster, and lookups decode one document per call.


def _d(v: str | None) -> dt.date | None:
    return None if v is None else dt.date.fromisoformat(v)


def _sm(d: Doc) -> Meta:
    reg = d["registeredAt"]
    return Meta(d["current"], _d(d["validFrom"]), _d(d["validTo"]),
                None if reg is None else dt.datetime.fromisoformat(reg[:-1] if reg.endswith("Z") else reg),
                d["source"])


def _stored_address(a: Doc, meta: Meta) -> Address:
    return Address(a["type"], a["form"], a["street"], a["houseNumber"], a["houseLetter"], a["unit"], a["co"],
                   a["gardsnummer"], a["bruksnummer"], a["festenummer"], tuple(a["lines"]), a["country"],
                   a["postnummer"], a["poststed"], a["kommune"], a["bydel"], a["protection"], _d(a["movedAt"]), meta,
                   _d(a.get("contractFrom")), _d(a.get("contractTo")), a.get("stayElsewhere"))


def from_stored(doc: Doc) -> Person:
    """A person from a document this store wrote (to_document's output); no validation."""
    return Person(
        person_key=doc["personId"],
        identifiers=tuple(Identifier(i["number"], i["kind"], i["status"], _sm(i)) for i in doc["identifiers"]),
        names=tuple(Name(n["given"], n["family"], n["middle"], _sm(n)) for n in doc["names"]),
        birth=tuple(Birth(_d(b["date"]), b["year"], b["place"], b["kommune"], b["country"], _sm(b))
                    for b in doc["birth"]),
        gender=tuple(Value(g["value"], _sm(g)) for g in doc["gender"]),
        status=tuple(Value(v["value"], _sm(v)) for v in doc["status"]),
        death=tuple(Death(_d(x["date"]), _sm(x)) for x in doc["death"]),
        # in the order from_document keeps (documents stored before that order was kept read the same)
        addresses=tuple(sorted((_stored_address(a, _sm(a)) for a in doc["addresses"]),
                               key=lambda a: _ADDRESS_RANK[a.type])),
        protection=tuple(Protection(p["level"], _sm(p)) for p in doc["protection"]),
        marital_status=tuple(MaritalStatus(m["value"], m["spouse"], _d(m["date"]), _sm(m))
                             for m in doc["maritalStatus"]),
        citizenship=tuple(Citizenship(c["country"], _d(c["acquired"]), _sm(c)) for c in doc["citizenship"]),
        relations=tuple(Relation(r["relatedNumber"], r["relatedRole"], r["myRole"], _sm(r)) for r in doc["relations"]),
    )



# -- the stored form (``person.doc``) -------------------------------------------------------------------
# A person document is stored compressed: at ~2.2 kB of JSON a document took a 4 kB SQLite page to itself (two
# do not fit one page), 3.7 kB of the 4.7 kB a person cost at 100k persons (docs/store.md "Size"). Deflated
# with a preset dictionary of the document's own keys and closed value sets, it is ~240 bytes; inflating it
# costs ~10 µs, about half of what orjson.loads of the text costs. The first byte says the format:
#
#   ``{``   format 0: the JSON text itself (every row written before migration 0031; still read);
#   0x01    format 1: raw deflate (zlib, wbits -15) of the JSON text, with :data:`_ZDICT_1` as the dictionary.
#
# A format is frozen once written: a new dictionary or codec is a new first byte, and old rows stay readable.

FORMAT_DEFLATE_1 = 1

# Format 1's preset dictionary (frozen: never edit; a new one is a new format byte). Only the document's
# structure: keys, the closed value sets of store.model and a template person with placeholder values; deflate
# finds a string nearer the end of the dictionary in fewer bits, so the commonest (the template) comes last.
_META_1 = (',"current":true,"validFrom":"2000-01-01","validTo":null,"registeredAt":"2000-01-01T08:00:00Z",'
           '"source":"Skatteetaten"}')
_ZDICT_1 = (
    '"NHN" "fh" "hnr" "dnr" "opphoert" "doedfoedtBarn" "ektefelleEllerPartner" "medmor" "soesken" "far" "mor" '
    '"barn" "deltBosted" "postUtland" "opphold" "post" "postboks" "fritekst" "utenlandsk" "ukjentBosted" '
    '"matrikkeladresse" "militaer" "utenriks" "paaSvalbard" "pendler" "klientadresse" "strengtFortrolig" '
    '"fortrolig" "utflyttet" "forsvunnet" "foedselsregistrert" "midlertidig" "inaktiv" "ikkeBosatt" "aktiv" '
    '"doed" "uoppgitt" "enkeEllerEnkemann" "skilt" "separert" "registrertPartner" "separertPartner" '
    '"skiltPartner" "gjenlevendePartner" "kvinne" "contractFrom":"2000-01-01","contractTo":"2000-01-01",'
    '"stayElsewhere":'
    '{"personId":"p000000000","identifiers":[{"number":"00000000000","kind":"fnr","status":"iBruk"' + _META_1
    + '],"names":[{"given":"","middle":null,"family":""' + _META_1
    + '],"birth":[{"date":"2000-01-01","year":2000,"place":null,"kommune":"0301","country":"NOR"' + _META_1
    + '],"gender":[{"value":"mann"' + _META_1 + '],"status":[{"value":"bosatt"' + _META_1 + '],"death":[],'
    '"addresses":[{"type":"bosted","form":"vegadresse","street":"","houseNumber":1,"houseLetter":null,"unit":null,'
    '"co":null,"gardsnummer":null,"bruksnummer":null,"festenummer":null,"lines":[],"country":null,'
    '"postnummer":"0000","poststed":"","kommune":"0301","bydel":null,"protection":"ugradert",'
    '"movedAt":"2000-01-01"' + _META_1 + '],"protection":[{"level":"ugradert"' + _META_1
    + '],"maritalStatus":[{"value":"ugift","spouse":null,"date":null,"current":false,"validFrom":"1900-01-01",'
    '"validTo":"2000-01-01","registeredAt":"1900-01-01T08:00:00Z","source":"Skatteetaten"},{"value":"gift",'
    '"spouse":"00000000000","date":"2000-01-01"' + _META_1 + '],"citizenship":[{"country":"NOR","acquired":null'
    + _META_1 + '],"relations":[{"relatedNumber":"00000000000","relatedRole":"barn","myRole":"mor"' + _META_1
    + ']}').encode()
_HEAD_1 = bytes([FORMAT_DEFLATE_1])


class StoredFormatError(ValueError):
    """A stored document in no format this code reads (a newer release wrote it, or the row is damaged)."""


def deflate_1(text: bytes) -> bytes:
    """JSON text in stored format 1 (frozen: migration 0031 converts old rows with it)."""
    z = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, _ZDICT_1)
    return _HEAD_1 + z.compress(text) + z.flush()


def _inflate_1(raw: bytes) -> bytes:
    z = zlib.decompressobj(-15, _ZDICT_1)
    try:
        out = z.decompress(memoryview(raw)[1:])
    except zlib.error:
        raise StoredFormatError("a stored person document is damaged") from None
    if not z.eof:
        raise StoredFormatError("a stored person document is truncated")
    return out


def dump_stored(p: Person) -> bytes:
    """``p`` as stored in ``person.doc``: its document (:func:`to_document`) in the current format."""
    return deflate_1(orjson.dumps(to_document(p)))


def decode_stored(raw: str | bytes | memoryview) -> dict[str, Any]:
    """The document of a stored ``person.doc`` value, whichever format wrote it."""
    if isinstance(raw, str):  # format 0 read back as text (SQLite)
        return orjson.loads(raw)  # type: ignore[no-any-return]
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    head = raw[:1]
    if head == _HEAD_1:
        return orjson.loads(_inflate_1(raw))  # type: ignore[no-any-return]
    if head == b"{":  # format 0 as bytes (PostgreSQL's bytea after migration 0031, before its rows are converted)
        return orjson.loads(raw)  # type: ignore[no-any-return]
    raise StoredFormatError("a stored person document is in an unknown format")


def load_stored(raw: str | bytes | memoryview) -> Person:
    """The person of a stored ``person.doc`` value (:func:`decode_stored`, then :func:`from_stored`)."""
    return from_stored(decode_stored(raw))
