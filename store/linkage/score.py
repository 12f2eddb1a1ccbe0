"""The match weight of a record against many register rows, fused into one loop: identification's hot path.

:func:`store.linkage.params.Parameters.weigh` over :func:`store.linkage.compare.compare` is the reference: a
comparison vector per row, then the weights summed. That costs ~10 function calls, two tuples and a date
parse per row, and a record that nobody in the register matches reads some hundreds of rows at a million
persons (every blocking stage runs). :class:`RowScorer` computes the same float for a ``person_search`` row
(``store.matching._COLS``) without building the row's Rec or the vector, with everything that depends on the
record alone computed once:

- the birth date's levels as one dictionary from the row's date as ISO text (as SQLite gives it; a
  PostgreSQL date is formatted) to its level: the record's date (1), day and month transposed (2), and every
  text one digit of YYYYMMDD away (3, the 72 variants), so a row's date costs one lookup instead of a parse
  and a digit count — built once the scorer has met more than a few row dates (``_LAZY_DATES``; each of the
  first is levelled by itself, ``_date_level``: a mistyped number's scorer weighs 1-3 rows);
- the weights of each level, the term-frequency adjusted exact weights, the record's keys.

Equivalence: ``tests/integration/test_linkage.py::test_the_fused_scorer_weighs_as_the_reference`` compares
it, float for float, with ``Parameters.weigh`` on rows of a generated population against noisy records
(every comparison level reached), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from rapidfuzz.distance import JaroWinkler

from store.linkage.compare import FAMILY, GIVEN, Rec, family_level, given_level
from store.linkage.params import Parameters

__all__ = ["RowScorer"]

_jw = JaroWinkler.normalized_similarity


@lru_cache(maxsize=1 << 11)
def _date_levels(d: dt.date) -> dict[str, int]:
    """The row birth dates (ISO text; a PostgreSQL row's date is looked up by its isoformat) whose level
    against ``d`` is 1, 2 or 3. Cached, read only: a wash meets the same birth dates again and again, but
    each entry holds ~75 strings (~5 kB), so only the last 2,048 dates (16,384 took the bench's RSS at
    100,000 persons from 130 to 198 MB); building one costs ~15 µs."""
    iso = d.isoformat()
    out: dict[str, int] = {}
    for i in (0, 1, 2, 3, 5, 6, 8, 9):  # the digits of YYYY-MM-DD
        for c in "0123456789":
            if c != iso[i] and (i or c != "0"):  # a year under 1000 has fewer digits (compare.birth_level)
                out[iso[:i] + c + iso[i + 1 :]] = 3
    if d.day != d.month and d.day <= 12:
        out[f"{iso[:5]}{iso[8:]}-{iso[5:7]}"] = 2
    out[iso] = 1
    return out


_DATE_DIGITS = (0, 1, 2, 3, 5, 6, 8, 9)  # the digits of YYYY-MM-DD
_DIGITS = frozenset("0123456789")
_LAZY_DATES = 24  # row dates a scorer levels one by one before it takes _date_levels' map (about its cost)


def _date_level(iso: str, swapped: str | None, rd: str) -> int:
    """The level of row date ``rd`` against the record's ``iso`` (``swapped``: its day and month transposed, or
    None), as ``_date_levels(date).get(rd, 0)`` gives it (tests/unit/test_fused_score.py compares them), for a
    scorer that weighs a few rows: a mistyped number's near numbers are 1-3 rows, where building the map (~20 µs)
    was a quarter of the record's identification."""
    if rd == iso:
        return 1
    if rd == swapped:
        return 2
    if len(rd) != 10 or rd[4] != iso[4] or rd[7] != iso[7]:
        return 0
    differ = [i for i in _DATE_DIGITS if rd[i] != iso[i]]
    if len(differ) != 1:
        return 0
    i = differ[0]
    c = rd[i]
    return 3 if c in _DIGITS and (i or c != "0") else 0


