"""Identification by demographics: blocking on the search index, Fellegi–Sunter scoring, a match probability.

For a record without a (valid) identity number, candidates come from **blocking passes**, each an indexed
query on ``person_search`` with a row cap, in three stages; a stage runs only when the ones before it did
not identify the person, so the common case costs a few dozen comparisons:

1. *narrow*: the same birth date (any name typo, married names, moved); postnummer and the family name's
   first 3 letters (a wrong birth date);
2. *wide*: birth year and the family name (a wrong day or month, a moved person with a misspelt given
   name); birth year and the first given name (a changed or misspelt family name); street and family name
   (a mistyped postnummer and no or a wrong birth date);
3. *two errors*: the birth date with day and month transposed; birth year and the first given name as
   family name (given and family name swapped, with a wrong date); postnummer, the given name's initial and
   the birth year (married name and a wrong date); postnummer and the given name's first 3 letters, as
   given or as family name, and street with the given name's first 3 letters as family name (no birth date,
   and a changed family name, or names swapped); a postnummer one typo away and the family name's first 3
   letters (a mistyped postnummer without a birth date); the birth date with one digit of the year off and
   the family name's first 3 letters, or the first name's with the family name's initial (1962 for 1982,
   moved).

A name in a pass is the record's whole key as a prefix (``Kris`` reaches ``Kristoffer``: a shortened first
name; ``Hansen`` reaches ``Hansen Berg``), not its first 3 letters (``han``: Hansen, Hanssen, Hanna, …),
whose block grows with the register: at a million persons a birth year and 3 letters are ~100 rows. The
postnummer passes keep the first 3 letters (2 for a two-letter name: ``Au``): they are narrow by the
postnummer, and FEBRL4's misspelt surnames with a wrong or no birth date need them. A misspelt name is
reached through the other name: a family-name typo by the given name's passes and the other way round.

Three blocks grow with the register and are kept to the persons who could matter (session 9): birth year
+ family name, birth year + first name and the mistyped-postnummer pass read only persons of the
record's gender (or none given: a wrong gender is a third error there, and the birth date block reads
every gender); birth year + first name reads only those with one more thing of the record's — the family
name's initial, the postnummer, kommune or street, or the birth date transposed or one digit off — since
a namesake of the same year with none of them and another family name cannot reach the threshold; the
mistyped-postnummer pass only postnummer the register has and persons with the record's initial, birth
year or street. A stage's candidates are classified only when the best of them could be identified.

docs/filematch.md gives each pass's marginal recall and cost (``python -m benchmarks identify``).

A record that carries a number the store does not know — it fails the check digits, or is valid but
nobody's — first gets a **number block**: the persons holding a valid number one typing error away from
it (:func:`store.identity.near_valid`). Those candidates get ``NUMBER_NEAR`` bits of weight (a mistyped
number one error from a person's is strong evidence; disagreement is not penalised). When the best of them
is identified and leads even a person who agreed on every demographic field the record gives by
``NUMBER_NEAR`` bits, no demographic block can change the answer and none is read.

**Scoring** (:mod:`store.linkage`): each candidate's comparison vector (a level per field: exact,
Jaro-Winkler bands, initials, day/month transposed, one digit off, year only, missing) weighs
W = Σ log2(m/u) bits, names and postnummer term-frequency adjusted, with parameters estimated offline from
the register (``pregbridge identify estimate``). A field the record or the person lacks weighs 0: a
record is identified from whatever it has. The candidate's **probability** is Bayes' rule over the
register (store/linkage/params.py): its prior odds of being any one person times 2^W, against the
other candidates found and the chance that the record is of nobody in the register. The decision has one
threshold, ``MATCH_PROBABILITY``:

- IDENTIFIED: the best candidate's probability reaches it;
- AMBIGUOUS: no candidate does, but two or more (each at least ``CANDIDATE_PROBABILITY``) do together —
  the record is one of them, and which is not told by what it gives (twins, a record without first name);
- NOT_FOUND: otherwise.

**Second look: earlier family names.** When no stage identified the record, the best few candidates whose
current family name differs from the record's are read with their name history (``person.doc``): one
who had the record's family name before (a client register that never learnt of a marriage) weighs it as
agreement on an earlier name, term-frequency adjusted with the m of a disagreeing family name
(``Parameters.weight_former``), instead of as disagreement. One indexed query, only for the records no
stage identified, and only of the candidates an earlier name could lift to IDENTIFIED (their weight plus
the largest lift reaches the threshold).

A candidate's ``score`` is its posterior log-odds in bits (log2 of probability / (1 − probability) if it
were the only candidate): monotone in the evidence, and not saturating as the probability does near 1.

No oracle: the address fields of a candidate whose address the caller may not see (:class:`SearchScope`,
from its access profile) are *missing* (weight 0), and the postnummer passes do not read such persons, so
the answer and its scores are the same whatever address the record gives for them (store/search.py).

Built for throughput (a Filematch wash identifies tens of thousands of records): each query's normalised
keys are computed once, the block queries are driver-level SQL over the index columns only, the
parameters are read once per process (store/linkage/params.py), and the rows are weighed by one fused loop
(:class:`store.linkage.score.RowScorer`: the float ``Parameters.weigh`` gives, the levels of a name, street
or birth date met before in the record's blocks looked up rather than compared again).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Dialect

from store import schema as s
from store.document import decode_stored
from store.engine import fetch_all
from store.identity import near_valid
from store.linkage.compare import FAMILY, MISSING, Rec, compare
from store.linkage.params import Parameters, parameters_for
from store.linkage.score import RowScorer
from store.normalize import name_key, street_key
from store.search import ALL_RELEASABLE, SearchScope, levels_sql

cached_name_key = lru_cache(maxsize=1 << 16)(name_key)
cached_street_key = lru_cache(maxsize=1 << 16)(street_key)

__all__ = ["CANDIDATE_PROBABILITY", "MATCH_PROBABILITY", "NUMBER_NEAR", "Candidate", "Identification",
           "IdentifyQuery", "Outcome", "block_passes", "identify", "identify_many", "query_rec"]

MATCH_PROBABILITY = 0.99  # the one decision threshold (module docstring)
CANDIDATE_PROBABILITY = 0.01  # a person is a candidate (listed, counted for AMBIGUOUS) from this probability
NUMBER_NEAR = 10.0  # bits: the record's unknown number is one typing error from the candidate's
_BLOCK_LIMIT = 3000  # rows one narrow or wide block may return
_PASS_LIMIT = 1000  # rows one two-error pass may return


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
    score: float  # posterior log-odds, bits (module docstring)
    probability: float = 0.0


@dataclass(frozen=True, slots=True)
class Identification:
    outcome: Outcome
    candidates: list[Candidate] = field(default_factory=list)  # best first, probability ≥ CANDIDATE_PROBABILITY

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


# the driver-level SQL below names person_search's table and its scored columns through store.schema (a rename
# there fails at import, tests/integration/test_driver_sql.py); the blocking passes' WHERE clauses still name
# their key columns as text
_S, _I = s.person_search, s.person_identifier
_SCORED = (_S.c.person_id, _S.c.family_key, _S.c.given_key, _S.c.birth_date, _S.c.birth_year, _S.c.gender,
           _S.c.kommune, _S.c.postnummer, _S.c.street_key)  # in the order the weights read them
_COLS = ", ".join(c.name for c in _SCORED)
_COLS_LEVEL = f"{_COLS}, {_S.c.address_protection.name}"  # read only when the scope hides some level (_Query.levels)
_NEAR_FROM = (f"FROM {_I.name} i JOIN {_S.name} s ON s.{_S.c.person_id.name} = i.{_I.c.person_id.name} "
              f"WHERE i.{_I.c.number.name} IN")


def query_rec(q: IdentifyQuery) -> Rec:
    """The record's side of a comparison (store.linkage.compare.Rec)."""
    year = q.birth_date.year if q.birth_date else q.birth_year
    return (cached_name_key(q.family), tuple(cached_name_key(q.given).split()), q.birth_date, year, q.gender,
            q.postnummer, q.kommune, cached_street_key(q.street) if q.street else None)


