"""PersonRepository: persons in and out of the store (SQLAlchemy Core on one connection).

Reads take a handful of indexed statements whatever the store's size: the identifier index finds the
person id, then one ``IN`` query per element table fetches the items (for one person or a batch).
Writes replace a person's element rows and its search row in the caller's transaction, so a change is
all-or-nothing. Rows are built by :func:`person_rows`, which the bulk loader shares.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select

from store import schema as s
from store.model import (
    Address,
    Birth,
    Citizenship,
    Death,
    Identifier,
    MaritalStatus,
    Meta,
    Name,
    Person,
    Protection,
    Relation,
    Value,
    current,
)
from store.normalize import name_key, street_key

__all__ = ["Lookup", "PersonRepository", "person_rows", "search_row"]

_ELEMENT_TABLES: tuple[Table, ...] = (
    s.person_identifier, s.person_name, s.person_address, s.person_relation, s.person_fact,
)
_BATCH = 500  # keys per IN (...): within SQLite's parameter limit, near the measured optimum


@dataclass(frozen=True, slots=True)
class Lookup:
    """A person found by a number: ``matched`` is the identifier asked for (possibly ceased)."""

    person: Person
    matched: Identifier

    @property
    def current(self) -> Identifier | None:
        return self.person.current_identifier


def _meta_row(m: Meta) -> dict[str, Any]:
    return {"is_current": m.current, "valid_from": m.valid_from, "valid_to": m.valid_to,
            "registered_at": m.registered_at, "source": m.source}


def _meta(r: Any) -> Meta:
    return Meta(r.is_current, r.valid_from, r.valid_to, r.registered_at, r.source)


def search_row(p: Person, pid: int) -> dict[str, Any]:
    """The person's current search keys (one row of person_search)."""
    name = p.name
    birth = current(p.birth)
    home = p.address("bosted") or p.address("opphold") or p.address("post")
    return {
        "person_id": pid,
        "family_key": name_key(name.family) if name else "",
        "given_key": name_key(" ".join(x for x in (name.given, name.middle) if x)) if name else "",
        "birth_date": birth.date if birth else None,
        "birth_year": birth.year if birth else None,
        "gender": p.current_gender,
        "kommune": home.kommune if home else None,
        "postnummer": home.postnummer if home else None,
        "street_key": street_key(home.street) if home and home.street else None,
        "status": p.current_status,
    }


def person_rows(p: Person, pid: int, now: dt.datetime, seq: int | None = None) -> dict[Table, list[dict[str, Any]]]:
    """Every row that stores ``p`` under id ``pid``, by table."""
    facts: list[dict[str, Any]] = []

    def fact(kind: str, meta: Meta, code: str | None = None, date: dt.date | None = None,
             detail: dict[str, Any] | None = None) -> None:
        facts.append({"person_id": pid, "kind": kind, "code": code, "date": date, "detail": detail,
                      **_meta_row(meta)})

    for b in p.birth:
        fact("birth", b.meta, date=b.date,
             detail={"year": b.year, "place": b.place, "kommune": b.kommune, "country": b.country})
    for g in p.gender:
        fact("gender", g.meta, code=g.value)
    for st in p.status:
        fact("status", st.meta, code=st.value)
    for d in p.death:
        fact("death", d.meta, date=d.date)
    for pr in p.protection:
        fact("protection", pr.meta, code=pr.level)
    for m in p.marital_status:
        fact("marital", m.meta, code=m.value, date=m.date, detail={"spouse": m.spouse} if m.spouse else None)
    for c in p.citizenship:
        fact("citizenship", c.meta, code=c.country, date=c.acquired)
    return {
        s.person: [{"id": pid, "person_key": p.person_key, "last_seq": seq, "updated_at": now}],
        s.person_identifier: [{"person_id": pid, "number": i.number, "kind": i.kind, "status": i.status,
                               **_meta_row(i.meta)} for i in p.identifiers],
        s.person_name: [{"person_id": pid, "given": n.given, "middle": n.middle, "family": n.family,
                         **_meta_row(n.meta)} for n in p.names],
        s.person_address: [
            {"person_id": pid, "address_type": a.type, "form": a.form, "street": a.street,
             "house_number": a.house_number, "house_letter": a.house_letter, "unit": a.unit, "co": a.co,
             "gardsnummer": a.gardsnummer, "bruksnummer": a.bruksnummer, "festenummer": a.festenummer,
             "lines": list(a.lines) or None, "country": a.country, "postnummer": a.postnummer,
             "poststed": a.poststed, "kommune": a.kommune, "bydel": a.bydel, "protection": a.protection,
             "moved_at": a.moved_at, **_meta_row(a.meta)}
            for a in p.addresses
        ],
        s.person_relation: [{"person_id": pid, "related_number": r.related_number, "related_role": r.related_role,
                             "my_role": r.my_role, **_meta_row(r.meta)} for r in p.relations],
        s.person_fact: facts,
        s.person_search: [search_row(p, pid)],
    }


