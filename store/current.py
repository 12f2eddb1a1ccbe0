"""A person's current view: what a face that shows only *current* values (an HL7 PID) reads, stored once.

A PDQ answer shows up to a page of persons, each as one PID segment made of the person's current values.
Decoding each person's whole document (history included, ~2.2 KB), masking the decoded person and encoding
its PID cost ~47 µs a person (measured on the 1M benchmark store, docs/hl7.md), two thirds of a 24-hit
query. The current view is those values taken out once, when the person is written, and stored beside
the document in ``person_current`` (one row per person, rewritten with the person by every write path:
load, feed, save), as a short JSON array that a face reads with one ``orjson.loads``. Like the brief
(store/brief.py) it is derived data: face-neutral raw values, no masking and no encoding (the faces do
both, from the one masking policy).

Layout (:data:`VERSION` first; dates ISO text; indexes are the constants below)::

    ["c1",
     [[number, kind, status, current, valid_to], ...],   # IDS: every identifier, in document order
     [given, middle, family] | null,                      # NAME: the first current name
     [date, year] | null,                                 # BIRTH: the first current birth
     gender | null,                                       # GENDER: the first current gender value
     [[value, current], ...],                             # STATUS: every status item
     [[date, current], ...],                              # DEATH: every death item
     [[type, street, house_number, house_letter, lines, co, poststed, postnummer, country, bydel,
       kommune, protection(, contract_from, contract_to)], ...]  # ADDRESSES: the current addresses, in
                                                          # order; the last two only on a shared residence
                                                          # with a contract period
     level]                                               # FLOOR: the strictest protection in force

Every status and death item is kept (with its ``current`` flag) because a profile with history sees a
person who has non-current items only differently from one who has none (the PID's death indicator is
empty only when neither is released). A view whose version is not :data:`VERSION` is refused
(:func:`read_current` raises): a change of layout is a new :data:`VERSION`, and ``pregbridge init`` (or
``pregbridge views rebuild``) rebuilds the views from the documents (store/derived.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, bindparam, select

from store import schema as s
from store.engine import run_driver
from store.model import Address, Person, current

__all__ = ["VERSION", "CurrentVersionError", "CurrentView", "current_of", "read_current", "view_by_number", "views"]

VERSION = "c1"


class CurrentView(NamedTuple):
    """A stored current view's parts (after its version), by name; each as :func:`current_of` writes it."""

    ids: list[Any]  # [number, kind, status, is current, valid_to] per identifier
    name: list[Any] | None  # [given, middle, family]
    birth: list[Any] | None  # [ISO date, year]
    gender: str | None
    status: list[Any]  # [value, is current]
    death: list[Any]  # [ISO date, is current]
    addresses: list[Any]  # the current addresses (current_of's layout)
    floor: str  # the person's strictest protection level in force


_PARTS = len(CurrentView._fields) + 1
_new = tuple.__new__  # (CurrentView._make without its length check: read_current checks the length)


def _iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def _contract(a: Address) -> list[str | None]:
    """A shared residence's contract period, or nothing: an address without one has the layout's first 12
    items only, so views written before the period was kept (none of which had one) read the same."""
    if a.contract_from is None and a.contract_to is None:
        return []
    return [_iso(a.contract_from), _iso(a.contract_to)]


def current_of(p: Person) -> str:
    """The current view of ``p`` as stored (module docstring)."""
    name, birth, gender = current(p.names), current(p.birth), current(p.gender)
    view = [
        VERSION,
        [[i.number, i.kind, i.status, i.meta.current, _iso(i.meta.valid_to)] for i in p.identifiers],
        [name.given, name.middle, name.family] if name else None,
        [_iso(birth.date), birth.year] if birth else None,
        gender.value if gender else None,
        [[v.value, v.meta.current] for v in p.status],
        [[_iso(d.date), d.meta.current] for d in p.death],
        [[a.type, a.street, a.house_number, a.house_letter, list(a.lines), a.co, a.poststed, a.postnummer,
          a.country, a.bydel, a.kommune, a.protection, *_contract(a)] for a in p.addresses if a.meta.current],
        p.protection_level,
    ]
    return orjson.dumps(view).decode()


class CurrentVersionError(ValueError):
    """A current view written in another layout: the store needs its views rebuilt (``pregbridge views
    rebuild``; ``pregbridge init`` also rebuilds a table whose recorded layout is not the code's)."""


def read_current(text: str | bytes) -> CurrentView:
    """A stored current view, by name."""
    view = orjson.loads(text)
    if not isinstance(view, list) or len(view) != _PARTS or view[0] != VERSION:
        got = view[0] if isinstance(view, list) and view else None
        raise CurrentVersionError(f"person current view layout {got!r} is not {VERSION!r}: "
                                  "run `pregbridge views rebuild`")
    return _new(CurrentView, view[1:])


# -- reading views (hot paths: driver-level SQL built from store.schema, store.engine.run_driver) ----------

_c, _i = s.person_current, s.person_identifier
_VIEWS = select(_c.c.person_id, _c.c.current).where(_c.c.person_id.in_(bindparam("ids", expanding=True)))
_first = select(_i.c.person_id).where(_i.c.number == bindparam("number")).limit(1).subquery("f")
_BY_NUMBER = (select(_first.c.person_id, _c.c.current)
              .select_from(_first.outerjoin(_c, _c.c.person_id == _first.c.person_id)))


def views(conn: Connection, person_ids: Sequence[int]) -> dict[int, str]:
    """The current views of these persons, by person id (ids without a person are left out). A person stored
    without its view gets one built from its document (store.derived.build_missing: logged, the same answer)."""
    ids = list(dict.fromkeys(person_ids))
    out: dict[int, str] = {}
    for k in range(0, len(ids), 500):
        chunk = ids[k : k + 500]
        out.update(run_driver(conn, _VIEWS, {"ids": chunk}, ids=len(chunk)))
    if len(out) < len(ids):  # deleted since the caller found them, or stored without a view
        from store.derived import CURRENT, build_missing

        out.update(build_missing(conn, CURRENT, [pid for pid in ids if pid not in out]))
    return out


def view_by_number(conn: Connection, number: str) -> str | None:
    """The current view of the person who has or had ``number`` (ceased numbers included), or None for an
    unknown number; a person stored without its view gets one built from its document (as :func:`views`).
    Should one number belong to two persons, the first ``person_identifier`` row that has it decides, as in
    ``PersonRepository.find``."""
    rows = run_driver(conn, _BY_NUMBER, {"number": number})
    if not rows:
        return None
    pid, view = rows[0]
    if view is None:
        from store.derived import CURRENT, build_missing

        return build_missing(conn, CURRENT, [pid]).get(pid)
    return str(view)
