"""Identification by demographics: blocking on the search index, scoring with rapidfuzz.

For a record without a (valid) identity number, candidates come from blocks that each tolerate a
different kind of noise, every block an indexed query on ``person_search``, in two stages:

- narrow: same birth date (catches any name typo, married names); postnummer and family name's first
  3 letters (catches a wrong birth date);
- wide, only when the narrow blocks did not identify the person: birth year and family name's first 3
  letters (a wrong birth day or month); birth year and given name's first 3 letters (a changed or
  misspelt family name).

Each candidate is scored with log-odds-style weights (Fellegi–Sunter with hand-set m/u, as measured
in research/performance-and-matching.md §1.5): agreement on a field adds, disagreement subtracts;
names compare by Jaro-Winkler (rapidfuzz) and also with given and family name swapped. The best
candidate is *identified* when its score reaches ``ACCEPT`` and leads the runner-up by ``LEAD``;
candidates above ``CANDIDATE`` otherwise make the answer *ambiguous*.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from rapidfuzz.distance import JaroWinkler
from sqlalchemy import Connection, and_, or_, select

from store import schema as s
from store.normalize import name_key, street_key

__all__ = ["ACCEPT", "CANDIDATE", "LEAD", "Candidate", "Identification", "IdentifyQuery", "Outcome", "identify"]

ACCEPT = 20.0
LEAD = 6.0
CANDIDATE = 10.0
_BLOCK_LIMIT = 3000


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


def _prefix(col: Any, key: str) -> Any:
    return and_(col >= key, col < key + "{")


def _name_weight(q: str, r: str) -> float:
    if not q or not r:
        return 0.0
    if q == r:
        return 5.0
    sim = JaroWinkler.normalized_similarity(q, r)
    if sim >= 0.92:
        return 3.0
    if sim >= 0.85:
        return 1.0
    return -4.0


def _first(words: str) -> str:
    return words.split()[0] if words else ""


def score(q: IdentifyQuery, row: Any) -> float:
    """The match weight of one person_search row for the query."""
    qg, qf = name_key(q.given), name_key(q.family)
    rg, rf = row.given_key, row.family_key
    straight = _name_weight(qf, rf) + _name_weight(_first(qg), _first(rg))
    swapped = _name_weight(qf, _first(rg)) + _name_weight(_first(qg), rf) - 2.0
    total = max(straight, swapped)
    if q.birth_date and row.birth_date:
        if q.birth_date == row.birth_date:
            total += 14.0
        else:
            same = sum((q.birth_date.year == row.birth_date.year, q.birth_date.month == row.birth_date.month,
                        q.birth_date.day == row.birth_date.day))
            # a day/month swap or a one-field slip is common; anything else is a different person
            swap = q.birth_date.day == row.birth_date.month and q.birth_date.month == row.birth_date.day
            total += 5.0 if swap and q.birth_date.year == row.birth_date.year else (4.0 if same == 2 else -8.0)
    elif q.birth_year and row.birth_year:
        total += 5.0 if q.birth_year == row.birth_year else -8.0
    if q.gender and row.gender:
        total += 1.0 if q.gender == row.gender else -3.0
    if q.postnummer and row.postnummer:
        total += 6.0 if q.postnummer == row.postnummer else -0.5
    elif q.kommune and row.kommune:
        total += 3.0 if q.kommune == row.kommune else -0.5
    if q.street and row.street_key:
        total += 4.0 if JaroWinkler.normalized_similarity(street_key(q.street), row.street_key) >= 0.92 else 0.0
    return total


def _blocks(q: IdentifyQuery) -> tuple[list[Any], list[Any]]:
    """(narrow blocks, wide blocks). The narrow ones (same birth date; postnummer + family name) find a
    record with a right birth date or address among a few dozen rows; the wide ones (name prefix + birth
    year) catch a wrong birth date, at some hundreds of rows at national scale."""
    t = s.person_search.c
    fam3 = name_key(q.family)[:3]
    giv3 = name_key(q.given)[:3]
    year = q.birth_date.year if q.birth_date else q.birth_year
    narrow, wide = [], []
    if q.birth_date:
        narrow.append(t.birth_date == q.birth_date)
    if q.postnummer and len(fam3) == 3:
        narrow.append(and_(t.postnummer == q.postnummer, _prefix(t.family_key, fam3)))
    if year and len(fam3) == 3:
        wide.append(and_(t.birth_year == year, _prefix(t.family_key, fam3)))
    if year and len(giv3) == 3:
        wide.append(and_(t.birth_year == year, _prefix(t.given_key, giv3)))
    return narrow, wide


def _classify(scored: list[Candidate]) -> Identification:
    cands = [c for c in scored if c.score >= CANDIDATE]
    if not cands:
        return Identification(Outcome.NOT_FOUND)
    runner_up = cands[1].score if len(cands) > 1 else CANDIDATE - LEAD
    if cands[0].score >= ACCEPT and cands[0].score - runner_up >= LEAD:
        return Identification(Outcome.IDENTIFIED, cands)
    return Identification(Outcome.AMBIGUOUS, cands)


def identify(conn: Connection, q: IdentifyQuery) -> Identification:
    """Ranked candidates for a record without an identity number.

    The narrow blocks are tried first; only when they do not identify the person are the wide blocks
    added (their union rescored), so the common case costs a few dozen comparisons.
    """
    narrow, wide = _blocks(q)
    seen: dict[int, Candidate] = {}
    result = Identification(Outcome.NOT_FOUND)
    for blocks in (narrow, wide):
        if not blocks:
            continue
        for r in conn.execute(select(s.person_search).where(or_(*blocks)).limit(_BLOCK_LIMIT)):
            if r.person_id not in seen:
                seen[r.person_id] = Candidate(r.person_id, score(q, r))
        result = _classify(sorted(seen.values(), key=lambda c: (-c.score, c.person_id)))
        if result.outcome == Outcome.IDENTIFIED:
            return result
    return result
