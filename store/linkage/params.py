"""The Fellegi–Sunter parameters of identification, stored with the store and cached per process.

For each field of :mod:`store.linkage.compare` and each of its levels: ``m``, the probability of the level
for a record and its true person, and ``u``, for a record and another person. A level's weight is
log2(m / u) bits; the weight of agreeing exactly on a family name, a first name or a postnummer is
**term-frequency adjusted**: u is that value's own frequency in the register (a common name agreeing says
less than a rare one), :func:`Parameters.weight_exact`. A missing field weighs 0.

The match probability of a candidate (:func:`store.matching.identify`) is Bayes' rule over the register:
a record is of some register person with prior ``prior`` (else of nobody in it), each of the ``persons``
equally likely a priori, so candidate i's odds are ``prior / (1 − prior) / persons · 2^W_i`` and its
probability ``odds_i / (1 + Σ_j odds_j)`` over the candidates found.

Stored in ``linkage_parameters`` (one row per estimation, the newest in force, ``pregbridge identify
estimate``); a store without a row uses :data:`DEFAULT` with its own person count — or, in read-through
mode, where the store holds only the persons a site asked about, with the register's size
(:func:`assume_register`, :data:`NATIONAL_PERSONS`): a small store's own count would make every candidate
look 10,000 times likelier than it is. Read once per process and re-read after :data:`REFRESH_SECONDS`, so
identification costs no query for them.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select

from store import schema as s
from store.linkage.compare import BIRTH, FAMILY, FIELDS, GIVEN, KNOWN_SIMILAR, LEVELS, PLACE, Rec, compare

__all__ = ["DEFAULT", "NATIONAL_PERSONS", "REFRESH_SECONDS", "STALE_RATIO", "Parameters", "assume_register",
           "assumed_register", "forget", "parameters_for", "save", "stale", "warn_if_stale"]

REFRESH_SECONDS = 60.0
# Persons in the national register (Folkeregisteret holds about 5.6 million residents; SSB, 2025): the person
# count of a read-through store's default parameters.
NATIONAL_PERSONS = 5_600_000
_register_persons = 0  # assume_register: the fewest persons the register is taken to hold
STALE_RATIO = 0.5  # parameters estimated on a register smaller than this share of today's are stale
log = logging.getLogger("pregbridge.identify")
_L = s.linkage_parameters

# m: of a record and its true person; u: of a record and another person (defaults: typical client-register
# noise, and the uniform odds of a Norwegian-sized population; `pregbridge identify estimate` replaces them).
_M: list[list[float]] = [
    [0.0, 0.86, 0.05, 0.03, 0.06, 0.005, 0.005],  # family: married names are common; 5, 6: compare.KNOWN_SIMILAR
    [0.0, 0.88, 0.04, 0.04, 0.02, 0.02],
    [0.0, 0.93, 0.015, 0.02, 0.01, 0.97, 0.025],  # 5 (year only, agrees) is of year-only records
    [0.0, 0.98, 0.02],
    [0.0, 0.72, 0.04, 0.24],  # place: moved
    [0.0, 0.80, 0.05, 0.15],  # 3: differs, and so does the postnummer (moved)
]
_U: list[list[float]] = [
    [0.0, 1 / 3000, 0.002, 0.02, 0.978, 0.002, 0.02],
    [0.0, 1 / 300, 0.003, 0.006, 0.03, 0.958],
    [0.0, 1 / 30000, 1 / 360000, 1 / 1500, 0.0125, 0.0125, 0.986],
    [0.0, 0.5, 0.5],
    [0.0, 1 / 3000, 0.01, 0.99],
    [0.0, 0.002, 0.01, 0.988],
]
_TF_FIELDS = {FAMILY: "family", GIVEN: "given", PLACE: "postnummer"}


@dataclass(frozen=True)
class Parameters:
    m: list[list[float]]
    u: list[list[float]]
    prior: float = 0.5  # probability that a record is of some register person
    persons: int = 1
    swapped_bits: float = -3.0  # given and family name swapped (compare.compare)
    # u of the street agreeing for two persons in the same postnummer: street and postnummer are not independent
    # (a street lies in one postnummer), so when both agree the street weighs log2(m / this), not its own u
    street_u_same_place: float = 0.05
    tf: dict[str, dict[str, int]] = field(default_factory=dict)  # field → value → persons with it (≥ 2)
    # tf["postnummer"] lists every postnummer of the register, also those of one person (estimated since
    # session 9): identification then skips the mistyped-postnummer lookups of codes nobody lives in
    postnummer_complete: bool = False
    version: int = 0  # 0: the defaults
    estimated_at: str = ""
    weights: list[list[float]] = field(init=False, repr=False)
    street_same_place_bits: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        w = [[0.0] + [math.log2(max(m, 1e-9) / max(u, 1e-12)) for m, u in zip(ms[1:], us[1:], strict=True)]
             for ms, us in zip(self.m, self.u, strict=True)]
        object.__setattr__(self, "weights", w)
        # m of the street agreeing given the postnummer does (a person who kept the postnummer mostly kept the
        # street): the street's m over the postnummer's, at most 0.99
        m_street = min(0.99, self.m[5][1] / max(self.m[PLACE][1], 1e-9))
        object.__setattr__(self, "street_same_place_bits", math.log2(m_street / max(self.street_u_same_place, 1e-9)))

    def weight_exact(self, f: int, value: str) -> float:
        """The weight of agreeing exactly on ``value`` of field ``f`` (term-frequency adjusted when known)."""
        table = self.tf.get(_TF_FIELDS.get(f, ""))
        if not table:
            return self.weights[f][1]
        count = table.get(value, 1)
        return math.log2(max(self.m[f][1], 1e-9) * self.persons / count)

    def family_index(self, level: int, record_family: str) -> int:
        """The index of family ``level`` (of store.linkage.compare.compare, names not swapped) in m, u and
        weights: a similar name's level when the record's name is a register name (compare.KNOWN_SIMILAR;
        known: held by two persons or more, so listed in the term frequencies)."""
        if level in KNOWN_SIMILAR and record_family in self.tf.get("family", ()):
            return KNOWN_SIMILAR[level]
        return level

    def weight_former(self, value: str) -> float:
        """The weight of the record's family name ``value`` agreeing with an *earlier* family name of the
        person: as exact agreement, term-frequency adjusted (its frequency among current names stands for
        that among earlier ones, which only some persons have: an overestimate of u, so conservative),
        with the m of a disagreeing family name (the records that carry an earlier name are among those)."""
        table = self.tf.get("family") or {}
        u = table.get(value, 1) / self.persons if table else self.u[FAMILY][1]
        return math.log2(max(self.m[FAMILY][4], 1e-9) / u)

    def exact_weights(self, q: Rec) -> tuple[float, float, float]:
        """The weights of exact agreement on the record's own family name, first given name and postnummer."""
        return (self.weight_exact(FAMILY, q[0]) if q[0] else 0.0, self.weight_exact(GIVEN, q[1][0]) if q[1] else 0.0,
                self.weight_exact(PLACE, q[5]) if q[5] else 0.0)

    def weigh(self, q: Rec, r: Rec, w_exact: tuple[float, float, float]) -> float:
        """W, the match weight in bits of record ``q`` and register row ``r`` (``w_exact``: ``exact_weights(q)``,
        computed once per record)."""
        (fam, giv, birth, gender, place, street), swapped = compare(q, r)
        w = self.weights
        total = self.swapped_bits if swapped else 0.0
        if fam == 1:
            total += self.weight_exact(FAMILY, r[0]) if swapped else w_exact[0]
        else:
            total += w[0][fam if swapped else self.family_index(fam, q[0])]
        if giv == 1:
            total += self.weight_exact(GIVEN, r[1][0]) if swapped else w_exact[1]
        else:
            total += w[1][giv]
        total += w[2][birth] + w[3][gender]
        if place == 1:
            return total + w_exact[2] + (self.street_same_place_bits if street == 1 else w[5][street])
        return total + w[5][street] + w[4][place]

    def probabilities(self, weights: list[float]) -> list[float]:
        """Each candidate's match probability from its weight W: Bayes' rule over the register (module
        docstring), ``o_i / (1 + Σ o_j)`` with ``o_i = 2^(log prior odds + W_i)``."""
        prior = self.log_prior_odds
        odds = [2.0 ** min(w + prior, 1000.0) for w in weights]  # weights stay far below float's 2^1023
        total = 1.0 + sum(odds)
        return [o / total for o in odds]

    @property
    def log_prior_odds(self) -> float:
        """log2 of the prior odds that the record is of one given register person."""
        return math.log2(self.prior / (1 - self.prior) / max(self.persons, 1))

    def to_json(self) -> bytes:
        return orjson.dumps({"m": self.m, "u": self.u, "prior": self.prior, "persons": self.persons,
                             "swapped_bits": self.swapped_bits, "tf": self.tf, "fields": FIELDS,
                             "street_u_same_place": self.street_u_same_place,
                             "postnummer_complete": self.postnummer_complete})

    @classmethod
    def from_json(cls, data: bytes | str, version: int, estimated_at: str) -> Parameters:
        d: dict[str, Any] = orjson.loads(data)
        for table in (d["m"], d["u"]):  # estimated before compare.KNOWN_SIMILAR: the similar levels as they were
            if len(table[FAMILY]) < LEVELS[FAMILY]:
                table[FAMILY] = [*table[FAMILY], *(table[FAMILY][k] for k in KNOWN_SIMILAR)]
        return cls(m=d["m"], u=d["u"], prior=d["prior"], persons=d["persons"], swapped_bits=d["swapped_bits"],
                   street_u_same_place=d.get("street_u_same_place", 0.05),
                   postnummer_complete=bool(d.get("postnummer_complete", False)),
                   tf=d.get("tf", {}), version=version, estimated_at=estimated_at)


