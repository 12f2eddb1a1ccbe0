"""Identification by demographics: blocking on the search index, scoring with rapidfuzz.

For a record without a (valid) identity number, candidates come from blocks that each tolerate a
different kind of noise, every block an indexed query on ``person_search``, in two stages:

- narrow: same birth date (catches any name typo, married names); postnummer and family name's first
  3 letters (catches a wrong birth date);
- wide, only when the narrow blocks did not identify the person: birth year and family name's first 3
  letters (a wrong birth day or month); birth year and given name's first 3 letters (a changed or
  misspelt family name).

A record that carries a number the store does not know — it fails the check digits, or is valid but
nobody's — first gets a **number block**: the persons holding a valid number one typing error away from
it (:func:`store.identity.near_valid`: one digit different, or two neighbouring digits swapped). Those
candidates get ``NUMBER_NEAR`` on top of their demographic score (agreement on one more field: a
mistyped number that is one error from a person's is strong evidence; disagreement is not penalised).
When the best of them is identified and leads even a person who agreed on every demographic field the
record gives (the largest score such a person could reach) by ``LEAD``, no demographic block can change
the answer and none is read; otherwise the blocks below follow, with these candidates kept.

Each candidate is scored with log-odds-style weights (Fellegi–Sunter weights
set by hand): agreement on a field adds, disagreement subtracts;
names compare by Jaro-Winkler (rapidfuzz) and also with given and family name swapped. The best
candidate is *identified* when its score reaches ``ACCEPT`` and leads the runner-up by ``LEAD``;
candidates above ``CANDIDATE`` otherwise make the answer *ambiguous*.

No oracle: the address fields of a candidate whose address the caller may not see (:class:`SearchScope`,
from its access profile) neither add nor subtract, and the postnummer block does not read such persons, so
the answer and its scores are the same whatever address the record gives for them (store/search.py).

Built for throughput (a Filematch wash identifies tens of thousands of records): each query's normalised
keys are computed once, and the block queries are driver-level SQL over the index columns only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import JaroWinkler
from sqlalchemy import Column, Connection, Dialect, Select, bindparam, select

from store import schema as s
from store.engine import fetch_all, run_driver
from store.identity import near_valid
from store.normalize import name_key, street_key
from store.search import ALL_RELEASABLE, SearchScope, levels_sql

cached_name_key = lru_cache(maxsize=1 << 16)(name_key)
cached_street_key = lru_cache(maxsize=1 << 16)(street_key)

__all__ = ["ACCEPT", "CANDIDATE", "LEAD", "NUMBER_NEAR", "Candidate", "Identification", "IdentifyQuery", "Outcome",
           "identify", "identify_many"]

ACCEPT = 20.0
LEAD = 6.0
CANDIDATE = 10.0
NUMBER_NEAR = 8.0  # the record's unknown number is one typing error from the candidate's
_BLOCK_LIMIT = 3000  # rows one block may return


@dataclass(frozen=True, slots=True)
class IdentifyQuery:
    given: str | None = None
    family: str | None = None
    birth_date: dt.date | None = None
    birth_year: int | None = None
    gender: str | None = None
    postnummer: str | None = None
    kommune: str | None = None
    street: str | None = None
    number: str | None = None  # a number the record carries that the store does not know (mistyped?)


class Outcome(StrEnum):
    IDENTIFIED = "identified"
    AMBIGUOUS = "ambiguous"
    NOT_FOUND = "notFound"


@dataclass(frozen=True, slots=True)
class Candidate:
    person_id: int
    score: float


@dataclass(frozen=True, slots=True)
class Identification:
    outcome: Outcome
    candidates: list[Candidate] = field(default_factory=list)  # best first, score ≥ CANDIDATE

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


# the driver-level SQL below names person_search's table and columns through store.schema (a rename there fails
# at import, tests/unit/test_driver_sql.py)
_S, _I = s.person_search, s.person_identifier
_SCORED = (_S.c.person_id, _S.c.family_key, _S.c.given_key, _S.c.birth_date, _S.c.birth_year, _S.c.gender,
           _S.c.kommune, _S.c.postnummer, _S.c.street_key)  # in the order _score reads them
_COLS = ", ".join(c.name for c in _SCORED)
_COLS_LEVEL = f"{_COLS}, {_S.c.address_protection.name}"  # read only when the scope hides some level (_Query.levels)
_TABLE, _FAMILY, _GIVEN = _S.name, _S.c.family_key.name, _S.c.given_key.name
_BIRTH_DATE, _BIRTH_YEAR, _POSTNUMMER = _S.c.birth_date.name, _S.c.birth_year.name, _S.c.postnummer.name


def _near(*cols: Column[Any]) -> Select[Any]:
    return (select(*cols).select_from(_I.join(_S, _S.c.person_id == _I.c.person_id))
            .where(_I.c.number.in_(bindparam("numbers", expanding=True))))


_NEAR = {_COLS: _near(*_SCORED), _COLS_LEVEL: _near(*_SCORED, _S.c.address_protection)}


class _Query:
    """An IdentifyQuery with its normalised keys computed once."""

    __slots__ = ("fam3", "giv3", "kommune_levels", "levels", "q", "qf", "qg1", "qstreet", "year")

    def __init__(self, q: IdentifyQuery, scope: SearchScope) -> None:
        self.q = q
        # None: every indexed address may be used (the common case: no per-row test)
        self.levels = None if scope.sees_all(scope.levels) else scope.levels
        self.kommune_levels = None if scope.sees_all(scope.kommune_levels) else scope.kommune_levels
        qf = cached_name_key(q.family)
        qg = cached_name_key(q.given)
        self.qf = qf
        self.qg1 = qg.split()[0] if qg else ""
        self.qstreet = cached_street_key(q.street) if q.street else None
        self.fam3 = qf[:3]
        self.giv3 = qg[:3]
        self.year = q.birth_date.year if q.birth_date else q.birth_year


# The weight of each field when it agrees (the most it can add); _score and _best_possible both use them.
_W_NAME, _W_BIRTH_DATE, _W_BIRTH_YEAR, _W_GENDER = 5.0, 14.0, 5.0, 1.0
_W_POSTNUMMER, _W_KOMMUNE, _W_STREET = 6.0, 3.0, 4.0


def _name_weight(q: str, r: str) -> float:
    if not q or not r:
        return 0.0
    if q == r:
        return _W_NAME
    sim = JaroWinkler.normalized_similarity(q, r)
    if sim >= 0.92:
        return 3.0
    if sim >= 0.85:
        return 1.0
    return -4.0


def _score(pq: _Query, row: Sequence[Any], birth_date: dt.date | None) -> float:
    """The match weight of one person_search row (``_COLS``) for the query."""
    q = pq.q
    qf, qg1 = pq.qf, pq.qg1
    rg, rf = row[2], row[1]
    rg1 = rg.split()[0] if rg else ""
    straight = _name_weight(qf, rf) + _name_weight(qg1, rg1)
    swapped = _name_weight(qf, rg1) + _name_weight(qg1, rf) - 2.0
    total = max(straight, swapped)
    qd = q.birth_date
    if qd and birth_date:
        if qd == birth_date:
            total += _W_BIRTH_DATE
        else:
            same = sum((qd.year == birth_date.year, qd.month == birth_date.month, qd.day == birth_date.day))
            swap = qd.day == birth_date.month and qd.month == birth_date.day
            total += 5.0 if swap and qd.year == birth_date.year else (4.0 if same == 2 else -8.0)
    elif q.birth_year and row[4]:
        total += _W_BIRTH_YEAR if q.birth_year == row[4] else -8.0
    if q.gender and row[5]:
        total += _W_GENDER if q.gender == row[5] else -3.0
    levels = pq.levels  # None: every address counts (and the row may have no level column)
    seen = levels is None or row[9] in levels
    if q.postnummer and row[7] and seen:
        total += _W_POSTNUMMER if q.postnummer == row[7] else -0.5
    elif q.kommune and row[6] and (pq.kommune_levels is None or row[9] in pq.kommune_levels):
        total += _W_KOMMUNE if q.kommune == row[6] else -0.5
    if q.street and row[8] and seen:
        total += _W_STREET if JaroWinkler.normalized_similarity(pq.qstreet or "", row[8]) >= 0.92 else 0.0
    return total


def _best_possible(pq: _Query) -> float:
    """The largest score any person can reach on the demographic fields the query gives (all agree)."""
    q = pq.q
    total = (_W_NAME if pq.qf else 0.0) + (_W_NAME if pq.qg1 else 0.0)
    total += _W_BIRTH_DATE if q.birth_date else _W_BIRTH_YEAR if q.birth_year else 0.0
    total += _W_GENDER if q.gender else 0.0
    total += _W_POSTNUMMER if q.postnummer else _W_KOMMUNE if q.kommune else 0.0
    return total + (_W_STREET if q.street else 0.0)


def _cols(pq: _Query) -> str:
    return _COLS if pq.levels is None and pq.kommune_levels is None else _COLS_LEVEL


_Block = tuple[str, tuple[Any, ...]]


def _blocks(dialect: Dialect, pq: _Query) -> tuple[list[_Block], list[_Block]]:
    """(narrow, wide) blocks, each a list of driver SQL queries with their parameters (the module
    docstring's blocks). One query per block key rather than one ``OR`` of them: each then reads its own
    index alone (the birth date block's index covers every scored column: no table reads).
    Driver SQL built per query: SQLAlchemy statement construction cost more than the query itself."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    q = pq.q
    prefix = f"{_FAMILY} >= {mark} AND {_FAMILY} < {mark}"
    narrow: list[_Block] = []
    wide: list[_Block] = []

    cols = _cols(pq)

    def block(where: str, *params: Any) -> _Block:
        return f"SELECT {cols} FROM {_TABLE} WHERE {where} LIMIT {_BLOCK_LIMIT}", params

    if q.birth_date:
        narrow.append(block(f"{_BIRTH_DATE} = {mark}",
                            q.birth_date.isoformat() if dialect.name == "sqlite" else q.birth_date))
    if q.postnummer and len(pq.fam3) == 3 and (pq.levels is None or pq.levels):
        hidden = "" if pq.levels is None else " AND " + levels_sql(pq.levels)
        narrow.append(block(f"{_POSTNUMMER} = {mark} AND {prefix}{hidden}", q.postnummer, pq.fam3, pq.fam3 + "{"))
    if pq.year and len(pq.fam3) == 3:
        wide.append(block(f"{_BIRTH_YEAR} = {mark} AND {prefix}", pq.year, pq.fam3, pq.fam3 + "{"))
    if pq.year and len(pq.giv3) == 3:
        wide.append(block(f"{_BIRTH_YEAR} = {mark} AND {_GIVEN} >= {mark} AND {_GIVEN} < {mark}",
                          pq.year, pq.giv3, pq.giv3 + "{"))
    return narrow, wide


def _classify(seen: dict[int, float]) -> Identification:
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))
    cands = [Candidate(pid, sc) for pid, sc in ranked if sc >= CANDIDATE]
    if not cands:
        return Identification(Outcome.NOT_FOUND)
    runner_up = cands[1].score if len(cands) > 1 else CANDIDATE - LEAD
    if cands[0].score >= ACCEPT and cands[0].score - runner_up >= LEAD:
        return Identification(Outcome.IDENTIFIED, cands)
    return Identification(Outcome.AMBIGUOUS, cands)


