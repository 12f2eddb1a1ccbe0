"""PersonRepository: persons in and out of the store (SQLAlchemy Core on one connection).

A person is one ``person`` row holding its validated document, plus its rows in the two index tables
(``person_identifier``, ``person_search``; see store/schema.py for why). A lookup by number is one
indexed join, whatever the store's size; a batch is one ``IN`` query per 500 numbers. Writes replace
the document and every derived row in the caller's transaction, so a change is all-or-nothing (one
person: :meth:`PersonRepository.save`; many in a few statements a table: ``save_prepared``, which the bulk
loader and the upstream sync use). Rows are built by :func:`person_rows` (in worker processes: by
:func:`prepare_person`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Table, bindparam, delete, func, insert, select, update

from store import schema as s
from store.addresses import SEARCH_TYPES, primary_address
from store.brief import brief_of
from store.current import current_of
from store.document import from_stored, to_document
from store.engine import driver_sql
from store.model import Identifier, Meta, Person, current
from store.normalize import name_key, street_key

__all__ = ["Lookup", "PersonRepository", "PreparedPerson", "dump_document", "person_rows", "prepare_person",
           "search_row"]

_INDEX_TABLES: tuple[Table, ...] = (s.person_identifier, s.person_search, s.person_brief, s.person_current)
_BATCH = 500  # keys per IN (...): within SQLite's parameter limit, near the measured optimum

_p, _i = s.person, s.person_identifier
_BY_NUMBER = (select(_i.c.number, _p.c.id, _p.c.person_key, _p.c.doc)
              .join(_p, _p.c.id == _i.c.person_id).where(_i.c.number == bindparam("number")))
_BY_NUMBERS = (select(_i.c.number, _p.c.id, _p.c.person_key, _p.c.doc)
               .join(_p, _p.c.id == _i.c.person_id).where(_i.c.number.in_(bindparam("numbers", expanding=True))))
_BY_IDS = select(_p.c.id, _p.c.doc).where(_p.c.id.in_(bindparam("ids", expanding=True)))
_ID_FOR_KEY = select(_p.c.id).where(_p.c.person_key == bindparam("key"))


@dataclass(frozen=True, slots=True)
class Lookup:
    """A person found by a number: ``matched`` is the identifier asked for (possibly ceased)."""

    person_id: int
    person: Person
    matched: Identifier

    @property
    def current(self) -> Identifier | None:
        return self.person.current_identifier


def _meta_row(m: Meta) -> dict[str, Any]:
    return {"is_current": m.current, "valid_from": m.valid_from, "valid_to": m.valid_to,
            "registered_at": m.registered_at, "source": m.source}


def dump_document(p: Person) -> str:
    return json.dumps(to_document(p), ensure_ascii=False, separators=(",", ":"))


def _person(doc: str) -> Person:
    return from_stored(orjson.loads(doc))


def search_row(p: Person, pid: int) -> dict[str, Any]:
    """The person's current search keys (one row of person_search).

    The address keys come with ``address_protection``, the level at which masking releases that address (the
    person's strictest level in force, server.access.masking), so that search and identification use them only
    for callers who may see it. A strengt fortrolig address is released to nobody: its keys are not stored."""
    name = p.name
    birth = current(p.birth)
    home = primary_address(p, SEARCH_TYPES)  # the one address rule (store.addresses)
    level = p.protection_level if home else None
    if level == "strengtFortrolig":
        home = None
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
        "address_protection": level,
    }


def person_rows(p: Person, pid: int, now: dt.datetime, seq: int | None = None,
                doc: str | None = None) -> dict[Table, list[dict[str, Any]]]:
    """Every row that stores ``p`` under id ``pid``, by table (``person`` first)."""
    return {
        s.person: [{"id": pid, "person_key": p.person_key, "doc": doc or dump_document(p), "last_seq": seq,
                    "updated_at": now}],
        s.person_identifier: [{"person_id": pid, "number": i.number, "kind": i.kind, "status": i.status,
                               **_meta_row(i.meta)} for i in p.identifiers],
        s.person_search: [search_row(p, pid)],
        s.person_brief: [{"person_id": pid, "brief": brief_of(p)}],
        s.person_current: [{"person_id": pid, "current": current_of(p)}],
    }


class PreparedPerson(NamedTuple):
    """A person's rows before it has an id (:func:`person_rows` without ``person_id``): what a worker process
    builds and :meth:`PersonRepository.save_prepared` writes."""

    key: str
    doc: str
    identifiers: list[dict[str, Any]]
    search: dict[str, Any]
    brief: str
    current: str


_EPOCH = dt.datetime(1970, 1, 1)


def prepare_person(p: Person) -> PreparedPerson:
    """The rows of ``p`` (every derived table's, by :func:`person_rows`) without a person id."""
    rows = person_rows(p, 0, _EPOCH)
    ids = rows[s.person_identifier]
    for r in ids:
        del r["person_id"]
    search = rows[s.person_search][0]
    del search["person_id"]
    return PreparedPerson(p.person_key, rows[s.person][0]["doc"], ids, search, rows[s.person_brief][0]["brief"],
                          rows[s.person_current][0]["current"])


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
            for pid, doc in self.conn.execute(_BY_IDS, {"ids": list(chunk)}):
                out[pid] = _person(doc)
        return out

    def get(self, person_id: int) -> Person | None:
        return self.load([person_id]).get(person_id)

    def id_for_key(self, person_key: str) -> int | None:
        return self.conn.execute(_ID_FOR_KEY, {"key": person_key}).scalar()

    def get_by_key(self, person_key: str) -> Person | None:
        pid = self.id_for_key(person_key)
        return None if pid is None else self.get(pid)

    def ids_for_numbers(self, numbers: Sequence[str]) -> dict[str, int]:
        """number → person id, for every known number (ceased ones included)."""
        t = s.person_identifier
        found: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(numbers))):
            for number, pid in self.conn.execute(select(t.c.number, t.c.person_id).where(t.c.number.in_(chunk))):
                found.setdefault(number, pid)
        return found

    @staticmethod
    def _lookup(number: str, pid: int, doc: str) -> Lookup:
        p = _person(doc)
        return Lookup(pid, p, next(i for i in p.identifiers if i.number == number))

    def find_many(self, numbers: Sequence[str]) -> dict[str, Lookup]:
        """Bulk lookup by any identifier, ceased ones included; unknown numbers are absent."""
        out: dict[str, Lookup] = {}
        for chunk in _chunks(list(dict.fromkeys(numbers))):
            for number, pid, _key, doc in self.conn.execute(_BY_NUMBERS, {"numbers": list(chunk)}):
                out.setdefault(number, self._lookup(number, pid, doc))
        return out

    def find(self, number: str) -> Lookup | None:
        """Lookup by any identifier, ceased ones included (the hot path: driver-level SQL, compiled once)."""
        sql, positional = driver_sql(_BY_NUMBER, self.conn.dialect)
        row = self.conn.exec_driver_sql(sql, (number,) if positional else {"number": number}).first()
        return None if row is None else self._lookup(number, row[1], row[3])

    def count(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(s.person)).scalar_one())

    # -- writes ------------------------------------------------------------------------------------

    def next_id(self) -> int:
        return int(self.conn.execute(select(func.coalesce(func.max(s.person.c.id), 0))).scalar_one()) + 1

    def save_many(self, persons: Sequence[tuple[Person, int | None]], *, now: dt.datetime | None = None) -> list[int]:
        """Insert or replace many persons (each with its sequence number): :meth:`save_prepared` of
        :func:`prepare_person`."""
        return self.save_prepared([(prepare_person(p), seq) for p, seq in persons], now=now)

    def save_prepared(self, items: Sequence[tuple[PreparedPerson, int | None]], *,
                      now: dt.datetime | None = None) -> list[int]:
        """Insert or replace many prepared persons (each with its sequence number) in a few statements per
        table: the rows of :meth:`save`, existing persons keep their ids. A key given twice keeps its last
        person. Returns the ids, in the order given."""
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        last: dict[str, int] = {item.key: i for i, (item, _) in enumerate(items)}
        keys = list(last)
        ids: dict[str, int] = {}
        for chunk in _chunks(keys):
            ids.update(self.conn.execute(select(s.person.c.person_key, s.person.c.id)
                                         .where(s.person.c.person_key.in_(chunk))).all())
        for chunk in _chunks(list(ids.values())):
            for t in _INDEX_TABLES:
                self.conn.execute(delete(t).where(t.c.person_id.in_(chunk)))
        next_id = self.next_id()
        persons: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        identifiers: list[dict[str, Any]] = []
        searches: list[dict[str, Any]] = []
        briefs: list[dict[str, Any]] = []
        currents: list[dict[str, Any]] = []
        for key in keys:
            item, seq = items[last[key]]
            pid = ids.get(key)
            if pid is None:
                pid = ids[key] = next_id
                next_id += 1
                persons.append({"id": pid, "person_key": key, "doc": item.doc, "last_seq": seq, "updated_at": now})
            else:
                updates.append({"b_id": pid, "doc": item.doc, "last_seq": seq, "updated_at": now})
            identifiers += [dict(r, person_id=pid) for r in item.identifiers]
            searches.append(dict(item.search, person_id=pid))
            briefs.append({"person_id": pid, "brief": item.brief})
            currents.append({"person_id": pid, "current": item.current})
        if updates:
            self.conn.execute(update(s.person).where(s.person.c.id == bindparam("b_id"))
                              .values(doc=bindparam("doc"), last_seq=bindparam("last_seq"),
                                      updated_at=bindparam("updated_at")), updates)
        for table, rows in ((s.person, persons), (s.person_identifier, identifiers), (s.person_search, searches),
                            (s.person_brief, briefs), (s.person_current, currents)):
            if rows:
                self.conn.execute(insert(table), rows)
        return [ids[item.key] for item, _ in items]

    def save(self, p: Person, *, seq: int | None = None, now: dt.datetime | None = None) -> int:
        """Insert or replace the person (all its elements, history included); returns its id."""
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        pid = self.id_for_key(p.person_key)
        if pid is None:
            pid = self.next_id()
        else:
            for t in _INDEX_TABLES:
                self.conn.execute(delete(t).where(t.c.person_id == pid))
            self.conn.execute(delete(s.person).where(s.person.c.id == pid))
        for table, rows in person_rows(p, pid, now, seq).items():
            if rows:
                self.conn.execute(insert(table), rows)
        return pid