DEFAULT = Parameters(_M, _U)
assert [len(x) for x in _M] == [len(x) for x in _U] == list(LEVELS) and BIRTH == 2

_cache: dict[str, tuple[float, Parameters]] = {}
_lock = threading.Lock()


_keys: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _key(conn: Connection) -> str:
    """The store's cache key: its URL, rendered once per engine (rendering it cost a PREG search ~10 % more
    instructions than the search's own scoring)."""
    engine = conn.engine
    key = _keys.get(engine)
    if key is None:
        key = _keys[engine] = engine.url.render_as_string(hide_password=True)
    return key


def _read(conn: Connection) -> Parameters:
    row = conn.execute(select(_L.c.version, _L.c.estimated_at, _L.c.params)
                       .order_by(_L.c.version.desc()).limit(1)).first()
    if row is not None:
        return Parameters.from_json(row[2], int(row[0]), str(row[1]))
    persons = conn.execute(select(func.count()).select_from(s.person_search)).scalar_one()
    return Parameters(_M, _U, persons=max(int(persons), _register_persons, 1))


def assume_register(persons: int) -> None:
    """Read-through mode: the store is not the register; default parameters count at least ``persons``."""
    global _register_persons
    _register_persons = persons
    forget()


def assumed_register() -> int:
    """The fewest persons the register is taken to hold (:func:`assume_register`; 0: the store's own count)."""
    return _register_persons