def identify(conn: Connection, q: IdentifyQuery, *, scope: SearchScope) -> Identification:
    """Ranked candidates for a record without an identity number; addresses used as ``scope`` allows.

    The narrow blocks are tried first; only when they do not identify the person are the wide blocks
    added (their union rescored), so the common case costs a few dozen comparisons.
    """
    if scope.elements != ALL_RELEASABLE.elements:
        q = _within(q, scope.elements)
    pq = _Query(q, scope)
    seen: dict[int, float] = {}
    result = Identification(Outcome.NOT_FOUND)
    near = near_valid(q.number) if q.number else []
    if near:
        _add_scores(seen, pq, run_driver(conn, _NEAR[_cols(pq)], {"numbers": near}, numbers=len(near)), NUMBER_NEAR)
        result = _classify(seen)
        best = result.best
        if result.outcome == Outcome.IDENTIFIED and best is not None and best.score - _best_possible(pq) >= LEAD:
            return result
    for stage in _blocks(conn.dialect, pq):
        if not stage:
            continue
        for sql, params in stage:
            _add_scores(seen, pq, fetch_all(conn, sql, params))
        result = _classify(seen)
        if result.outcome == Outcome.IDENTIFIED:
            return result
    return result


def _within(q: IdentifyQuery, elements: frozenset[str]) -> IdentifyQuery:
    """``q`` without the fields of the elements the caller may not see (they neither block nor score)."""
    hidden: dict[str, None] = {}
    for element, names in (("identifiers", ("number",)), ("name", ("given", "family")),
                           ("birth", ("birth_date", "birth_year")), ("gender", ("gender",)),
                           ("addresses", ("postnummer", "kommune", "street"))):
        if element not in elements:
            hidden.update(dict.fromkeys(names))
    return replace(q, **hidden)


def _add_scores(seen: dict[int, float], pq: _Query, rows: Sequence[Any], bonus: float = 0.0) -> None:
    """Score the person_search rows (``_COLS``) not seen yet (DBAPI rows: SQLAlchemy's cost more than the
    scoring; SQLite gives the birth date as text)."""
    for row in rows:
        pid = row[0]
        if pid not in seen:
            bd = row[3]
            if isinstance(bd, str):
                bd = dt.date.fromisoformat(bd)
            seen[pid] = _score(pq, row, bd) + bonus


def identify_many(conn: Connection, queries: Sequence[IdentifyQuery], *,
                  scope: SearchScope) -> list[Identification]:
    """:func:`identify` of each query, in order."""
    return [identify(conn, q, scope=scope) for q in queries]
