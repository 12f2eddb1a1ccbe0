"""Person search ("personsøk"): name plus birth date/year, kommune, postnummer or street.

The minimum-criteria rule is Persontjenesten's: at least 3 letters of name, and at least one of
birth date, birth year, kommune (4 digits), postnummer (4 digits) or street (3 letters or more). A
search by given name alone must have a birth date or year (we have no index that makes given name +
place selective, and a search must never scan a table).

Matching is on normalised keys (store.normalize): every name word asked for must be the prefix of a
word of the person's current name (family name words or given/middle name words), so ``Nordm`` finds
``Nordmann`` and ``Aasen`` finds ``Åsen`` (both key ``aasen``). The index serves the first word of a
family name: ``Berg`` finds ``Berg Hansen`` but not ``Hansen Berg`` (filter words may be any word), with a birth
date as with a birth year or a place. Each query is
served by one of the ``person_search`` indexes (blocking keys); the rows it yields are filtered and
ranked in Python with rapidfuzz, best first. Every criterion is applied in SQL and the query stops after
``limit + 1`` rows, so a search costs what its answer costs, whatever the store's size.

Bounded work: a field longer than :data:`MAX_FIELD_CHARS` characters or a name field of more than
:data:`MAX_NAME_WORDS` words is refused (ValueTooLong: Client.InvalidRequest, HL7 104) before anything is
normalised or asked, since each name word adds a condition to the query (20,000 words once kept a
PostgreSQL backend busy for minutes).
No real name comes near these bounds (Folkeregisteret's longest names are a handful of words, and the
search index keeps 200 characters of a key), so they are constants, not settings.

No oracle: criteria may use only what the caller's access profile lets it see (:class:`SearchScope`). A
criterion on an element the profile withholds (name, birth, gender, addresses) is refused, and address
criteria match only persons whose address the caller may see: a person whose address it may not see is not
found by it, whether the value asked is the true one or not, so neither the hits nor their number, order or
scores tell the caller anything about a hidden address. Strengt fortrolig addresses are not in the index
at all (:func:`store.repository.search_row`).

**Score.** The hits are ranked by the Fellegi–Sunter match weight identification uses (:mod:`store.linkage`,
the parameters ``pregbridge identify estimate`` stores): the criteria are compared with each hit as a
record without number is (a prefix is a Jaro-Winkler level below an exact name; a common name agreeing
weighs less than a rare one; fields the criteria do not give weigh nothing). A hit's ``score`` (PREG
``score``, HL7 QRI-1, both promised 0–100) is 100 × its match probability among the hits, one decimal:
Bayes' rule over the register exactly as identification's (store/linkage/params.py,
``Parameters.probabilities``): 100 for the one person the criteria can only mean, about 50 each for two
persons they fit equally well, low for a common name and a birth year alone. It is monotone in the weight,
so the order (best first, ties by person id) is the order of the probabilities.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect

from store import schema as s
from store.engine import fetch_all
from store.errors import InvalidInput, TooManyHits, ValueTooLong
from store.linkage.compare import Rec
from store.linkage.params import Parameters, parameters_for
from store.linkage.score import RowScorer
from store.model import PROTECTION_LEVELS
from store.normalize import name_tokens, street_key

__all__ = ["ALL_RELEASABLE", "MAX_CANDIDATES", "MAX_FIELD_CHARS", "MAX_NAME_WORDS", "SearchScope",
           "SearchCriteria", "SearchHit", "check", "levels_sql", "search"]

MAX_CANDIDATES = 2000  # hits one search may return before it is refused as too broad
MAX_FIELD_CHARS = 200  # characters of one criterion
MAX_NAME_WORDS = 10  # words of one name criterion


# strengt fortrolig address keys are never indexed (store.repository.search_row): no scope needs to exclude them
_INDEXED_LEVELS = frozenset(level for level in PROTECTION_LEVELS if level != "strengtFortrolig")
# the information elements criteria use (identification also uses the identifiers near a mistyped number)
_SEARCHABLE = frozenset({"identifiers", "name", "birth", "gender", "addresses"})


@dataclass(frozen=True, slots=True)
class SearchScope:
    """What a caller may search and score by, derived from its access profile by :meth:`of` (the faces call
    :func:`server.access.masking.search_scope`): ``elements`` of identifiers, name, birth, gender and addresses
    that it may see; ``levels``, the address protection levels whose street and postnummer it sees; ``kommune_levels``,
    those whose kommune it sees (masking keeps the kommune of some masked addresses)."""

    elements: frozenset[str]
    levels: frozenset[str]
    kommune_levels: frozenset[str]

    def __post_init__(self) -> None:
        unknown = (self.levels | self.kommune_levels) - set(PROTECTION_LEVELS)
        if unknown:  # the levels are written into SQL as literals
            raise ValueError(f"unknown protection level(s) {sorted(unknown)}")

    @classmethod
    def of(cls, elements: Iterable[str], masked: Mapping[str, bool]) -> SearchScope:
        """The scope of a caller who sees ``elements`` and sees addresses at the levels of ``masked`` (level →
        whether the masked address still shows its kommune) masked."""
        els = frozenset(elements) & _SEARCHABLE
        if "addresses" not in els:
            return cls(els, frozenset(), frozenset())
        levels = _INDEXED_LEVELS - masked.keys()
        return cls(els, levels, levels | (frozenset(lv for lv, keeps in masked.items() if keeps) & _INDEXED_LEVELS))

    @staticmethod
    def sees_all(levels: frozenset[str]) -> bool:
        return levels >= _INDEXED_LEVELS


ALL_RELEASABLE = SearchScope(_SEARCHABLE, _INDEXED_LEVELS, _INDEXED_LEVELS)


@dataclass(frozen=True, slots=True)
class SearchCriteria:
    given: str | None = None
    family: str | None = None
    full_name: str | None = None
    birth_date: dt.date | None = None
    birth_year: int | None = None
    gender: str | None = None
    kommune: str | None = None
    postnummer: str | None = None
    street: str | None = None

    def name_words(self) -> tuple[list[str], list[str], list[str]]:
        """(family words, given words, words of a full name whose role is unknown)."""
        return name_tokens(self.family), name_tokens(self.given), name_tokens(self.full_name)

    def validate(self) -> None:
        """Raise InvalidInput unless the criteria are within bounds and meet the minimum-criteria rule."""
        self._validated()

    def _validated(self) -> tuple[list[str], list[str], list[str]]:
        """:meth:`validate`, returning the :meth:`name_words` it normalised (a search normalises the names once:
        6 calls of store.normalize.name_key a search were ~15 % of a family + year search's CPU)."""
        for name, value in (("given name", self.given), ("family name", self.family), ("name", self.full_name),
                            ("street", self.street), ("kommune", self.kommune), ("postnummer", self.postnummer)):
            if value is not None and len(value) > MAX_FIELD_CHARS:
                raise ValueTooLong(f"{name} is longer than {MAX_FIELD_CHARS} characters")
        fam, giv, full = self.name_words()  # after the bounds: nothing longer is normalised
        if max(len(fam), len(giv), len(full)) > MAX_NAME_WORDS:
            raise ValueTooLong(f"a name criterion has more than {MAX_NAME_WORDS} words")
        if sum(len(w) for w in fam + giv + full) < 3:
            raise InvalidInput("a search needs at least 3 letters of name")
        for code, n in ((self.kommune, 4), (self.postnummer, 4)):
            if code is not None and (len(code) != n or not code.isdigit()):
                raise InvalidInput("kommune and postnummer are 4 digits")
        if self.street is not None and len(street_key(self.street)) < 3:
            raise InvalidInput("a street criterion needs at least 3 letters")
        if not (self.birth_date or self.birth_year or self.kommune or self.postnummer or self.street):
            raise InvalidInput(
                "a search needs a birth date or year, a kommune, a postnummer or a street besides the name")
        if not (fam or full) and not (self.birth_date or self.birth_year):
            raise InvalidInput("a search by given name alone needs a birth date or year")
        return fam, giv, full


@dataclass(frozen=True, slots=True)
class SearchHit:
    person_id: int
    score: float  # 0–100: 100 × the match probability (module docstring)


# person_search's table and column names for the driver-level SQL below, through store.schema (a rename there
# fails at import, tests/unit/test_driver_sql.py)
_PS = s.person_search
_TABLE, _ID, _LEVEL = _PS.name, _PS.c.person_id.name, _PS.c.address_protection.name
_FAMILY, _GIVEN, _STREET = _PS.c.family_key.name, _PS.c.given_key.name, _PS.c.street_key.name
_BIRTH_DATE, _BIRTH_YEAR, _GENDER = _PS.c.birth_date.name, _PS.c.birth_year.name, _PS.c.gender.name
_KOMMUNE, _POSTNUMMER = _PS.c.kommune.name, _PS.c.postnummer.name
_GW_T = s.person_given_word
_GW, _GW_ID, _GW_YEAR = _GW_T.name, _GW_T.c.person_id.name, _GW_T.c.birth_year.name
_GW_FAMILY, _GW_WORD = _GW_T.c.family_key.name, _GW_T.c.word.name
_SCORED = ", ".join(c.name for c in (_PS.c.person_id, _PS.c.family_key, _PS.c.given_key, _PS.c.birth_date,
                                     _PS.c.birth_year, _PS.c.gender, _PS.c.kommune, _PS.c.postnummer,
                                     _PS.c.street_key))  # in the order store.linkage.compare.rec_of_row reads them


class _Sql:
    """A WHERE clause as driver SQL with its parameters, built per query (SQLAlchemy's statement construction
    and compilation cost ~0.5 ms a search, more than the indexed query itself)."""

    __slots__ = ("dialect", "mark", "params", "plain", "with_")

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.mark = "?" if dialect.paramstyle == "qmark" else "%s"
        self.params: list[Any] = []
        self.with_ = ""  # a WITH clause that the statement begins with (built first: the parameters are positional)
        self.plain = ""  # "+" before a filter's column on SQLite: the filter is tested, never seeked (see search)

    def _next_key(self, table: str, col: str, after: str | None, high: str, eq: tuple[str, Any] | None) -> str:
        """A scalar subquery: the least ``col`` of ``table`` below the bound ``high`` (within ``eq``'s column =
        value) and after the SQL expression ``after`` (None: at or after ``high``'s key, a bound parameter): one
        seek of an index led by (``eq``'s column,) ``col``."""
        where = f"{self.eq(*eq)} AND " if eq else ""
        if after is None:
            self.params.append(high[:-1])
            low = f"{col} >= {self.mark}"
        else:
            low = f"{col} > {after}"
        self.params.append(high)
        return f"(SELECT {col} FROM {table} WHERE {where}{low} AND {col} < {self.mark} ORDER BY {col} LIMIT 1)"

    def distinct_keys(self, name: str, table: str, col: str, key: str, eq: tuple[str, Any] | None = None) -> str:
        """Begin the statement with ``name(k)``: every distinct ``col`` of ``table`` that begins with ``key`` (within
        ``eq``'s column = value), one index seek each — a loose index scan, as a recursive query (neither SQLite
        nor PostgreSQL skips through an index by itself) — then a NULL row. Returns the keys as a subquery."""
        first = self._next_key(table, col, None, key + "{", eq)
        nxt = self._next_key(table, col, f"{name}.k", key + "{", eq)
        self.with_ = (f"WITH RECURSIVE {name}(k) AS (SELECT {first} UNION ALL "
                      f"SELECT {nxt} FROM {name} WHERE {name}.k IS NOT NULL) ")
        return f"SELECT k FROM {name}"

    def eq(self, col: str, value: Any) -> str:
        if isinstance(value, dt.date) and self.dialect.name == "sqlite":
            value = value.isoformat()  # SQLAlchemy's Date on SQLite is ISO text
        self.params.append(value)
        return f"{self.plain}{col} = {self.mark}"

    def prefix(self, col: str, key: str) -> str:
        # Keys are [a-z ]; '{' sorts after 'z' bytewise (person_search keys use the C collation on PostgreSQL).
        self.params += [key, key + "{"]
        return f"({self.plain}{col} >= {self.mark} AND {self.plain}{col} < {self.mark})"

    def word_prefix(self, col: str, word: str) -> str:
        """``word`` is the prefix of some word of the key: the key's prefix, or `` word`` inside it (keys and
        words are [a-z ] only, so a substring test is exact).

        Not ``LIKE '% word%'`` on SQLite: a LIKE whose pattern is a bound parameter marks the statement to be
        compiled again whenever that parameter is bound (the planner may use a constant prefix of the
        pattern), so every execution of the cached statement re-prepared it — ~160 k instructions, 80 % of a
        family + year search (docs/benchmarks.md, issue 12). ``instr`` is a plain function: compiled once.
        PostgreSQL's plans do not depend on bound values that way; it keeps LIKE."""
        p = self.prefix(col, word)
        if self.dialect.name == "sqlite":
            self.params.append(f" {word}")
            return f"({p} OR instr({col}, {self.mark}) > 0)"
        self.params.append(f"% {word}%")
        return f"({p} OR {col} LIKE {self.mark})"


def _any(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _block(q: _Sql, c: SearchCriteria, family_words: list[str], giv: list[str]) -> tuple[str, bool]:
    """The condition an index seeks, and whether it is the street block (which holds the street criterion)."""
    year = c.birth_year or (c.birth_date.year if c.birth_date else None)
    if c.birth_date:  # the covering index is (birth_date, family_key, …): the day's family range, not the whole day
        if family_words:  # (~150 persons a day at 5.6M, each tested by the family filter before)
            return f"{q.eq(_BIRTH_DATE, c.birth_date)} AND {_any([q.prefix(_FAMILY, w) for w in family_words])}", False
        return q.eq(_BIRTH_DATE, c.birth_date), False
    if family_words:  # (each part is built in the order it appears: the parameters are positional)
        if year and giv and len(family_words) == 1:
            return _given_word_block(q, year, family_words[0], max(giv, key=len)), False
        if year:
            fam = _any([q.prefix(_FAMILY, w) for w in family_words])
            return f"{fam} AND {q.eq(_BIRTH_YEAR, year)}", False
        if c.kommune:
            first = q.eq(_KOMMUNE, c.kommune)
        elif c.postnummer:
            first = q.eq(_POSTNUMMER, c.postnummer)
        else:
            return _street_block(q, street_key(c.street), family_words), True
        return f"{first} AND {_any([q.prefix(_FAMILY, w) for w in family_words])}", False
    return f"{_any([q.prefix(_GIVEN, w) for w in giv])} AND {q.eq(_BIRTH_YEAR, year)}", False


def _given_word_block(q: _Sql, year: int, family: str, word: str) -> str:
    """Given + family + birth year: the persons of the year with a family key beginning with ``family`` and a
    given-name word beginning with ``word`` (one of the given words asked; the filters test them all), seeked in
    ``person_given_word``.

    On ``person_search`` the given name is matched as the prefix of *any* given name (``_Sql.word_prefix``), which
    no index on ``given_key`` serves: the whole (year, family) range was read and the name tested entry by entry
    (~600 entries for the commonest family name of a year at 5.6 million persons). Both names asked are prefixes,
    and an index seeks one range only: the distinct keys of one name's range are found one seek each
    (:meth:`_Sql.distinct_keys`) and each is seeked with the other's range. Which name is enumerated: the longer
    one asked, whose keys are fewer (``Mo`` begins ~110 family keys of a year at 1 million persons, ``Moe``, ``Mork``
    …; ``Oskar`` one or two given names), through the index led by it — (birth_year, family_key, word) or
    (birth_year, word, family_key); a tie enumerates the family. The rows read are then the answer's plus one
    seek per key."""
    if len(word) >= len(family):
        (by, key), (then, rng) = (_GW_WORD, word), (_GW_FAMILY, family)
    else:
        (by, key), (then, rng) = (_GW_FAMILY, family), (_GW_WORD, word)
    keys = q.distinct_keys("gk", _GW, by, key, (_GW_YEAR, year))
    if q.dialect.name == "sqlite":  # one seek of (year, key, the other's range) per key of the list
        seek = f"{q.eq(_GW_YEAR, year)} AND {by} IN ({keys}) AND {q.prefix(then, rng)}"
        return f"{_ID} IN (SELECT {_GW_ID} FROM {_GW} WHERE {seek})"
    # PostgreSQL would read (year, the other's range) over every key of the year (a bitmap scan skipping the
    # index's middle column) and hash-join the keys: a LATERAL subquery (kept apart by OFFSET 0) seeks each key
    seek = f"{q.eq(_GW_YEAR, year)} AND {by} = gk.k AND {q.prefix(then, rng)}"
    return f"{_ID} IN (SELECT w.{_GW_ID} FROM gk, LATERAL (SELECT {_GW_ID} FROM {_GW} WHERE {seek} OFFSET 0) w)"


def _street_block(q: _Sql, key: str, family_words: list[str]) -> str:
    """Street (a prefix) + family: each distinct street key beginning with the key asked, seeked with the family range.

    A street is asked by prefix (``Kirkeveien`` is the key ``kirkev``, which also begins ``kirkevollen``), and a
    range on the index's first column leaves its second, the family name, to be tested entry by entry: the whole
    street read for one family (~26,000 entries for the commonest street key at 5.6M persons, 470 at 100k). Session
    8 split it in the street *named* (seeked with the family range) and the streets strictly inside the key's range
    (still tested entry by entry: 10,375 VM steps at p99 at 5.6M, the synthetic keys nest: ``fyrg`` is extended by
    ``fyrgrenda``). Now every distinct street key of the range is found by one seek (:meth:`_Sql.distinct_keys`,
    a loose index scan of (street_key, family_key)) and seeked with the family range: the entries read are the
    answer's plus one seek per street key. :func:`_filters` leaves the plain street range out (the keys hold it)."""
    keys = q.distinct_keys("st", _TABLE, _STREET, key)
    return f"{_STREET} IN ({keys}) AND {_any([q.prefix(_FAMILY, w) for w in family_words])}"


def levels_sql(levels: frozenset[str]) -> str:
    """A condition on ``person_search.address_protection``: one of ``levels`` (validated by SearchScope)."""
    if not levels:
        return "1 = 0"
    return f"{_LEVEL} IN (" + ", ".join(f"'{level}'" for level in sorted(levels)) + ")"


def _filters(q: _Sql, c: SearchCriteria, fam: list[str], giv: list[str], full: list[str],
             scope: SearchScope, street_block: bool = False) -> list[str]:
    where = [q.word_prefix(_FAMILY, w) for w in fam]
    where += [q.word_prefix(_GIVEN, w) for w in giv]
    where += [f"({q.word_prefix(_GIVEN, w)} OR {q.word_prefix(_FAMILY, w)})" for w in full]
    if c.birth_date:
        where.append(q.eq(_BIRTH_DATE, c.birth_date))
    if c.birth_year:
        where.append(q.eq(_BIRTH_YEAR, c.birth_year))
    if c.gender:
        where.append(q.eq(_GENDER, c.gender))
    if c.kommune:
        where.append(q.eq(_KOMMUNE, c.kommune))
    if c.postnummer:
        where.append(q.eq(_POSTNUMMER, c.postnummer))
    if c.street and not street_block:  # the street block holds the street range already (_street_block)
        where.append(q.prefix(_STREET, street_key(c.street)))
    if (c.postnummer or c.street) and not scope.sees_all(scope.levels):
        where.append(levels_sql(scope.levels))
    elif c.kommune and not scope.sees_all(scope.kommune_levels):
        where.append(levels_sql(scope.kommune_levels))
    return where


def _refuse_hidden(c: SearchCriteria, scope: SearchScope) -> None:
    for element, given in (("name", c.given or c.family or c.full_name), ("birth", c.birth_date or c.birth_year),
                           ("gender", c.gender), ("addresses", c.kommune or c.postnummer or c.street)):
        if given and element not in scope.elements:
            raise InvalidInput(f"the access profile does not release {element}: it cannot be a search criterion")


def check(c: SearchCriteria, scope: SearchScope) -> None:
    """Refuse criteria as :func:`search` would (bounds, minimum criteria, elements the scope withholds), before
    anything is read or asked (read-through mode asks the register first: store/source.py)."""
    _checked(c, scope)


def _checked(c: SearchCriteria, scope: SearchScope) -> tuple[list[str], list[str], list[str]]:
    words = c._validated()
    _refuse_hidden(c, scope)
    return words


def search(conn: Connection, c: SearchCriteria, *, scope: SearchScope,
           limit: int = MAX_CANDIDATES) -> list[SearchHit]:
    """Persons matching the criteria, best first; more than ``limit`` hits raise TooManyHits. Address criteria
    match only persons whose address ``scope`` covers (the module docstring's "no oracle").

    Every criterion is applied in SQL on top of the index block, so the database stops after
    ``limit + 1`` matching rows: the cost of a search depends on its answer, not on the store's size.
    """
    fam, giv, full = _checked(c, scope)
    # A full name's role is unknown: its words are tried as family name and as given name.
    family_words = [" ".join(fam)] if fam else full
    q = _Sql(conn.dialect)
    block, street_block = _block(q, c, family_words, giv)
    if block.startswith(f"{_ID} IN ") and q.dialect.name == "sqlite":
        q.plain = "+"  # SQLite would seek the filters' birth year and test the block row by row (the whole year)
    where = " AND ".join([block, *_filters(q, c, fam, giv, full, scope, street_block)])
    sql = f"{q.with_}SELECT {_SCORED} FROM {_TABLE} WHERE {where} LIMIT {int(limit) + 1}"
    rows = fetch_all(conn, sql, q.params)
    if len(rows) > limit:
        raise TooManyHits(f"more than {limit} persons match; add criteria", limit=limit)
    return _ranked(parameters_for(conn), _readings(c, fam, giv, full), rows)


def _readings(c: SearchCriteria, fam: list[str], giv: list[str], full: list[str]) -> list[Rec]:
    """The criteria as the record side of a comparison (store.linkage.compare.Rec): only what they give, so a
    person's other fields (an address the caller may not see among them) are missing and weigh nothing. A full
    name's role is unknown: read as given names then family name, and as family name then given names."""
    year = c.birth_year or (c.birth_date.year if c.birth_date else None)
    rest = (c.birth_date, year, c.gender, c.postnummer, c.kommune, street_key(c.street) if c.street else None)
    if not full:
        return [(" ".join(fam), tuple(giv), *rest)]
    if len(full) == 1:
        return [(full[0], (), *rest), ("", tuple(full), *rest)]
    return [(full[-1], tuple(full[:-1]), *rest), (full[0], tuple(full[1:]), *rest)]


def _ranked(params: Parameters, readings: list[Rec], rows: list[Any]) -> list[SearchHit]:
    """The hits ranked by their Fellegi–Sunter weight against the criteria (the best reading of a full name),
    each scored 100 × its match probability among the hits (the module docstring's "Score"). The weight is
    identification's fused scorer's (store.linkage.score.RowScorer: the float ``params.weigh`` gives for the
    row's Rec, every address level seen — the search already left out the rows the caller may not search by
    address; tests/integration/test_search_score.py holds the two equal)."""
    scorers = [RowScorer(params, q, params.exact_weights(q)) for q in readings]
    if len(scorers) == 1:
        weigh = scorers[0].weight
        weighed = [(weigh(row), row[0]) for row in rows]
    else:
        weighed = [(max(sc.weight(row) for sc in scorers), row[0]) for row in rows]
    weighed.sort(key=lambda wp: (-wp[0], wp[1]))
    probs = params.probabilities([w for w, _ in weighed])
    return [SearchHit(pid, round(100.0 * p, 1)) for (_, pid), p in zip(weighed, probs, strict=True)]