def parameters_for(conn: Connection) -> Parameters:
    """The parameters in force for the store of ``conn`` (cached; re-read after REFRESH_SECONDS)."""
    key, now = _key(conn), time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < REFRESH_SECONDS:
        return hit[1]
    params = _read(conn)
    with _lock:
        _cache[key] = (now, params)
    return params


def forget(conn: Connection | None = None) -> None:
    """Drop the cached parameters (of ``conn``'s store, or all): the next identification reads them anew."""
    with _lock:
        if conn is None:
            _cache.clear()
        else:
            _cache.pop(_key(conn), None)


def save(conn: Connection, params: Parameters) -> int:
    """Store ``params`` as the newest version; returns its version number."""
    last = conn.execute(select(func.max(_L.c.version))).scalar()
    version = int(last or 0) + 1
    # through the schema's types (a DateTime column: no driver default adapter, deprecated since Python 3.12)
    conn.execute(insert(_L).values(version=version, estimated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                                   persons=params.persons, params=params.to_json().decode()))
    forget(conn)
    return version


def stale(conn: Connection) -> str | None:
    """Why the parameters in force no longer fit the register, or None when they do: never estimated (and
    the register is not empty), or estimated on a register smaller than :data:`STALE_RATIO` of today's
    (the term frequencies, u and the prior odds over ``persons`` all change with the register). Counts only:
    no name or number in the answer."""
    persons = int(conn.execute(select(func.count()).select_from(s.person_search)).scalar_one())
    row = conn.execute(select(_L.c.version, _L.c.persons).order_by(_L.c.version.desc()).limit(1)).first()
    if row is None:
        return f"never estimated ({persons:,} persons in the register)" if persons else None
    if int(row[1]) < STALE_RATIO * persons:
        return (f"version {row[0]} was estimated on {int(row[1]):,} persons; the register now holds {persons:,} "
                f"(stale below {STALE_RATIO:.0%})")
    return None


def warn_if_stale(conn: Connection) -> str | None:
    """:func:`stale`, logged as a warning naming the command that re-estimates (after a load or a sync)."""
    why = stale(conn)
    if why:
        log.warning("identification's parameters are stale: %s; run `pregbridge identify estimate` "
                    "(or `identify estimate --if-stale`)", why)
    return why