class RowScorer:
    """W of one record against ``person_search`` rows (``store.matching._COLS``, plus the address protection
    level at index 9 when ``levels`` or ``kommune_levels`` is given): the same value as
    ``params.weigh(rec, rec of the row)``, the address fields of a row whose level is not in ``levels``
    (``kommune_levels`` for the kommune) missing; None: every level seen."""

    __slots__ = ("_bdate", "_bdefault", "_birth", "_blazy", "_bswapped", "_givens", "_kl", "_levels", "_names", "_p",
                 "_q", "_qf_tokens", "_streets", "_w", "_wf", "_wx", "_year", "_year_text")

    def __init__(self, params: Parameters, rec: Rec, w_exact: tuple[float, float, float],
                 levels: frozenset[str] | None = None, kommune_levels: frozenset[str] | None = None) -> None:
        self._p, self._q, self._wx = params, rec, w_exact
        self._w = params.weights
        # the family levels' weights for this record (a similar name weighs as compare.KNOWN_SIMILAR says)
        wf = params.weights[FAMILY]
        self._wf = [wf[params.family_index(level, rec[0])] for level in range(len(wf))]
        self._levels, self._kl = levels, kommune_levels
        qd, qy = rec[2], rec[3]
        # the birth levels of the row dates met so far, each computed (_date_level) until _LAZY_DATES were, then
        # _date_levels' map (shared, read only; a date absent from it is level 0: _bdefault)
        self._birth: dict[str, int] | None = {} if qd is not None else None
        self._bdate, self._blazy = qd, _LAZY_DATES
        self._bdefault: int | None = None
        iso = qd.isoformat() if qd is not None else ""
        self._bswapped = (f"{iso[:5]}{iso[8:]}-{iso[5:7]}"  # as _date_levels spells it
                          if qd is not None and qd.day != qd.month and qd.day <= 12 else None)
        self._year = qd.year if qd is not None else qy
        self._year_text = f"{self._year:04d}" if self._year is not None else ""
        # the levels of the row values met so far (a block repeats its names and streets: Zipf-distributed)
        self._names: dict[str, tuple[int, int]] = {}
        self._givens: dict[str, tuple[int, int, tuple[str, ...]]] = {}
        self._qf_tokens = tuple(rec[0].split())  # the record's family field read as given names (compare.compare)
        self._streets: dict[str, int] = {}

    def weigh_new(self, seen: dict[int, float], rows: Iterable[Sequence[Any]], bonus: float = 0.0) -> None:
        """``seen[person_id] = W + bonus`` for each row whose person is not in ``seen`` yet."""
        for row in rows:
            pid = row[0]
            if pid not in seen:
                seen[pid] = self.weight(row) + bonus

    def _birth_level(self, rd: str) -> int:
        """The birth level of row date ``rd`` not met yet (see ``__init__``)."""
        qd = self._bdate
        assert qd is not None and self._birth is not None
        if self._blazy:
            self._blazy -= 1
            level = self._birth[rd] = _date_level(qd.isoformat(), self._bswapped, rd)
            return level
        self._birth, self._bdefault = _date_levels(qd), 0
        return self._birth.get(rd, 0)

    def weight(self, row: Sequence[Any]) -> float:  # noqa: C901, PLR0912, PLR0915 - one loop body, kept flat
        """W of one row (the reference's sums in the reference's order: the same float)."""
        q, w, p = self._q, self._w, self._p
        rf = row[1] or ""
        rgs = row[2] or ""
        names = self._names.get(rf)  # (family level, the record's given name as family name's level)
        if names is None:
            qf, qg = q[0], q[1]
            level = family_level(qf, rf)
            # the crosswise level only where the swap test reads it (the straight names differ)
            names = self._names[rf] = (level, family_level(qg[0], rf) if level > 2 and qg and qf else 0)
        givens = self._givens.get(rgs)  # (given level, the record's family name as given name's level or -1, tokens)
        if givens is None:
            rg = tuple(rgs.split())
            givens = self._givens[rgs] = (given_level(q[1], rg), -1, rg)
        fam, giv = names[0], givens[0]
        swapped = False
        if fam > 2 and names[1] <= 2 and q[1] and q[0]:
            cross = givens[1]
            if cross < 0:  # computed once per given name, and only here: most rows never need it
                cross = given_level(self._qf_tokens, givens[2]) if self._qf_tokens else 0
                self._givens[rgs] = (givens[0], cross, givens[2])
            if 1 <= cross <= 3:
                fam, giv, swapped = names[1], cross, True
        # birth (compare.birth_level)
        rd = row[3]
        birth_levels = self._birth
        if birth_levels is not None:
            if rd is None:
                birth = 0
            else:
                if type(rd) is not str:
                    rd = rd.isoformat()  # PostgreSQL: a date
                known = birth_levels.get(rd, self._bdefault)
                birth = (self._birth_level(rd) if known is None else known) or (4 if rd[:4] == self._year_text else 6)
        elif self._year is not None:
            ry = row[4]
            if ry is None and rd is not None:
                ry = int(rd[:4]) if type(rd) is str else rd.year
            birth = 0 if ry is None else 5 if ry == self._year else 6
        else:
            birth = 0
        # gender
        rgender = row[5]
        gender = 0 if not q[4] or not rgender else 1 if q[4] == rgender else 2
        # address, as far as the caller may see it
        levels, kl = self._levels, self._kl
        seen = levels is None or row[9] in levels
        rpn, rstreet = (row[7], row[8]) if seen else (None, None)
        rk = row[6] if kl is None or row[9] in kl else None
        if not q[7] or not rstreet:
            street = 0
        else:
            street = self._streets.get(rstreet, 0)
            if not street:
                street = self._streets[rstreet] = 1 if _jw(q[7], rstreet) >= 0.92 else 2
        qpn, qk = q[5], q[6]
        if qpn and rpn:
            place = 1 if qpn == rpn else 2 if qk and qk == rk else 3
        elif qk and rk:
            place = 2 if qk == rk else 3
        else:
            place = 0
        if place == 3 and street == 2:
            street = 3
        # the sum, as Parameters.weigh adds it
        total = p.swapped_bits if swapped else 0.0
        if fam == 1:
            total += p.weight_exact(FAMILY, rf) if swapped else self._wx[0]
        else:
            total += w[0][fam] if swapped else self._wf[fam]
        if giv == 1:
            total += p.weight_exact(GIVEN, givens[2][0]) if swapped else self._wx[1]
        else:
            total += w[1][giv]
        total += w[2][birth] + w[3][gender]
        if place == 1:
            return total + self._wx[2] + (p.street_same_place_bits if street == 1 else w[5][street])
        return total + w[5][street] + w[4][place]

