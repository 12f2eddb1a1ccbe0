"""The audit trail's person index: ``audit_person`` rows in generations of events, written in bulk on SQLite.

Why. An audit record's identity numbers are random keys. Inserted into one ``audit_person.number``
B-tree as they come, each dirties its own index page, which SQLite's WAL writes whole (4 KiB) at the
commit and the checkpoint copies back: with a million indexed numbers ~15 µs a number against ~1.5 µs
for an append, and it grows with the trail. A PIX query's audit record cost more than the query, and a
PDQ query's (up to 50 numbers returned) a third of the answer (docs/hl7.md "Performance").

How. Events are numbered; generation ``g`` is the events with ids ``g·GENERATION + 1 … (g+1)·GENERATION``,
and ``audit_person`` is indexed by (generation, number, event id). On SQLite the audit writer
(server/access/audit.py) stores ``audit_event`` rows only; once a whole generation is past the
watermark (``store_state`` key :data:`INDEXED_KEY`: the events up to this id have their rows), the same
transaction derives that generation's rows from the events' ``asked``/``returned`` lists inside SQLite
(``json_each``, :func:`index_events`), sorted by number, into a subtree of its own: written in key
order, like an append, and moves the watermark. Nothing can be lost: the rows are derived from
committed events, in the transaction that moves the watermark. Readers (:func:`person_events_sql`)
seek the number once per generation and, past the watermark, read the events' lists themselves, so a
record is found by person from its commit on. PostgreSQL's writer inserts the rows with each batch, in
the current generation's subtree. ``GENERATION`` is part of the stored format: do not change it for an
existing store. Measured (``python -m benchmarks audit --num 1000000``, PIX-shaped records after a trail
of a million): 25.5 µs CPU a record, 27.9 µs with the rows inserted with each batch into the same index;
so the generations do most of the work, and writing a generation at once saves the rest of the CPU and
most of the WAL volume (its pages are written once, not at every batch of a generation in progress).

The derivation is the writer's ``_person_numbers`` in SQL: per event and role, each distinct number
with NULs removed (the lists hold none: the writer removes them) and surrounding spaces trimmed, of
1–11 characters. Needs SQLite's JSON1 (built in since 3.38, and in most builds long before); without it
the writer inserts person rows with each batch and keeps the watermark at the newest event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError

from store import schema as s

__all__ = ["GENERATION", "INDEXED_KEY", "MAX_NUMBER", "generation_of", "has_json1", "index_events",
           "indexed_upto", "newest_event", "person_events_sql", "set_indexed_upto"]

INDEXED_KEY = "audit.person_indexed_upto"
GENERATION = 10_000  # events per generation (stored format)
MAX_NUMBER = 11  # audit_person.number

# table and column names of the driver-level SQL below, through store.schema (a rename there fails at import)
_EV, _AP = s.audit_event.name, s.audit_person.name
_ID, _ASKED, _RETURNED = s.audit_event.c.id.name, s.audit_event.c.asked.name, s.audit_event.c.returned.name
_GEN, _NUMBER, _AUDIT_ID, _ROLE = (s.audit_person.c.gen.name, s.audit_person.c.number.name,
                                   s.audit_person.c.audit_id.name, s.audit_person.c.role.name)
_ROWS = " UNION ALL ".join(
    f"SELECT DISTINCT e.{_ID} AS {_AUDIT_ID}, trim(j.value, ' ') AS {_NUMBER}, '{role}' AS {_ROLE}"
    f" FROM {_EV} e, json_each(e.{role}) j WHERE e.{_ID} > :lo AND e.{_ID} <= :hi AND j.type = 'text'"
    f" AND length(trim(j.value, ' ')) BETWEEN 1 AND {MAX_NUMBER}" for role in (_ASKED, _RETURNED))
_INDEX = (f"INSERT INTO {_AP} ({_GEN}, {_NUMBER}, {_AUDIT_ID}, {_ROLE}) SELECT :gen, {_NUMBER}, {_AUDIT_ID}, {_ROLE}"
          f" FROM ({_ROWS}) ORDER BY {_NUMBER}, {_AUDIT_ID}")
_JSON1: list[bool] = []  # [whether this process's SQLite has json_each], once known


def generation_of(audit_id: int) -> int:
    return (audit_id - 1) // GENERATION


def has_json1(conn: Connection | Any) -> bool:
    if not _JSON1:
        try:
            conn.exec_driver_sql("SELECT count(*) FROM json_each('[1]')").scalar_one()
            _JSON1.append(True)
        except SQLAlchemyError:
            _JSON1.append(False)
    return _JSON1[0]


def newest_event(conn: Connection) -> int:
    """The id of the newest audit event (0 when there is none)."""
    return int(conn.exec_driver_sql(f"SELECT coalesce(max({_ID}), 0) FROM {_EV}").scalar_one())


def indexed_upto(conn: Connection) -> int:
    """The watermark: events up to this id have their ``audit_person`` rows (0 when never set)."""
    value = conn.execute(select(s.store_state.c.value).where(s.store_state.c.key == INDEXED_KEY)).scalar()
    return int(value) if value is not None else 0


def set_indexed_upto(conn: Connection, upto: int) -> None:
    stmt = sqlite.insert(s.store_state).values(key=INDEXED_KEY, value=str(upto))
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": str(upto)}))


def index_events(conn: Connection, upto: int, *, whole: bool = True, limit: int | None = None) -> int:
    """Write the ``audit_person`` rows of the events past the watermark up to ``upto``, a generation at a time
    (only whole generations when ``whole``; at most ``limit`` of them), and move the watermark; in the
    caller's transaction (SQLite). Returns the number of events covered."""
    mark = start = indexed_upto(conn)
    done = 0
    while mark < upto and (limit is None or done < limit):
        gen = generation_of(mark + 1)
        end = (gen + 1) * GENERATION
        if end > upto:
            if whole:
                break
            end = upto
        conn.exec_driver_sql(_INDEX, {"gen": gen, "lo": mark, "hi": end})
        mark, done = end, done + 1
    if mark != start:
        set_indexed_upto(conn, mark)
    return mark - start


def person_events_sql(dialect: str, *, tail: bool) -> str:
    """SQL for the ids of the events that name ``:number``: a seek per generation up to ``:top`` (on PostgreSQL
    the generations are the array ``:gens``) and, with ``tail`` (SQLite), the events past the watermark
    ``:mark`` whose lists name it."""
    if dialect == "postgresql":  # = ANY(array) on the leading column: one index descent per generation
        return f"SELECT {_AUDIT_ID} FROM {_AP} WHERE {_GEN} = ANY(:gens) AND {_NUMBER} = :number"
    gens = ("WITH RECURSIVE g(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM g WHERE n < :top) "
            f"SELECT {_AUDIT_ID} FROM {_AP} WHERE {_GEN} IN (SELECT n FROM g) AND {_NUMBER} = :number")
    if not tail:
        return gens
    return (f"{gens} UNION ALL SELECT {_ID} FROM {_EV} WHERE {_ID} > :mark AND (EXISTS (SELECT 1 FROM"
            f" json_each({_EV}.{_ASKED}) WHERE trim(value, ' ') = :number) OR EXISTS (SELECT 1 FROM"
            f" json_each({_EV}.{_RETURNED}) WHERE trim(value, ' ') = :number))")
