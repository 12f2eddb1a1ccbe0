"""Comparison vectors: a record and a register row compared field by field into discrete levels.

Both sides are a :data:`Rec`: ``(family key, given name tokens, birth date, birth year, gender, postnummer,
kommune, street key)`` with ``None``/empty for what is missing (keys from :mod:`store.normalize`). A field
missing on either side, or hidden from the caller (the scope's address levels), is level 0, ``MISSING``,
whose weight is 0: a missing field is neutral, it neither adds nor subtracts.

Levels (index in the field's m and u lists; 0 is always missing):

==========  ==========================================================================================
family      1 same key, 2 Jaro-Winkler ≥ 0.94, 3 ≥ 0.85, 4 otherwise; 5 and 6: 2 and 3 when the record's family
            name is itself a name of the register (:data:`KNOWN_SIMILAR`, below)
given       1 same first name, 2 the first name of one is another name of the other (a middle name used
            as first name, a missing middle name), 3 Jaro-Winkler ≥ 0.92, 4 ≥ 0.85 or an initial that
            agrees, 5 otherwise
birth       1 same date, 2 day and month transposed, 3 one digit off (of YYYYMMDD), 4 same year only,
            5 the record gives a year only and it agrees, 6 otherwise
gender      1 agrees, 2 differs
place       1 same postnummer, 2 same kommune (no postnummer to compare, or it differs), 3 otherwise
street      1 Jaro-Winkler ≥ 0.92, 2 otherwise, 3 otherwise and the postnummer differs too (a person who
            moved has another street as well: a level of its own, so a move is not counted twice)
==========  ==========================================================================================

A similar family name says more when the record's name is no register name than when it is one: a typing
error seldom makes another real name, so a record that gives a real name (``Nilsen``) and a person with a
similar one (``Nielsen``) are mostly two persons, while an unknown name (``Nilsne``) similar to a person's is
mostly a misspelling of it. :func:`compare` gives levels 1–4; whether the record's name is known needs the
register's term frequencies, so :meth:`store.linkage.params.Parameters.family_index` maps 2 and 3 to 5 and 6
(:data:`KNOWN_SIMILAR`) where it is, for the weights and for estimation, which gives the four their own m and u.

Given and family name swapped: the names are also compared crosswise (the record's given name with the
row's family name and the other way round, the record's family field read as given names: ``Tone Marte``
is a first and a middle name), and the crosswise levels are used when they are both close while the
straight family names are not; :data:`SWAPPED` says so (its weight is a parameter).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rapidfuzz.distance import JaroWinkler

__all__ = ["BIRTH", "FAMILY", "FIELDS", "GENDER", "GIVEN", "KNOWN_SIMILAR", "LEVELS", "MISSING", "PLACE", "Rec",
           "STREET", "compare", "rec_of_row", "street_agrees"]

FIELDS = ("family", "given", "birth", "gender", "place", "street")
FAMILY, GIVEN, BIRTH, GENDER, PLACE, STREET = range(6)
LEVELS = (7, 6, 7, 3, 4, 4)  # levels per field, missing included
KNOWN_SIMILAR = {2: 5, 3: 6}  # a similar family name's level when the record's name is a register name
MISSING = 0

# (family key, given tokens, birth date, birth year, gender, postnummer, kommune, street key)
Rec = tuple[str, tuple[str, ...], dt.date | None, int | None, str | None, str | None, str | None, str | None]

_jw = JaroWinkler.normalized_similarity


def rec_of_row(row: Any, birth_date: dt.date | None, place_seen: bool, kommune_seen: bool) -> Rec:
    """A ``person_search`` row ``(person_id, family_key, given_key, birth_date, birth_year, gender, kommune,
    postnummer, street_key, …)`` as a Rec; its address only where the caller may see it."""
    return (row[1] or "", tuple((row[2] or "").split()), birth_date, row[4], row[5],
            row[7] if place_seen else None, row[6] if kommune_seen else None, row[8] if place_seen else None)


def family_level(q: str, r: str) -> int:
    if not q or not r:
        return MISSING
    if q == r:
        return 1
    sim = _jw(q, r)
    return 2 if sim >= 0.94 else 3 if sim >= 0.85 else 4


def given_level(q: tuple[str, ...], r: tuple[str, ...]) -> int:
    if not q or not r:
        return MISSING
    q1, r1 = q[0], r[0]
    if q1 == r1:
        return 1
    if q1 in r or r1 in q:
        return 2
    sim = _jw(q1, r1)
    if sim >= 0.92:
        return 3
    if sim >= 0.85 or ((len(q1) == 1 or len(r1) == 1) and q1[0] == r1[0]):
        return 4
    return 5


def birth_level(qd: dt.date | None, qy: int | None, rd: dt.date | None, ry: int | None) -> int:
    if qd is not None and rd is not None:
        if qd == rd:
            return 1
        if qd.year == rd.year and qd.day == rd.month and qd.month == rd.day:
            return 2
        # YYYYMMDD as digits (str of an int: a third of strftime's cost); years 1000-9999, so 8 digits each
        a = str(qd.year * 10000 + qd.month * 100 + qd.day)
        b = str(rd.year * 10000 + rd.month * 100 + rd.day)
        if len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1:
            return 3
        return 4 if qd.year == rd.year else 6
    ry = ry if ry is not None else (rd.year if rd else None)
    if qd is None and qy is not None and ry is not None:
        return 5 if qy == ry else 6
    return MISSING


def street_agrees(q: str, r: str) -> bool:
    """Street keys close enough to be the same street (level 1)."""
    return _jw(q, r) >= 0.92


def place_level(q: Rec, r: Rec) -> int:
    if q[5] and r[5]:
        if q[5] == r[5]:
            return 1
        return 2 if q[6] and q[6] == r[6] else 3
    if q[6] and r[6]:
        return 2 if q[6] == r[6] else 3
    return MISSING


def compare(q: Rec, r: Rec) -> tuple[tuple[int, int, int, int, int, int], bool]:
    """The comparison vector of record ``q`` and row ``r``, and whether the names were compared crosswise."""
    fam = family_level(q[0], r[0])
    giv = given_level(q[1], r[1])
    swapped = False
    if fam > 2 and q[1] and q[0]:  # the straight family names differ: given and family swapped?
        sfam = family_level(q[1][0], r[0])
        sgiv = given_level(tuple(q[0].split()), r[1])  # the record's family field may hold given + middle name
        if sfam <= 2 and 1 <= sgiv <= 3:
            fam, giv, swapped = sfam, sgiv, True
    birth = birth_level(q[2], q[3], r[2], r[3])
    gender = MISSING if not q[4] or not r[4] else 1 if q[4] == r[4] else 2
    street = MISSING if not q[7] or not r[7] else 1 if street_agrees(q[7], r[7]) else 2
    place = place_level(q, r)
    if place == 3 and street == 2:
        street = 3  # moved: the street differs with the postnummer (a level of its own: one piece of evidence)
    return (fam, giv, birth, gender, place, street), swapped
