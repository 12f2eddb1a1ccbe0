"""Lean batched reads for washing a client file (filematch): briefs by number and by person id.

The wash answers every record of a file that may hold millions, so its reads are shaped for throughput
rather than for the general API of :class:`store.repository.PersonRepository`:

- **by number**: one query per 500 numbers over ``person_identifier`` JOIN ``person_brief`` (driver-level
  SQL, compiled once per dialect and batch size), ceased numbers included; the answer is each person's
  brief (:mod:`store.brief`: the current values a wash reads, split into fields), not its document;
- **by person id**: the briefs of the candidates identification found;
- identification by demographics is :func:`store.matching.identify_many`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Dialect

from store.brief import split_brief
from store.engine import fetch_all
from store.matching import cached_name_key, cached_street_key

__all__ = ["cached_name_key", "cached_street_key", "find_briefs", "load_briefs"]

_BATCH = 500  # keys per IN (...), as store.repository

# -- driver-level SQL -------------------------------------------------------------------------------

_SQL: dict[tuple[str, str, int], str] = {}


def _marks(dialect: Dialect, n: int) -> str:
    return ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * n)


def _sql(dialect: Dialect, kind: str, n: int) -> str:
    key = (dialect.name, kind, n)
    sql = _SQL.get(key)
    if sql is None:
        if kind == "numbers":
            sql = ("SELECT i.number, b.brief FROM person_identifier i JOIN person_brief b ON b.person_id = i.person_id "
                   f"WHERE i.number IN ({_marks(dialect, n)})")
        else:
            sql = f"SELECT person_id, brief FROM person_brief WHERE person_id IN ({_marks(dialect, n)})"
        _SQL[key] = sql
    return sql


def find_briefs(conn: Connection, numbers: Sequence[str]) -> dict[str, list[str]]:
    """number → the brief fields of its person, for every known number (ceased ones included)."""
    out: dict[str, list[str]] = {}
    unique = sorted(set(numbers))  # index order: neighbouring keys share pages
    for k in range(0, len(unique), _BATCH):
        chunk = tuple(unique[k : k + _BATCH])
        for number, brief in fetch_all(conn, _sql(conn.dialect, "numbers", len(chunk)), chunk):
            if number not in out:
                out[number] = split_brief(brief)
    return out


def load_briefs(conn: Connection, person_ids: Sequence[int]) -> dict[int, list[str]]:
    """person id → brief fields (missing ids are left out)."""
    out: dict[int, list[str]] = {}
    unique = sorted(set(person_ids))
    for k in range(0, len(unique), _BATCH):
        chunk = tuple(unique[k : k + _BATCH])
        for pid, brief in fetch_all(conn, _sql(conn.dialect, "ids", len(chunk)), chunk):
            out[pid] = split_brief(brief)
    return out