class _Query:
    """An IdentifyQuery with its normalised keys and its exact-agreement weights computed once."""

    __slots__ = ("fam3", "giv1", "giv3", "kommune_levels", "levels", "params", "q", "rec", "scorer", "w_exact",
                 "year")

    def __init__(self, q: IdentifyQuery, scope: SearchScope, params: Parameters) -> None:
        self.q = q
        self.params = params
        # None: every indexed address may be used (the common case: no per-row test)
        self.levels = None if scope.sees_all(scope.levels) else scope.levels
        self.kommune_levels = None if scope.sees_all(scope.kommune_levels) else scope.kommune_levels
        self.rec = rec = query_rec(q)
        qf, qg = rec[0], rec[1]
        self.fam3 = qf[:3]
        self.giv3 = qg[0][:3] if qg else ""
        self.giv1 = qg[0][:1] if qg else ""
        self.year = rec[3]
        # weight of exact agreement on the record's own values (term-frequency adjusted)
        self.w_exact = params.exact_weights(rec)
        self.scorer = RowScorer(params, rec, self.w_exact, self.levels, self.kommune_levels)

    def row_rec(self, row: Sequence[Any], birth_date: dt.date | None) -> Rec:
        """A person_search row (``_COLS``) as the register side of a comparison, its address only where the
        caller may see it."""
        levels = self.levels  # None: every address counts (and the row may have no level column)
        seen = levels is None or row[9] in levels
        kseen = self.kommune_levels is None or row[9] in self.kommune_levels
        return (row[1] or "", tuple((row[2] or "").split()), birth_date, row[4], row[5],
                row[7] if seen else None, row[6] if kseen else None, row[8] if seen else None)

    def weight(self, row: Sequence[Any], birth_date: dt.date | None) -> float:
        """W, the match weight in bits of one person_search row (``_COLS``): the reference of ``scorer``."""
        return self.params.weigh(self.rec, self.row_rec(row, birth_date), self.w_exact)

    def best_possible(self) -> float:
        """The largest weight any person can reach on the demographic fields the record gives (all agree)."""
        p, q, w = self.params, self.q, self.params.weights
        total = self.w_exact[0] + self.w_exact[1]
        total += w[2][1] if q.birth_date else w[2][5] if q.birth_year else 0.0
        total += w[3][1] if q.gender else 0.0
        if q.postnummer:  # a street agreeing in the same postnummer weighs as `weigh` counts it: given the place
            total += self.w_exact[2] + (p.street_same_place_bits if q.street else 0.0)
        else:
            total += (w[4][2] if q.kommune else 0.0) + (w[5][1] if q.street else 0.0)
        return total + max(0.0, p.swapped_bits)


