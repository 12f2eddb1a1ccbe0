"""Estimating identification's Fellegi–Sunter parameters offline (``pregbridge identify estimate``).

As splink does, in three parts:

- **term frequencies** of family names, first given names and postnummer: counted over the whole register
  (values held by one person only are left out: an unlisted value counts as one);
- **u** (a level's probability for two different persons): from ``pairs`` random pairs of register persons,
  which are all different persons (the register holds each person once), the birth date's levels at least
  a quarter of their default (a transposed date, which random pairs almost never show, is not made certain);
- **m** (a level's probability for a record and its true person): by expectation–maximisation over the
  comparison vectors of blocked pairs of a **sample of client records** against the register, with u
  fixed, over pairs blocked on the birth date: they give the names, gender, place and street (the blocking
  field itself cannot be estimated from its own block). The birth date's m comes from a second EM, over
  pairs blocked on postnummer, family name *and* first given name, with gender and street as the other
  evidence (``_birth_m``, session 9): pairs blocked on postnummer and family name alone are dominated by the
  person's household — same family name, same address — and EM took them for matches (a wrong date then
  weighed nothing); a household seldom shares a first name. The prior (the share of records whose person is
  in the register) comes from the same pass. Each m is kept
  at least a quarter of its default. Without a sample, m keeps its defaults (store/linkage/params.py).

Run after a large load (the frequencies and the person count change); identification reads the newest
estimation (``linkage_parameters``).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text

from store.engine import fetch_all
from store.linkage.compare import (
    BIRTH,
    FAMILY,
    GENDER,
    GIVEN,
    KNOWN_SIMILAR,
    LEVELS,
    PLACE,
    STREET,
    Rec,
    compare,
    rec_of_row,
    street_agrees,
)
from store.linkage.params import DEFAULT, Parameters

if TYPE_CHECKING:
    from store.matching import IdentifyQuery

__all__ = ["estimate"]

_COLS = "person_id, family_key, given_key, birth_date, birth_year, gender, kommune, postnummer, street_key"
_PSEUDO = 5.0  # pseudo-pairs of the default m mixed into each estimate (a level never seen keeps a weight)
_FLOOR = 0.25  # an estimated m stays at least this share of its default (no level becomes impossible)


def _date(v: Any) -> dt.date | None:
    return dt.date.fromisoformat(v) if isinstance(v, str) else v


def _rec(row: Any) -> Rec:
    return rec_of_row(row, _date(row[3]), True, True)


def _frequencies(conn: Connection) -> dict[str, dict[str, int]]:
    fam = {k: int(n) for k, n in conn.execute(text(
        "SELECT family_key, count(*) FROM person_search GROUP BY family_key HAVING count(*) > 1")) if k}
    # every postnummer, also of one person (weighed as an unlisted value is: count 1), so that the list is the
    # register's postnummer (Parameters.postnummer_complete; identification's mistyped-postnummer pass reads those)
    post = {k: int(n) for k, n in conn.execute(text(
        "SELECT postnummer, count(*) FROM person_search WHERE postnummer IS NOT NULL GROUP BY postnummer")) if k}
    given: Counter[str] = Counter()
    for (g,) in conn.execute(text("SELECT given_key FROM person_search")).yield_per(10_000):
        if g:
            given[g.split(" ", 1)[0]] += 1
    return {"family": fam, "given": {k: n for k, n in given.items() if n > 1}, "postnummer": post}


def _known(vec: tuple[int, ...], swapped: bool, known: bool) -> tuple[int, ...]:
    """``vec`` with a similar family name's level as compare.KNOWN_SIMILAR says when the record's family name
    is a register name (``known``; Parameters.family_index)."""
    if known and not swapped and vec[FAMILY] in KNOWN_SIMILAR:
        return (KNOWN_SIMILAR[vec[FAMILY]], *vec[1:])
    return vec


_DRAW = 5000  # register persons the random pairs of u are drawn among


def _draw(conn: Connection, n: int, rng: random.Random) -> list[Any]:
    """``n`` register persons drawn by ``rng`` (all of them when the register is smaller), in person id order:
    the same register and seed draw the same persons, so two estimations of one store give the same u and
    runs of the benchmark are comparable (the draw was the database's ``ORDER BY random()``, unseeded: the
    not-in-register records identified at 1M moved by ±2 between estimations of the same code)."""
    ids = sorted(pid for (pid,) in fetch_all(conn, "SELECT person_id FROM person_search", ()))
    chosen = sorted(rng.sample(ids, n)) if len(ids) > n else ids
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    rows: list[Any] = []
    for i in range(0, len(chosen), 500):
        part = chosen[i : i + 500]
        marks = ", ".join([mark] * len(part))
        rows += fetch_all(conn, f"SELECT {_COLS} FROM person_search WHERE person_id IN ({marks})", part)
    return sorted(rows, key=lambda r: r[0])


def _u(conn: Connection, pairs: int, rng: random.Random, families: dict[str, int]) -> tuple[list[list[float]], float]:
    recs = [_rec(r) for r in _draw(conn, _DRAW, rng)]
    counts = [[0] * n for n in LEVELS]
    same_year = years = 0
    if len(recs) >= 2:
        for _ in range(pairs):
            a, b = rng.sample(range(len(recs)), 2)
            vec, swapped = compare(recs[a], recs[b])
            for f, level in enumerate(_known(vec, swapped, recs[a][0] in families)):
                counts[f][level] += 1
            if recs[a][3] and recs[b][3]:
                years += 1
                same_year += recs[a][3] == recs[b][3]
    u = []
    for f, c in enumerate(counts):
        total = sum(c[1:])
        # the birth date's levels at least a quarter of their default (_FLOOR, as m): a transposed date is 1 pair
        # in 360,000, so 200,000 pairs hold it once or never, and never weighed ~30 bits: one estimation in a
        # few made every record with a transposed date a match (152 of 10,256 not-in-register records identified
        # at 100,000 persons). The names' levels are not floored: their rare levels are what the register shows
        # (a floor on all took FEBRL4's F1 to 0.9949 and the 1M recall from 0.972 to 0.960)
        floor = _FLOOR if f == BIRTH else 0.0
        u.append([0.0] + [max((c[i] + DEFAULT.u[f][i]) / (total + 1), floor * DEFAULT.u[f][i])
                          for i in range(1, len(c))])
    u[BIRTH][5] = (same_year + 0.5) / (years + 1)  # a year-only record agrees with a random person's year
    return u, _street_u_same_place(recs)


def _street_u_same_place(recs: list[Rec]) -> float:
    """u of the street agreeing (Jaro-Winkler ≥ 0.92) for two different persons with the same postnummer, over
    every such pair of the sample (at most 200 per postnummer): a street lies in one postnummer, so agreeing on
    both is one piece of evidence and a half, not two (store/linkage/params.py)."""
    by_place: dict[str, list[str]] = {}
    for r in recs:
        if r[5] and r[7]:
            by_place.setdefault(r[5], []).append(r[7])
    pairs = same = 0
    for streets in by_place.values():
        streets = streets[:200]
        for i, a in enumerate(streets):
            for b in streets[i + 1 :]:
                pairs += 1
                same += street_agrees(a, b)
    return (same + 0.5) / (pairs + 10)  # a few pseudo-pairs: a small register does not make it 0


def _em(patterns: Counter[tuple[int, ...]], fields: Sequence[int], m: list[list[float]], u: list[list[float]],
        iterations: int = 40) -> float:
    """Fit ``m`` (in place, for ``fields``) and λ, the share of matches among the pairs; returns λ."""
    lam = 0.1
    for _ in range(iterations):
        acc = [[0.0] * n for n in LEVELS]
        matched = total = 0.0
        for vec, count in patterns.items():
            pm, pu = lam, 1.0 - lam
            for f in fields:
                level = vec[f]
                if level:
                    pm *= m[f][level]
                    pu *= u[f][level]
            g = pm / (pm + pu) * count
            matched += g
            total += count
            for f in fields:
                acc[f][vec[f]] += g
        lam = min(max(matched / max(total, 1.0), 1e-6), 1 - 1e-6)
        for f in fields:
            levels = [i for i in range(1, LEVELS[f]) if not (f == BIRTH and i == 5)]
            seen = sum(acc[f][i] for i in levels)
            prior = sum(DEFAULT.m[f][i] for i in levels)
            for i in levels:
                est = (acc[f][i] + _PSEUDO * DEFAULT.m[f][i] / prior) / (seen + _PSEUDO) * prior
                m[f][i] = max(est, _FLOOR * DEFAULT.m[f][i])
            norm = sum(m[f][i] for i in levels) / prior
            for i in levels:
                m[f][i] /= norm
    return lam


def _birth_m(conn: Connection, samples: Sequence[IdentifyQuery], m: list[list[float]], u: list[list[float]],
             mark: str) -> list[float]:
    """The birth date's m by EM over pairs blocked on the record's postnummer, family name and first given name
    (a person and a namesake in the same postnummer: mostly the record's person, and not a household, whose
    members share the family name and address but not the first name), with gender and street as the other
    evidence; the date's own levels are then seen, which the birth-date block cannot show."""
    from store.matching import query_rec

    pairs: Counter[tuple[int, ...]] = Counter()
    sql = (f"SELECT {_COLS} FROM person_search WHERE postnummer = {mark} AND family_key = {mark} "
           f"AND (given_key = {mark} OR (given_key >= {mark} AND given_key < {mark})) LIMIT 200")
    for q in samples:
        rec = query_rec(q)
        if not (rec[0] and rec[1] and q.postnummer and (q.birth_date or q.birth_year)):
            continue
        g = rec[1][0]
        for row in fetch_all(conn, sql, (q.postnummer, rec[0], g, g + " ", g + "!")):
            pairs[compare(rec, _rec(row))[0]] += 1
    if not pairs:
        return m[BIRTH]
    fitted = [list(x) for x in m]
    _em(pairs, (BIRTH, GENDER, STREET), fitted, u)
    return fitted[BIRTH]


