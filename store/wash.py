"""Lean batched reads for washing a client file (filematch): briefs by number and by person id.

The wash answers every record of a file that may hold millions, so its reads are shaped for throughput
rather than for the general API of :class:`store.repository.PersonRepository`:

- **by number**: one query per 500 numbers over ``person_identifier`` LEFT JOIN ``person_brief`` (driver-level
  SQL built from store.schema, compiled once per dialect and batch size), ceased numbers included; the answer
  is each person's brief (:mod:`store.brief`: the current values a wash reads, split into fields), not its
  document — a person stored without its brief is answered from its document (store.derived.build_missing),
  never left out;
- **by person id**: the briefs of the candidates identification found;
- identification by demographics is :func:`store.matching.identify_many`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, select

from store import schema as s
from store.brief import split_brief
from store.engine import run_driver
from store.matching import cached_name_key, cached_street_key

__all__ = ["cached_name_key", "cached_street_key", "find_briefs", "load_briefs"]

_BATCH = 500  # keys per IN (...), as store.repository

# -- driver-level SQL, built from store.schema (store.engine.run_driver) -----------------------------------

_i, _b = s.person_identifier, s.person_brief
_BY_NUMBERS = (select(_i.c.number, _i.c.person_id, _b.c.brief)
               .select_from(_i.outerjoin(_b, _b.c.person_id == _i.c.person_id))
               .where(_i.c.number.in_(bindparam("numbers", expanding=True))))
_BY_IDS = select(_b.c.person_id, _b.c.brief).where(_b.c.person_id.in_(bindparam("ids", expanding=True)))


def _missing(conn: Connection, person_ids: list[int]) -> dict[int, str]:
    """Briefs built from the documents of persons stored without theirs (store.derived.build_missing)."""
    from store.derived import BRIEF, build_missing

    return build_missing(conn, BRIEF, person_ids)


def find_briefs(conn: Connection, numbers: Sequence[str]) -> dict[str, list[str]]:
    """number → the brief fields of its person, for every known number (ceased ones included); a person stored
    without its brief is answered from its document (the same fields)."""
    out: dict[str, list[str]] = {}
    unique = sorted(set(numbers))  # index order: neighbouring keys share pages
    for k in range(0, len(unique), _BATCH):
        chunk = unique[k : k + _BATCH]
        without: dict[str, int] = {}
        for number, pid, brief in run_driver(conn, _BY_NUMBERS, {"numbers": chunk}, numbers=len(chunk)):
            if number not in out:
                if brief is not None:
                    out[number] = split_brief(brief)
                else:
                    without.setdefault(number, pid)
        if without:
            built = _missing(conn, list(without.values()))
            out.update({n: split_brief(built[pid]) for n, pid in without.items() if pid in built and n not in out})
    return out


def load_briefs(conn: Connection, person_ids: Sequence[int]) -> dict[int, list[str]]:
    """person id → brief fields (missing ids are left out; a person stored without its brief is answered from
    its document)."""
    out: dict[int, list[str]] = {}
    unique = sorted(set(person_ids))
    for k in range(0, len(unique), _BATCH):
        chunk = unique[k : k + _BATCH]
        for pid, brief in run_driver(conn, _BY_IDS, {"ids": chunk}, ids=len(chunk)):
            out[pid] = split_brief(brief)
    if len(out) < len(unique):
        out.update({pid: split_brief(b) for pid, b in _missing(conn, [p for p in unique if p not in out]).items()})
    return out