_NEAR_SQL: dict[tuple[str, int, str], str] = {}


def _cols(pq: _Query) -> str:
    return _COLS if pq.levels is None and pq.kommune_levels is None else _COLS_LEVEL


def _near_sql(dialect: Dialect, n: int, columns: str) -> str:
    key = (dialect.paramstyle, n, columns)
    sql = _NEAR_SQL.get(key)
    if sql is None:
        cols = ", ".join(f"s.{c.strip()}" for c in columns.split(","))
        marks = ", ".join(["?" if dialect.paramstyle == "qmark" else "%s"] * n)
        sql = f"SELECT {cols} {_NEAR_FROM} ({marks})"
        _NEAR_SQL[key] = sql
    return sql


_Pass = tuple[str, str, tuple[Any, ...]]  # (name, driver SQL, parameters)


def _swapped_date(d: dt.date) -> dt.date | None:
    if d.day == d.month or d.day > 12:
        return None
    return dt.date(d.year, d.day, d.month)


@lru_cache(maxsize=1 << 12)
def _postnummer_typos(pn: str) -> tuple[str, ...]:
    """The postnummer one typing error away: one digit different, or two neighbouring digits swapped."""
    out = {pn[:i] + d + pn[i + 1 :] for i in range(len(pn)) for d in "0123456789"}
    out |= {pn[:i] + pn[i + 1] + pn[i] + pn[i + 2 :] for i in range(len(pn) - 1)}
    out.discard(pn)
    return tuple(sorted(out))


def _known_typos(pn: str, params: Parameters) -> tuple[str, ...]:
    """:func:`_postnummer_typos` that are postnummer of the register when the parameters list them all
    (``Parameters.postnummer_complete``; all typos otherwise): a register holds about half of the 10,000
    four-digit codes, and a code nobody lives in is an index lookup for nothing (at 1M persons the pass's
    SQL fell from ~160 to ~110 µs a record)."""
    typos = _postnummer_typos(pn)
    known = params.tf.get("postnummer") if params.postnummer_complete else None
    return tuple(p for p in typos if p in known) if known else typos


