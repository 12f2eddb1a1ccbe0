"""Filling a derived per-person table (a brief, a current view) or derived columns from the stored documents, for
migrations.

Derived tables (store/brief.py, store/current.py) are written with the person by every write path; the
migration that adds one fills it for the persons stored before, with the layout of the code that runs it,
in batches by person id so that memory stays flat on a store of millions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from store.document import from_stored
from store.model import Person

__all__ = ["fill_per_person", "refresh_search_columns"]

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


def refresh_search_columns(conn: Connection, columns: Sequence[str]) -> int:
    """Rewrite ``columns`` of every stored person's ``person_search`` row from its document, with the layout of
    :func:`store.repository.search_row` of the code that runs it; returns how many persons."""
    from store.repository import search_row

    target = sa.table("person_search", sa.column("person_id", sa.Integer), *(sa.column(c) for c in columns))
    update = (sa.update(target).where(target.c.person_id == sa.bindparam("pid"))
              .values({c: sa.bindparam(f"v_{c}") for c in columns}))
    count = 0
    for batch in _batches(conn):
        rows = [search_row(p, pid) for pid, p in batch]
        conn.execute(update, [{"pid": r["person_id"], **{f"v_{c}": r[c] for c in columns}} for r in rows])
        count += len(batch)
    return count