def estimate(conn: Connection, samples: Sequence[IdentifyQuery] = (), *, pairs: int = 200_000,
             seed: int = 0) -> Parameters:
    """Parameters estimated from the register of ``conn`` and (for m) a sample of client records."""
    from store.matching import query_rec

    rng = random.Random(seed)
    persons = int(conn.execute(text("SELECT count(*) FROM person_search")).scalar_one())
    tf = _frequencies(conn)
    u, street_u = _u(conn, pairs, rng, tf["family"])
    m = [list(x) for x in DEFAULT.m]
    prior = DEFAULT.prior
    if samples:
        sqlite = conn.dialect.name == "sqlite"
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        by_date: Counter[tuple[int, ...]] = Counter()
        dated = 0
        for q in samples:
            rec = query_rec(q)
            known = rec[0] in tf["family"]
            if q.birth_date:
                dated += 1
                d = q.birth_date.isoformat() if sqlite else q.birth_date
                for row in fetch_all(conn, f"SELECT {_COLS} FROM person_search WHERE birth_date = {mark} LIMIT 3000",
                                     (d,)):
                    by_date[_known(*compare(rec, _rec(row)), known)] += 1
        if by_date:
            lam = _em(by_date, (FAMILY, GIVEN, GENDER, PLACE, STREET), m, u)
            found = lam * sum(by_date.values()) / max(dated, 1) / max(m[BIRTH][1], 0.5)
            prior = min(max(found, 0.05), 0.95)
        m[BIRTH] = _birth_m(conn, samples, m, u, mark)
    return Parameters(m=m, u=u, prior=prior, persons=max(persons, 1), swapped_bits=DEFAULT.swapped_bits, tf=tf,
                      street_u_same_place=street_u, postnummer_complete=True,
                      estimated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