@lru_cache(maxsize=1 << 14)
def _year_typos(d: dt.date) -> tuple[dt.date, ...]:
    """The birth date with one digit of its year different (1962 for 1982), where that is a date. Cached: a
    wash meets the same birth dates again and again (profiled: 8 % of identification's time was here)."""
    out = []
    year, this_year = f"{d.year:04d}", dt.date.today().year
    for i in range(4):
        for digit in "0123456789":
            y = int(year[:i] + digit + year[i + 1 :])
            if y != d.year and 1850 <= y <= this_year:
                try:
                    out.append(d.replace(year=y))
                except ValueError:  # 29 February
                    continue
    return tuple(out)


@lru_cache(maxsize=1 << 12)
def _near_dates(d: dt.date) -> tuple[dt.date, ...]:
    """The birth date with one digit of its month or day different, or day and month transposed, where that is a
    date (compare.birth_level's levels 2 and 3 within the year)."""
    out = set()
    text = f"{d.month:02d}{d.day:02d}"
    for i in range(4):
        for digit in "0123456789":
            mmdd = text[:i] + digit + text[i + 1 :]
            try:
                out.add(dt.date(d.year, int(mmdd[:2]), int(mmdd[2:])))
            except ValueError:
                continue
    swapped = _swapped_date(d)
    if swapped:
        out.add(swapped)
    out.discard(d)
    return tuple(sorted(out))


def _other_evidence(pq: _Query, mark: str, date: Any) -> tuple[str, tuple[Any, ...]]:
    """`` AND (…)``: a person whose family name starts with the record's family name's letter (a misspelt one),
    or who shares its postnummer, kommune or street, or has its birth date one digit or a transposition away.
    Whoever has none of these and another family name than the record's cannot reach the threshold through a
    wrong-date, changed-name block (docs/filematch.md, session 9); every address is visible to the caller
    (the filter is not applied otherwise: a hidden address must not decide which persons are read)."""
    q, terms, params = pq.q, [], []
    terms.append(f"(family_key >= {mark} AND family_key < {mark})")
    params += [pq.rec[0][:1], pq.rec[0][:1] + "{"]
    if q.postnummer:
        terms.append(f"postnummer = {mark}")
        params.append(q.postnummer)
    if q.kommune and pq.kommune_levels is None:
        terms.append(f"kommune = {mark}")
        params.append(q.kommune)
    if pq.rec[7]:
        terms.append(f"street_key = {mark}")
        params.append(pq.rec[7])
    near = _near_dates(q.birth_date) if q.birth_date else ()
    if near:
        terms.append(f"birth_date IN ({', '.join([mark] * len(near))})")
        params += [date(d) for d in near]
    return f" AND ({' OR '.join(terms)})", tuple(params)


