"""Filling a derived per-person table (a brief, a current view) from the stored documents, for migrations.

Derived tables (store/brief.py, store/current.py) are written with the person by every write path; the
migration that adds one fills it for the persons stored before, with the layout of the code that runs it,
in batches by person id so that memory stays flat on a store of millions.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
import sqlalchemy as sa
from sqlalchemy import Connection

from store.document import from_stored
from store.model import Person

__all__ = ["fill_per_person"]

_BATCH = 2000


def fill_per_person(conn: Connection, table: str, column: str, make: Callable[[Person], str]) -> int:
    """Insert ``(person_id, make(person))`` into ``table`` for every stored person; returns how many."""
    person = sa.table("person", sa.column("id", sa.Integer), sa.column("doc", sa.Text))
    target = sa.table(table, sa.column("person_id", sa.Integer), sa.column(column, sa.Text))
    last, count = 0, 0
    while True:
        rows = conn.execute(sa.select(person.c.id, person.c.doc).where(person.c.id > last)
                            .order_by(person.c.id).limit(_BATCH)).all()
        if not rows:
            return count
        conn.execute(sa.insert(target), [{"person_id": pid, column: make(from_stored(orjson.loads(doc)))}
                                         for pid, doc in rows])
        last = rows[-1][0]
        count += len(rows)