def _assemble(key: str, rows: dict[Table, list[Any]]) -> Person:
    facts: dict[str, list[Any]] = defaultdict(list)
    for f in rows[s.person_fact]:
        facts[f.kind].append(f)

    def detail(f: Any) -> dict[str, Any]:
        return f.detail or {}

    return Person(
        person_key=key,
        identifiers=tuple(Identifier(r.number, r.kind, r.status, _meta(r)) for r in rows[s.person_identifier]),
        names=tuple(Name(r.given, r.family, r.middle, _meta(r)) for r in rows[s.person_name]),
        birth=tuple(Birth(f.date, detail(f).get("year"), detail(f).get("place"), detail(f).get("kommune"),
                          detail(f).get("country"), _meta(f)) for f in facts["birth"]),
        gender=tuple(Value(f.code, _meta(f)) for f in facts["gender"]),
        status=tuple(Value(f.code, _meta(f)) for f in facts["status"]),
        death=tuple(Death(f.date, _meta(f)) for f in facts["death"]),
        addresses=tuple(
            Address(r.address_type, r.form, r.street, r.house_number, r.house_letter, r.unit, r.co,
                    r.gardsnummer, r.bruksnummer, r.festenummer, tuple(r.lines or ()), r.country, r.postnummer,
                    r.poststed, r.kommune, r.bydel, r.protection, r.moved_at, _meta(r))
            for r in rows[s.person_address]
        ),
        protection=tuple(Protection(f.code, _meta(f)) for f in facts["protection"]),
        marital_status=tuple(MaritalStatus(f.code, detail(f).get("spouse"), f.date, _meta(f))
                             for f in facts["marital"]),
        citizenship=tuple(Citizenship(f.code, f.date, _meta(f)) for f in facts["citizenship"]),
        relations=tuple(Relation(r.related_number, r.related_role, r.my_role, _meta(r))
                        for r in rows[s.person_relation]),
    )


def _chunks(items: Sequence[Any], n: int = _BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class PersonRepository:
    """Persons on one SQLAlchemy connection; the caller owns the transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- reads -------------------------------------------------------------------------------------

    def load(self, person_ids: Sequence[int]) -> dict[int, Person]:
        """The persons with these internal ids (missing ids are left out)."""
        out: dict[int, Person] = {}
        for chunk in _chunks(list(dict.fromkeys(person_ids))):
            keys = dict(self.conn.execute(select(s.person.c.id, s.person.c.person_key)
                                          .where(s.person.c.id.in_(chunk))).all())
            rows: dict[int, dict[Table, list[Any]]] = {pid: {t: [] for t in _ELEMENT_TABLES} for pid in keys}
            for t in _ELEMENT_TABLES:
                for r in self.conn.execute(select(t).where(t.c.person_id.in_(chunk)).order_by(t.c.id)):
                    rows[r.person_id][t].append(r)
            for pid, key in keys.items():
                out[pid] = _assemble(key, rows[pid])
        return out

    def get(self, person_id: int) -> Person | None:
        return self.load([person_id]).get(person_id)

    def id_for_key(self, person_key: str) -> int | None:
        return self.conn.execute(select(s.person.c.id).where(s.person.c.person_key == person_key)).scalar()

    def get_by_key(self, person_key: str) -> Person | None:
        pid = self.id_for_key(person_key)
        return None if pid is None else self.get(pid)

    def ids_for_numbers(self, numbers: Sequence[str]) -> dict[str, int]:
        """number → person id, for every known number (ceased ones included)."""
        found: dict[str, int] = {}
        t = s.person_identifier
        for chunk in _chunks(list(dict.fromkeys(numbers))):
            for number, pid in self.conn.execute(select(t.c.number, t.c.person_id).where(t.c.number.in_(chunk))):
                found.setdefault(number, pid)
        return found

    def find_many(self, numbers: Sequence[str]) -> dict[str, Lookup]:
        """Bulk lookup by any identifier, ceased ones included; unknown numbers are absent."""
        ids = self.ids_for_numbers(numbers)
        persons = self.load(list(ids.values()))
        out: dict[str, Lookup] = {}
        for number, pid in ids.items():
            p = persons[pid]
            matched = next(i for i in p.identifiers if i.number == number)
            out[number] = Lookup(p, matched)
        return out

    def find(self, number: str) -> Lookup | None:
        """Lookup by any identifier, ceased ones included."""
        return self.find_many([number]).get(number)

    def count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(s.person)).scalar_one())

    # -- writes ------------------------------------------------------------------------------------

    def next_id(self) -> int:
        return int(self.conn.execute(select(func.coalesce(func.max(s.person.c.id), 0))).scalar_one()) + 1

    def save(self, p: Person, *, seq: int | None = None, now: dt.datetime | None = None) -> int:
        """Insert or replace the person (all its elements, history included); returns its id."""
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        pid = self.id_for_key(p.person_key)
        if pid is None:
            pid = self.next_id()
        else:
            for t in (*_ELEMENT_TABLES, s.person_search):
                self.conn.execute(delete(t).where(t.c.person_id == pid))
            self.conn.execute(delete(s.person).where(s.person.c.id == pid))
        for table, rows in person_rows(p, pid, now, seq).items():
            if rows:
                self.conn.execute(insert(table), rows)
        return pid
