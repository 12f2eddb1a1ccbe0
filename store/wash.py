"""Lean batched reads for washing a client file (filematch): lookups by number and identification.

The wash answers every record of a file that may hold millions, so its reads are shaped for throughput
rather than for the general API of :class:`store.repository.PersonRepository`:

- **by number**: one query per 500 numbers over ``person_identifier`` JOIN ``person`` (driver-level SQL,
  compiled once per dialect and batch size), ceased numbers included;
- **lean documents**: a wash answer reads only the *current* values of identifiers, name, birth, gender,
  status, death, addresses and protection. :func:`lean_person` decodes the stored document up to
  ``maritalStatus`` (the elements after it are never read) and builds a :class:`~store.model.Person`
  holding every identifier and only the current items of the other elements, each with a shared
  ``Meta(current=True)``: the validity dates, source and history the answer never shows are not
  decoded. A view (profile masking) of a lean person gives the same current values as a view of the
  full person, so the answer is the same; the lean person must not be used for anything else (no
  history, no marital status, citizenship or relations);
- identification by demographics is :func:`store.matching.identify_many`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

from sqlalchemy import Connection, Dialect

from store.matching import cached_name_key, cached_street_key
from store.model import Address, Birth, Death, Identifier, Meta, Name, Person, Protection, Value
from store.repository import Lookup

__all__ = ["cached_name_key", "cached_street_key", "find_numbers", "lean_person", "load_lean"]

_BATCH = 500  # keys per IN (...), as store.repository
_CURRENT = Meta(current=True)
_CUT = ',"maritalStatus":['  # dump_document writes the elements in a fixed order; nothing after this is read



# -- lean documents ---------------------------------------------------------------------------------


def _date(v: str | None) -> dt.date | None:
    return None if v is None else dt.date.fromisoformat(v)


def lean_person(doc: str) -> Person:
    """The current values of a stored document (see the module docstring): what a wash answer reads."""
    # the elements after maritalStatus are never read: leave them undecoded (a third of the text)
    cut = doc.find(_CUT)
    d = json.loads(doc[:cut] + "}") if cut > 0 else json.loads(doc)
    m = _CURRENT
    return Person(
        person_key=d["personId"],
        identifiers=tuple(Identifier(i["number"], i["kind"], i["status"], m) for i in d["identifiers"]),
        names=tuple(Name(n["given"], n["family"], n["middle"], m) for n in d["names"] if n["current"]),
        birth=tuple(Birth(_date(b["date"]), b["year"], b["place"], b["kommune"], b["country"], m)
                    for b in d["birth"] if b["current"]),
        gender=tuple(Value(g["value"], m) for g in d["gender"] if g["current"]),
        status=tuple(Value(v["value"], m) for v in d["status"] if v["current"]),
        death=tuple(Death(_date(x["date"]), m) for x in d["death"] if x["current"]),
        addresses=tuple(
            Address(a["type"], a["form"], a["street"], a["houseNumber"], a["houseLetter"], a["unit"], a["co"],
                    a["gardsnummer"], a["bruksnummer"], a["festenummer"], tuple(a["lines"]), a["country"],
                    a["postnummer"], a["poststed"], a["kommune"], a["bydel"], a["protection"],
                    _date(a["movedAt"]), m)
            for a in d["addresses"] if a["current"]
        ),
        protection=tuple(Protection(p["level"], m) for p in d["protection"] if p["current"]),
    )


# -- driver-level SQL -------------------------------------------------------------------------------

_SQL: dict[tuple[str, str, int], str] = {}


def _marks(dialect: Dialect, n: int) -> str:
    return ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * n)


def _sql(dialect: Dialect, kind: str, n: int) -> str:
    key = (dialect.name, kind, n)
    sql = _SQL.get(key)
    if sql is None:
        if kind == "numbers":
            sql = ("SELECT i.number, i.person_id, p.doc FROM person_identifier i JOIN person p ON p.id = i.person_id "
                   f"WHERE i.number IN ({_marks(dialect, n)})")
        else:
            sql = f"SELECT id, doc FROM person WHERE id IN ({_marks(dialect, n)})"
        _SQL[key] = sql
    return sql


def find_numbers(conn: Connection, numbers: Sequence[str]) -> dict[str, Lookup]:
    """Lookups by any identifier (ceased ones included) with lean persons; unknown numbers are absent."""
    out: dict[str, Lookup] = {}
    unique = list(dict.fromkeys(numbers))
    for k in range(0, len(unique), _BATCH):
        chunk = tuple(unique[k : k + _BATCH])
        for number, pid, doc in conn.exec_driver_sql(_sql(conn.dialect, "numbers", len(chunk)), chunk):
            if number not in out:
                p = lean_person(doc)
                matched = next(i for i in p.identifiers if i.number == number)
                out[number] = Lookup(pid, p, matched)
    return out


def load_lean(conn: Connection, person_ids: Sequence[int]) -> dict[int, Person]:
    """Lean persons by internal id (missing ids are left out)."""
    out: dict[int, Person] = {}
    unique = list(dict.fromkeys(person_ids))
    for k in range(0, len(unique), _BATCH):
        chunk = tuple(unique[k : k + _BATCH])
        for pid, doc in conn.exec_driver_sql(_sql(conn.dialect, "ids", len(chunk)), chunk):
            out[pid] = lean_person(doc)
    return out


# -- identification ---------------------------------------------------------------------------------