def _passes(dialect: Dialect, pq: _Query) -> list[list[_Pass]]:
    """The blocking passes by stage (the module docstring's). One query per block key rather than one ``OR``
    of them: each then reads its own index alone (the birth date block's index covers every scored column).
    Driver SQL built per query: SQLAlchemy statement construction cost more than the query itself."""
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    q = pq.q
    narrow: list[_Pass] = []
    wide: list[_Pass] = []
    two: list[_Pass] = []
    cols = _cols(pq)
    sqlite = dialect.name == "sqlite"

    def block(name: str, where: str, *params: Any, limit: int = _BLOCK_LIMIT) -> _Pass:
        return name, f"SELECT {cols} FROM {_S.name} WHERE {where} LIMIT {limit}", params

    def prefix(col: str, key: str) -> tuple[str, str, str]:
        return f"{col} >= {mark} AND {col} < {mark}", key, key + "{"

    def date(d: dt.date) -> Any:
        return d.isoformat() if sqlite else d

    address = q.postnummer and (pq.levels is None or pq.levels)
    street = pq.rec[7] if q.street and (pq.levels is None or pq.levels) and len(pq.rec[7] or "") >= 3 else None
    hidden = "" if pq.levels is None else " AND " + levels_sql(pq.levels)
    # the wide blocks that grow with the register read only persons of the record's gender (or none): a wrong
    # gender is a third error there, and the birth date and the other name's passes still reach it
    sex, sexed = ((f" AND ({_S.c.gender.name} = {mark} OR {_S.c.gender.name} IS NULL)", (q.gender,)) if q.gender
                  else ("", ()))
    fam, giv = pq.fam3 if len(pq.fam3) >= 2 else "", pq.giv3 if len(pq.giv3) >= 2 else ""
    if q.birth_date:
        narrow.append(block("birth date", f"birth_date = {mark}", date(q.birth_date)))
    if address and fam:
        where, lo, hi = prefix("family_key", fam)
        narrow.append(block("postnummer + family", f"postnummer = {mark} AND {where}{hidden}", q.postnummer, lo, hi))
    if pq.year and fam:
        where, lo, hi = prefix("family_key", pq.rec[0])
        wide.append(block("birth year + family", f"birth_year = {mark} AND {where}{sex}", pq.year, lo, hi, *sexed))
    if pq.year and giv:
        where, lo, hi = prefix("given_key", pq.rec[1][0])
        # the persons it alone reaches have another family name (the one before reads the same year and name): it
        # reads those who have one more thing of the record's (_other_evidence), not every namesake of the year
        # (a record that gives a year only is read in full: the year agreeing weighs ~6 bits there, not ~0)
        also, more = (_other_evidence(pq, mark, date) if pq.rec[0] and q.birth_date and pq.levels is None
                      else ("", ()))
        wide.append(block("birth year + given", f"birth_year = {mark} AND {where}{sex}{also}", pq.year, lo, hi,
                          *sexed, *more))
    if street and fam:
        where, lo, hi = prefix("family_key", pq.rec[0])
        wide.append(block("street + family", f"street_key = {mark} AND {where}{hidden}", street, lo, hi))
    swapped = _swapped_date(q.birth_date) if q.birth_date else None
    if swapped:
        two.append(block("birth date d/m swapped", f"birth_date = {mark}", date(swapped), limit=_PASS_LIMIT))
    if pq.year and giv:
        where, lo, hi = prefix("family_key", pq.rec[1][0])
        two.append(block("birth year + given as family", f"birth_year = {mark} AND {where}", pq.year, lo, hi,
                         limit=_PASS_LIMIT))
    if address and pq.year and pq.giv1:
        where, lo, hi = prefix("given_key", pq.giv1)
        # SQLite's planner would take the (birth_year, given_key, …) covering index here and walk the year's whole
        # initial (~3,000 VM steps a record at 1M persons, ~30 on (postnummer, given_key, birth_year)): `+` keeps
        # birth_year from choosing an index (migration 0034)
        year_col = "+birth_year" if sqlite else "birth_year"
        two.append(block("postnummer + given initial + birth year",
                         f"postnummer = {mark} AND {year_col} = {mark} AND {where}{hidden}",
                         q.postnummer, pq.year, lo, hi, limit=_PASS_LIMIT))
    if address and giv:
        where, lo, hi = prefix("given_key", giv)
        two.append(block("postnummer + given", f"postnummer = {mark} AND {where}{hidden}", q.postnummer, lo, hi,
                         limit=_PASS_LIMIT))
        where, lo, hi = prefix("family_key", giv)
        two.append(block("postnummer + given as family", f"postnummer = {mark} AND {where}{hidden}", q.postnummer,
                         lo, hi, limit=_PASS_LIMIT))
    if street and giv:
        where, lo, hi = prefix("family_key", giv)
        two.append(block("street + given as family", f"street_key = {mark} AND {where}{hidden}", street, lo, hi,
                         limit=_PASS_LIMIT))
    typos = _known_typos(q.postnummer or "", pq.params) if address and fam and len(q.postnummer or "") == 4 else ()
    if typos:
        where, lo, hi = prefix("family_key", fam)
        # and one more thing of the record's: without its first initial, birth year or street, a person in another
        # postnummer has the family name alone (≤ 20 bits at a million persons, 22.3 needed)
        terms: list[str] = []
        values: list[Any] = []
        if pq.giv1:
            terms.append(f"(given_key >= {mark} AND given_key < {mark})")
            values += [pq.giv1, pq.giv1 + "{"]
        if pq.year:
            terms.append(f"birth_year = {mark}")
            values.append(pq.year)
        if street:
            terms.append(f"street_key = {mark}")
            values.append(street)
        one_more = f" AND ({' OR '.join(terms)})" if terms else ""
        two.append(block("postnummer one typo + family",
                         f"postnummer IN ({', '.join([mark] * len(typos))}) AND {where}{hidden}{sex}{one_more}",
                         *typos, lo, hi, *sexed, *values, limit=_PASS_LIMIT))
    years = [date(d) for d in _year_typos(q.birth_date)] if q.birth_date and (fam or giv) else []
    if years:
        names, keys = [], []
        for col, key in (("family_key", fam), ("given_key", giv)):
            if key:
                where, lo, hi = prefix(col, key)
                names.append(where)
                keys += [lo, hi]
        initial, initial_keys = "", tuple[str, ...]()
        if pq.rec[0]:
            # only those with the record's family initial: each date's range of (birth_date, family_key, …) is
            # seeked, not all its persons scanned (~700 index entries; 3,646 → 505 VM steps a record at 1M). A person of
            # another initial has another family name and another year, the given name their only agreement
            # here; at 1M persons no answer's outcome changed without them (docs/filematch.md, session 9)
            where, lo, hi = prefix("family_key", pq.rec[0][:1])
            initial, initial_keys = f" AND {where}", (lo, hi)
        two.append(block("birth year one digit off + name",
                         f"birth_date IN ({', '.join([mark] * len(years))}){initial} AND ({' OR '.join(names)})",
                         *years, *initial_keys, *keys, limit=_PASS_LIMIT))
    return [narrow, wide, two]


