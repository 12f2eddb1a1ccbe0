"""A person's brief: the current values a wash answer reads, flattened into one short text per person.

A Filematch wash answers millions of records, each from one person's *current* values (number, name,
birth, gender, status, death, the one address a wash reports, protection) and compares the client's
name and address with them by normalised keys. Decoding the stored document for that cost ~40 µs per
record and building the view and keys another ~40 µs (measured, docs/benchmarks.md); the brief is those
values computed once, when the person is written, and stored beside the document in ``person_brief``
(one row per person, replaced with the person by every write path: load, feed, save). Reading one is a
``str.split``.

Format: the fields of :data:`FIELDS` in order, joined by U+001F (unit separator), prefixed by
:data:`VERSION` and the separator. Control characters never occur in register values; a U+001F inside a
value is replaced by a space when the brief is built, so splitting is always exact. A brief whose version
is not :data:`VERSION` is refused (:func:`split_brief` raises), so a store written by an older brief
layout must be re-briefed: a change of layout is a new :data:`VERSION`, and ``pregbridge init`` (or
``pregbridge views rebuild``) rebuilds the briefs from the documents (store/derived.py).

Only what a wash needs is here; every other face reads the document. The address is the one a wash
reports: the person's address by the one rule of :mod:`store.addresses` (the first current address by type
in :data:`ADDRESS_ORDER`: bosted before opphold before post …).
"""

from __future__ import annotations

from store.addresses import primary_address
from store.model import ADDRESS_ORDER, Address, Person
from store.normalize import name_key, street_key

__all__ = ["ADDRESS_ORDER", "FIELDS", "SEP", "VERSION", "BriefVersionError", "brief_of", "split_brief", "wash_address"]

VERSION = "b1"
SEP = "\x1f"

#: The brief's fields, in order (index = position after the version).
FIELDS = (
    "number",  # the current identifier (fødselsnummer before D-nummer before felles hjelpenummer), or ""
    "given", "middle", "family",  # the current name
    "birth", "gender", "status", "death",  # ISO dates; gender kvinne|mann; Folkeregister status
    "protection",  # the person's strictest protection level in force (store.model.Person.protection_level)
    "addr_type", "addr_protection",  # the wash address's type ("" when there is none) and own protection level
    "addr_line",  # street and house number and letter, or the address lines joined by ", "
    "postnummer", "poststed", "kommune",
    "street", "house",  # street name, and house number + letter upper-cased (for comparison)
    "family_key", "given_key", "given_middle_key", "street_key",  # store.normalize keys
)
# positions in split_brief's list (the version is at 0), derived from FIELDS, the one list of the layout. The
# brief stays a list indexed by these names on purpose: as a NamedTuple (and the wash's shown fields as another)
# a wash of 5,000 records by number took 6 % more instructions (callgrind, 559M against 528M per wash, 2026-12-04;
# the suite's budget for the whole #12 change is 5 %). The PID view, read once per answered person, is a
# NamedTuple (store.current.CurrentView).
(NUMBER, GIVEN, MIDDLE, FAMILY, BIRTH, GENDER, STATUS, DEATH, PROTECTION, ADDR_TYPE, ADDR_PROTECTION, ADDR_LINE,
 POSTNUMMER, POSTSTED, KOMMUNE, STREET, HOUSE, FAMILY_KEY, GIVEN_KEY, GIVEN_MIDDLE_KEY,
 STREET_KEY) = range(1, len(FIELDS) + 1)
_PARTS = len(FIELDS) + 1


def wash_address(p: Person) -> Address | None:
    """The address a wash reports: :func:`store.addresses.primary_address`."""
    return primary_address(p)


def _clean(v: object) -> str:
    text = "" if v is None else str(v)
    return text.replace(SEP, " ") if SEP in text else text


def brief_of(p: Person) -> str:
    """The brief of ``p`` (module docstring)."""
    cur = p.current_identifier
    n = p.name
    birth, death = p.birth_date, p.death_date
    a = wash_address(p)
    values: list[object] = [
        cur.number if cur else "",
        n.given if n else "", (n.middle or "") if n else "", n.family if n else "",
        birth.isoformat() if birth else "", p.current_gender, p.current_status, death.isoformat() if death else "",
        p.protection_level,
    ]
    if a is None:
        values += [""] * 8
    else:
        house = f"{a.house_number or ''}{a.house_letter or ''}"
        line = f"{a.street} {house}".strip() if a.street else ", ".join(a.lines)
        values += [a.type, a.protection, line, a.postnummer, a.poststed, a.kommune, a.street, house.upper()]
    values += [
        name_key(n.family) if n else "",
        name_key(n.given) if n else "",
        name_key(f"{n.given} {n.middle or ''}") if n else "",
        street_key(a.street) if a is not None and a.street else "",
    ]
    return SEP.join([VERSION, *map(_clean, values)])


class BriefVersionError(ValueError):
    """A brief written in another layout: the store needs its briefs rebuilt (``pregbridge views rebuild``)."""


def split_brief(text: str) -> list[str]:
    """The fields of a brief, after its version at 0 (index with the constants of this module)."""
    parts = text.split(SEP)
    if len(parts) != _PARTS or parts[0] != VERSION:
        raise BriefVersionError(f"person brief layout {parts[0]!r} is not {VERSION!r}: run `pregbridge views rebuild`")
    return parts
