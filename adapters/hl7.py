"""HL7 v2 (ER7 text) ⇄ store types: pure functions, no I/O.

Encoding turns a person *view* (``server.access.MaskedPerson`` has this shape: an element the
caller's profile may not see is an empty tuple) into PID fields; a withheld element is an empty field
or component, so the structure stays. Decoding turns QPD-3 query parameters (IHE QIP
``@PID.x.y^value`` pairs, already unescaped) into :class:`store.search.SearchCriteria` or a
:class:`store.hjelpenummer.HjelpenummerRequest`.

Replies are assembled as strings with :func:`escape` rather than with hl7apy's typed builders: an
RSP^K22 with 10 PID segments took 42 ms to build with hl7apy 1.3.5 and 0.18 ms as strings, PID
encoding included (measured on the 2-vCPU development machine, Python 3.11; docs/hl7.md), and one
query must cost well under a millisecond. Every value passes
:func:`escape`, and the tests parse each reply with hl7apy to check it is well-formed HL7.

Identifier domains (PID-3, QPD-3/QPD-4/QPD-8 assigning authorities) per NHN and Skatteetaten:

| kind | HD-1 namespace | HD-2 OID (HD-3 ISO) | CX-5 type (table 0203) |
|---|---|---|---|
| fødselsnummer | FNR | 2.16.578.1.12.4.1.4.1 | NNNOR (national person identifier, Norway) |
| D-nummer | DNR | 2.16.578.1.12.4.1.4.2 | NNNOR |
| felles hjelpenummer | FHN | 2.16.578.1.12.4.1.4.3 | NI (national unique individual identifier) |
| H-nummer | HNR | (none, organisation-internal) | PI |

A ceased identifier carries its end date in CX-8 (expiration date).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.views import PersonView
from store.errors import InvalidInput
from store.hjelpenummer import HjelpenummerRequest
from store.model import IDENTIFIER_KIND_ORDER, Identifier, IdentifierStatus, current
from store.search import SearchCriteria

__all__ = [
    "ADDRESS_TYPE_CODES",
    "DOMAINS",
    "GENDER_CODES",
    "Domain",
    "MAX_QPD_PARAMETERS",
    "ParameterError",
    "PersonView",
    "QueryParameters",
    "cx",
    "cx_text",
    "domain_of",
    "escape",
    "hjelpenummer_request",
    "hl7_date",
    "masked_xad_text",
    "ordered_identifiers",
    "parse_date",
    "pid_segment",
    "query_parameters",
    "segment",
    "sorted_identifiers",
    "xad_text",
    "xpn_text",
]


@dataclass(frozen=True, slots=True)
class Domain:
    kind: str
    namespace: str
    oid: str | None
    type_code: str

    @property
    def authority(self) -> str:
        """HD with subcomponents, as in CX-4: ``FNR&2.16.578.1.12.4.1.4.1&ISO``."""
        return f"{self.namespace}&{self.oid}&ISO" if self.oid else self.namespace


DOMAINS: dict[str, Domain] = {d.kind: d for d in (
    Domain("fnr", "FNR", "2.16.578.1.12.4.1.4.1", "NNNOR"),
    Domain("dnr", "DNR", "2.16.578.1.12.4.1.4.2", "NNNOR"),
    Domain("fh", "FHN", "2.16.578.1.12.4.1.4.3", "NI"),
    Domain("hnr", "HNR", None, "PI"),
)}
GENDER_CODES = {"kvinne": "F", "mann": "M"}  # administrative sex (table 0001); other values U
_GENDER_IN = {"F": "kvinne", "M": "mann"}
ADDRESS_TYPE_CODES = {"bosted": "H", "deltBosted": "H", "post": "M", "postUtland": "M", "opphold": "C"}
_ESCAPES = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\",
                          "\r": "\\X0D\\", "\n": "\\X0A\\"})


class ParameterError(InvalidInput):
    """A query parameter is unknown or malformed; ``repetition`` is its 1-based QPD-3 repetition."""

    def __init__(self, message: str, *, repetition: int, code: str = "102") -> None:
        super().__init__(message)
        self.repetition = repetition
        self.hl7_error_code = code


def escape(value: object) -> str:
    """``value`` as ER7 text with the standard delimiters ``|^~\\&`` escaped (None → '')."""
    if value is None:
        return ""
    return str(value).translate(_ESCAPES)


def segment(name: str, *fields: str) -> str:
    """One segment from already-encoded fields (field 1 first); trailing empty fields are left out."""
    values = list(fields)
    while values and not values[-1]:
        values.pop()
    return "|".join([name, *values])


def _join(sep: str, parts: Sequence[str]) -> str:
    values = list(parts)
    while values and not values[-1]:
        values.pop()
    return sep.join(values)


def hl7_date(value: dt.date | None) -> str:
    """DT ``YYYYMMDD`` (the year always four digits: strftime's %Y gives three for a year below 1000)."""
    return f"{value.year:04d}{value.month:02d}{value.day:02d}" if value else ""


def parse_date(text: str) -> tuple[dt.date | None, int | None]:
    """(date, year) of an HL7 DT/DTM value: ``YYYYMMDD[hhmm…]`` gives both, ``YYYY`` the year only."""
    text = text.strip()
    if len(text) == 4 and text.isdigit():
        return None, int(text)
    if len(text) >= 8 and text[:8].isdigit():
        try:
            d = dt.datetime.strptime(text[:8], "%Y%m%d").date()
        except ValueError:
            raise ValueError("not a date") from None
        return d, d.year
    raise ValueError("not a date")


# -- identifiers -----------------------------------------------------------------------------------


def domain_of(authority: str) -> Domain | None:
    """The domain an HD (``FNR``, ``&2.16.578.1.12.4.1.4.1&ISO``, ``FNR&…&ISO``) names, or None."""
    parts = authority.split("&")
    namespace = parts[0].strip().upper()
    oid = parts[1].strip() if len(parts) > 1 else ""
    for d in DOMAINS.values():
        if (oid and oid == d.oid) or (namespace and namespace == d.namespace):
            return d
    return None


def cx(i: Identifier) -> str:
    """An identifier as CX: ``number^^^FNR&2.16.578.1.12.4.1.4.1&ISO^NNNOR`` (+ CX-8 when ceased)."""
    expires = hl7_date(i.meta.valid_to) if i.status == IdentifierStatus.CEASED else ""
    return cx_text(escape(i.number), i.kind, expires)


def cx_text(number: str, kind: str, expires: str) -> str:
    """CX of an already escaped ``number`` of ``kind``: assigning authority and type code from
    :data:`DOMAINS`, ``expires`` (YYYYMMDD, or empty) in CX-8."""
    d = DOMAINS.get(kind)
    return _join("^", [number, "", "", d.authority if d else "", d.type_code if d else "", "", "", expires])


def sorted_identifiers(identifiers: Iterable[Identifier], kinds: Iterable[str] | None = None) -> list[Identifier]:
    """The current number first, then other numbers in use, then ceased ones; only ``kinds`` if given."""
    wanted = set(kinds) if kinds is not None else None
    ids = [i for i in identifiers if wanted is None or i.kind in wanted]
    return sorted(ids, key=lambda i: (i.status != IdentifierStatus.IN_USE, IDENTIFIER_KIND_ORDER.get(i.kind, 9)))


def ordered_identifiers(p: PersonView, kinds: Iterable[str] | None = None) -> list[Identifier]:
    """The person's identifiers in PID-3 order (:func:`sorted_identifiers`)."""
    return sorted_identifiers(p.identifiers, kinds)


# -- PID -------------------------------------------------------------------------------------------


Escape = Callable[[object], str]


def xpn_text(family: str | None, given: str | None, middle: str | None, esc: Escape = escape) -> str:
    """XPN ``family^given^middle^^^^L`` (name type L, legal), each part through ``esc``."""
    return _join("^", [esc(family), esc(given), esc(middle), "", "", "", "L"])


def xad_text(type_: str, street: str | None, house_number: int | None, house_letter: str | None,
             lines: Sequence[str], co: str | None, poststed: str | None, postnummer: str | None,
             country: str | None, bydel: str | None, kommune: str | None, esc: Escape = escape, *,
             effective: str = "", expires: str = "") -> str:
    """XAD ``street housenumber^c/o or extra lines^poststed^^postnummer^country^type^bydel^kommune`` of an
    address released unmasked (a street address, or one of lines: the first line in place of the street);
    a shared residence's contract period (``YYYYMMDD``) in XAD-13 effective date and XAD-14 expiration date."""
    if street:
        line = f"{street} {house_number}" if house_number is not None else street
        if house_letter:
            line += house_letter
    else:
        line = lines[0] if lines else ""
    other = f"c/o {co}" if co else ", ".join(lines[1:]) if street is None else ""
    return _join("^", [esc(line), esc(other), esc(poststed), "", esc(postnummer),
                       esc(country or ("NOR" if postnummer else "")), ADDRESS_TYPE_CODES.get(type_, ""), esc(bydel),
                       esc(kommune), "", "", "", effective, expires])


def masked_xad_text(placeholder: str | None, type_: str, kommune: str | None, esc: Escape = escape) -> str:
    """XAD of a masked address: the placeholder in XAD-1, the type, and the kommune where it is kept."""
    return _join("^", [esc(placeholder), "", "", "", "", "", ADDRESS_TYPE_CODES.get(type_, ""), "", esc(kommune)])


def _xpn(p: PersonView) -> str:
    n = current(p.names)
    return "" if n is None else xpn_text(n.family, n.given, n.middle)


def _birth(p: PersonView) -> str:
    b = current(p.birth)
    if b is None:
        return ""
    if b.date:
        return hl7_date(b.date)
    return str(b.year) if b.year else ""


def _xad(a: Any) -> str:
    if getattr(a, "masked", False):
        return masked_xad_text(a.placeholder, a.type, a.kommune)
    return xad_text(a.type, a.street, a.house_number, a.house_letter, a.lines, a.co, a.poststed, a.postnummer,
                    a.country, a.bydel, a.kommune, effective=hl7_date(a.contract_from), expires=hl7_date(a.contract_to))


def _death(p: PersonView) -> tuple[str, str]:
    if not p.death and not p.status:
        return "", ""  # withheld (or never registered): both empty
    d = current(p.death)
    s = current(p.status)
    dead = bool(d and d.date) or bool(s and s.value == "doed")
    return (hl7_date(d.date) if d else ""), ("Y" if dead else "N")


def pid_segment(p: PersonView, set_id: int = 1, *, kinds: Iterable[str] | None = None,
                demographics: bool = True) -> str:
    """A PID segment: PID-1 set id, PID-3 identifiers (``kinds`` only, if given) and, with
    ``demographics``, PID-5 name, PID-7 birth, PID-8 sex, PID-11 current addresses, PID-29/30 death."""
    fields = [""] * 30
    fields[0] = str(set_id)
    fields[2] = "~".join(cx(i) for i in ordered_identifiers(p, kinds))
    if demographics:
        fields[4] = _xpn(p)
        fields[6] = _birth(p)
        g = current(p.gender)
        fields[7] = GENDER_CODES.get(g.value, "U") if g else ""
        fields[10] = "~".join(_xad(a) for a in p.addresses if a.meta.current)
        fields[28], fields[29] = _death(p)
    return segment("PID", *fields)


# -- QPD-3 parameters ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryParameters:
    """A PDQ query: an identifier (``@PID.3.1``) and/or search criteria."""

    identifier: str | None
    criteria: SearchCriteria


_PARAM_ALIASES = {
    "@PID.3": "id", "@PID.3.1": "id",
    "@PID.5.1": "family", "@PID.5.1.1": "family", "@PID.5.2": "given", "@PID.5.3": "middle",
    "@PID.7": "birth", "@PID.7.1": "birth",
    "@PID.8": "gender",
    "@PID.11.1": "street", "@PID.11.1.1": "street", "@PID.11.3": "poststed", "@PID.11.5": "postnummer",
    "@PID.11.6": "country", "@PID.11.9": "kommune",
}


MAX_QPD_PARAMETERS = 16  # QPD-3 repetitions one query may carry (PDQ knows 8 parameters, Q24 10)


def _named(params: Sequence[tuple[str, str]], allowed: frozenset[str]) -> dict[str, tuple[str, int]]:
    """QPD-3's parameters by name: at most :data:`MAX_QPD_PARAMETERS` repetitions, each parameter once
    (a second one would silently replace the first: one criterion per field, as the store's search has)."""
    if len(params) > MAX_QPD_PARAMETERS:
        raise ParameterError(f"more than {MAX_QPD_PARAMETERS} query parameters", repetition=MAX_QPD_PARAMETERS + 1,
                             code="104")
    out: dict[str, tuple[str, int]] = {}
    seen: set[str] = set()
    for n, (name, value) in enumerate(params, start=1):
        key = _PARAM_ALIASES.get(name.strip().upper().replace("@PID.", "@PID.", 1))
        if key is None or key not in allowed:
            raise ParameterError("query parameter not supported", repetition=n, code="103")
        if key in seen:
            raise ParameterError("query parameter given twice", repetition=n)
        seen.add(key)
        if value.strip():
            out[key] = (value.strip(), n)
    return out


def _gender(value: str, n: int) -> str | None:
    code = value.upper()
    if code in ("O", "U", "A", "N"):
        return None
    if code not in _GENDER_IN:
        raise ParameterError("administrative sex must be F, M, O or U", repetition=n, code="103")
    return _GENDER_IN[code]


def _date(value: str, n: int) -> tuple[dt.date | None, int | None]:
    try:
        return parse_date(value)
    except ValueError:
        raise ParameterError("date of birth must be YYYYMMDD or YYYY", repetition=n) from None


_PDQ = frozenset({"id", "family", "given", "birth", "gender", "street", "postnummer", "kommune"})
_FH = frozenset({"family", "given", "middle", "birth", "gender", "street", "poststed", "postnummer", "country",
                 "kommune"})


def query_parameters(params: Sequence[tuple[str, str]]) -> QueryParameters:
    """QPD-3 of a PDQ query (``(name, value)`` per repetition) → an identifier and search criteria."""
    p = _named(params, _PDQ)
    birth_date, birth_year = _date(*p["birth"]) if "birth" in p else (None, None)
    criteria = SearchCriteria(
        given=p["given"][0] if "given" in p else None,
        family=p["family"][0] if "family" in p else None,
        birth_date=birth_date,
        birth_year=None if birth_date else birth_year,
        gender=_gender(*p["gender"]) if "gender" in p else None,
        kommune=p["kommune"][0] if "kommune" in p else None,
        postnummer=p["postnummer"][0] if "postnummer" in p else None,
        street=p["street"][0] if "street" in p else None,
    )
    return QueryParameters(p["id"][0].split("^")[0] if "id" in p else None, criteria)


def hjelpenummer_request(params: Sequence[tuple[str, str]]) -> HjelpenummerRequest:
    """QPD-3 of an allocate-identifiers query (QBP^Q24) → a felles hjelpenummer request.

    Required: @PID.5.1 family, @PID.5.2 given, @PID.7 full birth date, @PID.8 F or M."""
    p = _named(params, _FH)
    for key, where in (("family", "@PID.5.1"), ("given", "@PID.5.2"), ("birth", "@PID.7"), ("gender", "@PID.8")):
        if key not in p:
            raise ParameterError(f"{where} is required", repetition=len(params) + 1, code="101")
    born, _ = _date(*p["birth"])
    if born is None:
        raise ParameterError("a full date of birth (YYYYMMDD) is required", repetition=p["birth"][1])
    gender = _gender(*p["gender"])
    if gender is None:
        raise ParameterError("administrative sex must be F or M", repetition=p["gender"][1], code="103")

    def get(key: str) -> str | None:
        return p[key][0] if key in p else None

    street, house = get("street"), None
    if street and street.rsplit(" ", 1)[-1][:1].isdigit() and " " in street:
        street, house = street.rsplit(" ", 1)
    return HjelpenummerRequest(given=p["given"][0], middle=get("middle"), family=p["family"][0], gender=gender,
                               birth_date=born, street=street, house_number=house, postnummer=get("postnummer"),
                               poststed=get("poststed"), kommune=get("kommune"), country=get("country"))