def block_passes(conn: Connection, q: IdentifyQuery, *, scope: SearchScope) -> list[list[_Pass]]:
    """The blocking passes :func:`identify` would run for ``q``, by stage (for measuring their recall)."""
    if scope.elements != ALL_RELEASABLE.elements:
        q = _within(q, scope.elements)
    return _passes(conn.dialect, _Query(q, scope, parameters_for(conn)))


def _classify(seen: dict[int, float], params: Parameters) -> Identification:
    if not seen:
        return Identification(Outcome.NOT_FOUND)
    prior = params.log_prior_odds
    # by weight, best first: ties stay in insertion order (a stable sort), which changes no sum (equal weights
    # have equal odds); the candidates among them are put in person id order below, as a (-weight, id) key would
    ranked = sorted(seen.items(), key=itemgetter(1), reverse=True)
    probs = params.probabilities([w for _, w in ranked])
    cands = sorted((Candidate(pid, round(w + prior, 2), p)
                    for (pid, w), p in zip(ranked, probs, strict=True) if p >= CANDIDATE_PROBABILITY),
                   key=lambda c: (-seen[c.person_id], c.person_id))
    if cands and cands[0].probability >= MATCH_PROBABILITY:
        return Identification(Outcome.IDENTIFIED, cands)
    if len(cands) >= 2 and sum(c.probability for c in cands) >= MATCH_PROBABILITY:
        return Identification(Outcome.AMBIGUOUS, cands)
    return Identification(Outcome.NOT_FOUND, cands)


def identify(conn: Connection, q: IdentifyQuery, *, scope: SearchScope) -> Identification:
    """Ranked candidates for a record without an identity number; addresses used as ``scope`` allows."""
    if scope.elements != ALL_RELEASABLE.elements:
        q = _within(q, scope.elements)
    params = parameters_for(conn)
    pq = _Query(q, scope, params)
    seen: dict[int, float] = {}
    result = Identification(Outcome.NOT_FOUND)
    near = near_valid(q.number) if q.number else []
    if near:
        _add_weights(seen, pq, fetch_all(conn, _near_sql(conn.dialect, len(near), _cols(pq)), near), NUMBER_NEAR)
        result = _classify(seen, params)
        best = max(seen.values(), default=None)
        if (result.outcome == Outcome.IDENTIFIED and best is not None
                and best - pq.best_possible() >= NUMBER_NEAR):
            return result
    reached = False
    for stage in _passes(conn.dialect, pq):
        if not stage:
            continue
        for _name, sql, qparams in stage:
            _add_weights(seen, pq, fetch_all(conn, sql, qparams))
        reached = True
        # classified only when its best candidate could be identified: below _IDENTIFY_BITS of odds no
        # candidate is, whatever the others (the same answer; a not-in-register record's stages were
        # classified three times, ~9 % of its time at 1M persons)
        if max(seen.values(), default=-math.inf) + params.log_prior_odds >= _IDENTIFY_BITS:
            result = _classify(seen, params)
            if result.outcome == Outcome.IDENTIFIED:
                return result
    if reached:
        result = _classify(seen, params)
    if pq.rec[0] and seen and _former_family(conn, pq, seen):
        result = _classify(seen, params)
    return result


