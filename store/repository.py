"""PersonRepository: persons in and out of the store (SQLAlchemy Core on one connection).

A person is one ``person`` row holding its validated document, plus its rows in every derived per-person
table of store.derived.DERIVED (the indexes ``person_identifier`` and ``person_search``, the fast-path copies
``person_brief`` and ``person_current``; see store/schema.py for why). A lookup by number is one
indexed join, whatever the store's size; a batch is one ``IN`` query per 500 numbers. Writes replace
the document and bring every derived row to what the document gives, writing only the rows that differ
(store.derived.write_derived), in the caller's transaction, so a change is all-or-nothing. One writer,
``save_prepared`` (many persons in a few statements a table), serves the bulk loader, the upstream sync and,
through :meth:`PersonRepository.save`, the change feed. Rows are built by the registry's builders:
:func:`person_rows` (in worker processes: :func:`prepare_person`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from store import schema as s
from store.derived import DERIVED, search_row, write_derived
from store.document import dump_stored, load_stored
from store.engine import driver_sql
from store.model import Identifier, Person

__all__ = ["Lookup", "PersonRepository", "PreparedPerson", "dump_document", "person_rows", "prepare_person",
           "search_row"]

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


def dump_document(p: Person) -> bytes:
    """``p``'s document as ``person.doc`` stores it (store.document.dump_stored: compressed JSON)."""
    return dump_stored(p)


def _person(doc: str | bytes) -> Person:
    return load_stored(doc)


def person_rows(p: Person, pid: int, now: dt.datetime, seq: int | None = None,
                doc: bytes | None = None) -> dict[Table, list[dict[str, Any]]]:
    """Every row that stores ``p`` under id ``pid``, by table (``person`` first, then store.derived.DERIVED)."""
    rows: dict[Table, list[dict[str, Any]]] = {
        s.person: [{"id": pid, "person_key": p.person_key, "doc": doc or dump_document(p), "last_seq": seq,
                    "updated_at": now}]}
    for d in DERIVED:
        rows[d.table] = [dict(r, person_id=pid) for r in d.build(p)]
    return rows


class PreparedPerson(NamedTuple):
    """A person's rows before it has an id: what a worker process builds and
    :meth:`PersonRepository.save_prepared` writes. ``rows`` holds the rows of each table of
    store.derived.DERIVED, in its order, without ``person_id``."""

    key: str
    doc: bytes  # as person.doc stores it (dump_document)
    rows: tuple[list[dict[str, Any]], ...]


def prepare_person(p: Person) -> PreparedPerson:
    """The rows of ``p`` (every derived table's, as :func:`person_rows`) without a person id."""
    return PreparedPerson(p.person_key, dump_document(p), tuple(d.build(p) for d in DERIVED))


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
    def _lookup(number: str, pid: int, doc: str | bytes) -> Lookup:
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
        table; existing persons keep their ids. A key given twice keeps its last person. Returns the ids, in
        the order given.

        The document row is written whole; each derived table through :func:`store.derived.write_derived`,
        which leaves a stored row equal to the new one alone (a person of the change feed mostly keeps its
        numbers, its brief or its search keys): the store ends as if every derived row of these persons had
        been deleted and built again, with only the rows that differ written."""
        now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        last: dict[str, int] = {item.key: i for i, (item, _) in enumerate(items)}
        keys = list(last)
        ids: dict[str, int] = {}
        for chunk in _chunks(keys):
            ids.update(self.conn.execute(select(s.person.c.person_key, s.person.c.id)
                                         .where(s.person.c.person_key.in_(chunk))).all())
        stored = list(ids.values())
        next_id = self.next_id() if len(ids) < len(keys) else 0
        persons: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        derived: list[list[tuple[int, list[dict[str, Any]]]]] = [[] for _ in DERIVED]
        for key in keys:
            item, seq = items[last[key]]
            pid = ids.get(key)
            if pid is None:
                pid = ids[key] = next_id
                next_id += 1
                persons.append({"id": pid, "person_key": key, "doc": item.doc, "last_seq": seq, "updated_at": now})
            else:
                updates.append({"b_id": pid, "doc": item.doc, "last_seq": seq, "updated_at": now})
            for out, rows in zip(derived, item.rows, strict=True):
                out.append((pid, rows))
        if updates:
            self.conn.execute(update(s.person).where(s.person.c.id == bindparam("b_id"))
                              .values(doc=bindparam("doc"), last_seq=bindparam("last_seq"),
                                      updated_at=bindparam("updated_at")), updates)
        if persons:
            self.conn.execute(insert(s.person), persons)
        for d, new in zip(DERIVED, derived, strict=True):
            write_derived(self.conn, d, new, stored)
        return [ids[item.key] for item, _ in items]

    def save(self, p: Person, *, seq: int | None = None, now: dt.datetime | None = None) -> int:
        """Insert or replace the person (all its elements, history included); returns its id
        (:meth:`save_prepared` of one person: the one writer)."""
        return self.save_prepared([(prepare_person(p), seq)], now=now)[0]
