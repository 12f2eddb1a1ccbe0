"""Filling derived per-person tables from the stored documents, for migrations, with the layout each migration
wrote: frozen copies of the builders as they were, never today's (store/derived.py holds today's).

A migration that adds a derived table or column fills it for the persons stored before with the builder of
*its* layout, kept here under its version and never edited afterwards (0006: brief ``b1``, 0010: current view
``c1``, 0011: search keys ``s2``), so an old store upgraded years later goes through each step as it was
written; the rebuild at head (``store.engine.migrate``, store.derived) then brings every table to the layout of
the code that runs. Batches by person id keep memory flat on a store of millions.

The frozen builders read the person through store.model's :class:`Person` API; that API only grows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from store.document import from_stored
from store.model import Address, Person, current
from store.normalize import name_key, street_key

__all__ = ["FROZEN", "brief_b1", "current_c1", "fill_per_person", "refresh_search_columns", "search_s2"]

_BATCH = 2000


def _batches(conn: Connection) -> Iterator[list[tuple[int, Person]]]:
    """Every stored person as (id, person), in batches of :data:`_BATCH` by person id."""
    person = sa.table("person", sa.column("id", sa.Integer), sa.column("doc", sa.Text))
    last = 0
    while True:
        rows = conn.execute(sa.select(person.c.id, person.c.doc).where(person.c.id > last)
                            .order_by(person.c.id).limit(_BATCH)).all()
        if not rows:
            return
        yield [(pid, from_stored(orjson.loads(doc))) for pid, doc in rows]
        last = rows[-1][0]


def fill_per_person(conn: Connection, table: str, column: str, make: Callable[[Person], str]) -> int:
    """Insert ``(person_id, make(person))`` into ``table`` for every stored person; returns how many."""
    target = sa.table(table, sa.column("person_id", sa.Integer), sa.column(column, sa.Text))
    count = 0
    for batch in _batches(conn):
        conn.execute(sa.insert(target), [{"person_id": pid, column: make(p)} for pid, p in batch])
        count += len(batch)
    return count


def refresh_search_columns(conn: Connection, columns: Sequence[str],
                           make: Callable[[Person], dict[str, Any]]) -> int:
    """Rewrite ``columns`` of every stored person's ``person_search`` row with ``make(person)``'s values;
    returns how many persons."""
    target = sa.table("person_search", sa.column("person_id", sa.Integer), *(sa.column(c) for c in columns))
    update = (sa.update(target).where(target.c.person_id == sa.bindparam("pid"))
              .values({c: sa.bindparam(f"v_{c}") for c in columns}))
    count = 0
    for batch in _batches(conn):
        rows = [(pid, make(p)) for pid, p in batch]
        conn.execute(update, [{"pid": pid, **{f"v_{c}": r[c] for c in columns}} for pid, r in rows])
        count += len(batch)
    return count


# -- frozen layouts: never edit below; a new layout is a new function ---------------------------------------

_SEP = "\x1f"
_ADDRESS_ORDER_B1 = ("bosted", "opphold", "post", "postUtland", "deltBosted")


def _wash_address_b1(p: Person) -> Address | None:
    cur = p.current_addresses()
    for t in _ADDRESS_ORDER_B1:
        for a in cur:
            if a.type == t:
                return a
    return cur[0] if cur else None


def _clean_b1(v: object) -> str:
    text = "" if v is None else str(v)
    return text.replace(_SEP, " ") if _SEP in text else text


def brief_b1(p: Person) -> str:
    """The person brief in layout ``b1`` (migration 0006)."""
    cur = p.current_identifier
    n = p.name
    birth, death = p.birth_date, p.death_date
    a = _wash_address_b1(p)
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
    return _SEP.join(["b1", *map(_clean_b1, values)])


def _iso(v: Any) -> str | None:
    return v.isoformat() if v is not None else None


def _contract_c1(a: Address) -> list[str | None]:
    if a.contract_from is None and a.contract_to is None:
        return []
    return [_iso(a.contract_from), _iso(a.contract_to)]


def current_c1(p: Person) -> str:
    """The person current view in layout ``c1`` (migration 0010)."""
    name, birth, gender = current(p.names), current(p.birth), current(p.gender)
    view = [
        "c1",
        [[i.number, i.kind, i.status, i.meta.current, _iso(i.meta.valid_to)] for i in p.identifiers],
        [name.given, name.middle, name.family] if name else None,
        [_iso(birth.date), birth.year] if birth else None,
        gender.value if gender else None,
        [[v.value, v.meta.current] for v in p.status],
        [[_iso(d.date), d.meta.current] for d in p.death],
        [[a.type, a.street, a.house_number, a.house_letter, list(a.lines), a.co, a.poststed, a.postnummer,
          a.country, a.bydel, a.kommune, a.protection, *_contract_c1(a)] for a in p.addresses if a.meta.current],
        p.protection_level,
    ]
    return orjson.dumps(view).decode()


def search_s2(p: Person) -> dict[str, Any]:
    """The person_search row (without person_id) in layout ``s2`` (migration 0011: address keys with their
    protection level, strengt fortrolig keys left out)."""
    name = p.name
    birth = current(p.birth)
    home = p.address("bosted") or p.address("opphold") or p.address("post")
    level = p.protection_level if home else None
    if level == "strengtFortrolig":
        home = None
    return {
        "family_key": name_key(name.family) if name else "",
        "given_key": name_key(" ".join(x for x in (name.given, name.middle) if x)) if name else "",
        "birth_date": birth.date if birth else None,
        "birth_year": birth.year if birth else None,
        "gender": p.current_gender,
        "kommune": home.kommune if home else None,
        "postnummer": home.postnummer if home else None,
        "street_key": street_key(home.street) if home and home.street else None,
        "status": p.current_status,
        "address_protection": level,
    }


#: table → {layout: frozen builder} of the layouts migrations wrote.
FROZEN: dict[str, dict[str, Callable[[Person], Any]]] = {
    "person_brief": {"b1": brief_b1},
    "person_current": {"c1": current_c1},
    "person_search": {"s2": search_s2},
}