# log2 of the odds a candidate needs to be identified: its probability o / (1 + Σ o) reaches MATCH_PROBABILITY only
# if o / (1 + o) does, o ≥ p / (1 − p) (99 at 0.99); a hair under it, so that rounding never skips a candidate
_IDENTIFY_BITS = math.log2(MATCH_PROBABILITY / (1 - MATCH_PROBABILITY)) - 1e-6


_FORMER_LOOK = 5  # best candidates whose earlier family names are read when nobody is identified
_FORMER_SQL: dict[tuple[str, int, str], str] = {}


def _former_family(conn: Connection, pq: _Query, seen: dict[int, float]) -> bool:
    """The second look (module docstring): of the best candidates whose current family name differs from the
    record's, those who had the record's family name before (their documents' name history) weigh it as
    agreement on an earlier name (``Parameters.weight_former``) instead of disagreement. True if any did."""
    family, params = pq.rec[0], pq.params
    # the most an earlier name can add: agreement on it instead of the family level that weighs least; when not
    # even the best candidate would reach _IDENTIFY_BITS with it, nobody is read (the second look only lifts a
    # candidate to IDENTIFIED or, rarely, to a listed candidate or AMBIGUOUS — those few are not looked for)
    lift = params.weight_former(family) - min(params.weights[FAMILY][params.family_index(level, family)]
                                              for level in (2, 3, 4))
    if max(seen.values()) + lift + params.log_prior_odds < _IDENTIFY_BITS:
        return False
    need = _IDENTIFY_BITS - lift - params.log_prior_odds
    top = [pid for pid in sorted(seen, key=lambda pid: (-seen[pid], pid))[:_FORMER_LOOK] if seen[pid] >= need]
    cols = _cols(pq)
    key = (conn.dialect.paramstyle, len(top), cols)
    sql = _FORMER_SQL.get(key)
    if sql is None:
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = (f"SELECT {', '.join(f's.{c.strip()}' for c in cols.split(','))}, p.{s.person.c.doc.name} "
               f"FROM {_S.name} s JOIN {s.person.name} p ON p.{s.person.c.id.name} = s.{_S.c.person_id.name} "
               f"WHERE s.{_S.c.person_id.name} IN ({', '.join([mark] * len(top))})")
        _FORMER_SQL[key] = sql
    changed = False
    for row in fetch_all(conn, sql, top):
        if (row[1] or "") == family:
            continue
        names = decode_stored(row[-1]).get("names") or []
        if not any(not n.get("current") and cached_name_key(n.get("family")) == family for n in names):
            continue
        bd = row[3]
        (fam, *_rest), swapped = compare(pq.rec, pq.row_rec(row, dt.date.fromisoformat(bd) if isinstance(bd, str)
                                                              else bd))
        if swapped or fam in (MISSING, 1):
            continue
        seen[row[0]] += params.weight_former(family) - params.weights[FAMILY][params.family_index(fam, family)]
        changed = True
    return changed


def _within(q: IdentifyQuery, elements: frozenset[str]) -> IdentifyQuery:
    """``q`` without the fields of the elements the caller may not see (they neither block nor score)."""
    hidden: dict[str, None] = {}
    for element, names in (("identifiers", ("number",)), ("name", ("given", "family")),
                           ("birth", ("birth_date", "birth_year")), ("gender", ("gender",)),
                           ("addresses", ("postnummer", "kommune", "street"))):
        if element not in elements:
            hidden.update(dict.fromkeys(names))
    return replace(q, **hidden)


def _add_weights(seen: dict[int, float], pq: _Query, rows: Sequence[Any], bonus: float = 0.0) -> None:
    """Weigh the person_search rows (``_COLS``, DBAPI rows: SQLAlchemy's cost more than the scoring) not seen
    yet, with the fused scorer (store/linkage/score.py; ``_Query.weight`` is its reference)."""
    pq.scorer.weigh_new(seen, rows, bonus)


def identify_many(conn: Connection, queries: Sequence[IdentifyQuery], *,
                  scope: SearchScope) -> list[Identification]:
    """:func:`identify` of each query, in order."""
    return [identify(conn, q, scope=scope) for q in queries]
