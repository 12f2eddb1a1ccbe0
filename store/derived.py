"""The registry of derived per-person tables: every row the store keeps about a person besides its document.

A person is one ``person`` row (its validated document, the source of truth) plus one or more rows in each
table of :data:`DERIVED`, all built from the document by the builder registered here and stamped with the
builder's *layout version*:

============================  ======  =======================================================================
table                         layout  rows (builder)
============================  ======  =======================================================================
``person_identifier``         i1      one per number the person has had (:func:`identifier_rows`)
``person_search``             s3      one: the current search keys (:func:`search_row`)
``person_given_word``         w1      one per distinct word of the current given names, with the birth year
                                      and family key, for a person with a birth year (:func:`given_word_rows`)
``person_brief``              b1      one: the current values a wash reads (:func:`store.brief.brief_of`)
``person_current``            c1      one: the current values a PID shows (:func:`store.current.current_of`)
============================  ======  =======================================================================

**Derived columns of a register** (:data:`COLUMNS`): a register table whose rows carry columns built from
each row's own document, under a layout of their own: ``hpr_person``'s name keys (layout ``h2``,
:func:`store.hpr.key_columns`; ``h1`` were the keys before the e after an ø was kept). They are not per
person, so save and the bulk load do not iterate them (store/registers.py writes them with the row);
``store.engine.migrate`` at head re-keys a table whose recorded layout differs and ``pregbridge views
rebuild`` re-keys (``--check``: counts) every row whose columns differ from its document's
(:func:`rekey_columns`).

Everything that writes or checks derived rows iterates :data:`DERIVED`: ``PersonRepository.save`` and
``save_prepared`` (and so the bulk load, the change feed and the upstream sync), and ``pregbridge views
rebuild`` (:func:`check_views`, :func:`rebuild_views`). Adding a derived table is one entry here (plus its
Table in store/schema.py and a migration that creates it).

**Layout versions.** The layout each table was last built with is recorded in ``store_state``
(``layout.<table>``; :func:`recorded_layouts`). A builder whose output changes gets a new version; a store
whose recorded layout differs from the code's is *drifted*: ``pregbridge init`` (``store.engine.migrate`` at
head) rebuilds such a table from the documents, and ``pregbridge views rebuild --check`` reports it. Old
migrations never call the builders below: they carry a frozen copy of the layout they wrote (0006, 0010,
0011), so upgrading an old store runs each step as it was written, and the rebuild at head brings every table
to today's layout.

**A missing row.** ``person_identifier``, ``person_search`` and ``person_given_word`` are the indexes a person
is *found* by: a person without its rows is not found by that key, on every face alike. ``person_brief`` and
``person_current`` are copies read on fast paths (the wash, PIX and PDQ): a person found without one is
answered from its document through the same builder (:func:`build_missing`), which logs one warning (no
patient data) naming ``pregbridge views rebuild``; every face gives the answer it gives with the row
present (docs/store.md).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Column, Connection, Engine, Table, bindparam, delete, insert, select, update

from store import schema as s
from store.addresses import SEARCH_TYPES, primary_address
from store.brief import VERSION as BRIEF_LAYOUT
from store.brief import brief_of
from store.current import VERSION as CURRENT_LAYOUT
from store.current import current_of
from store.document import load_stored
from store.hpr import KEY_LAYOUT as HPR_KEY_LAYOUT
from store.hpr import key_columns as hpr_key_columns
from store.model import Meta, Person, current
from store.normalize import name_key, street_key

__all__ = ["COLUMNS", "DERIVED", "REBUILD_HINT", "Derived", "DerivedBatch", "DerivedColumns", "build_missing",
           "check_views", "derived_for", "given_word_rows", "identifier_rows", "layout_key", "record_layouts",
           "recorded_layouts",
           "rebuild_views", "rekey_columns", "search_row", "stale_columns", "stale_tables", "write_derived"]

log = logging.getLogger(__name__)

#: What every message about a missing or drifted derived row tells the operator to run.
REBUILD_HINT = "run `pregbridge views rebuild`"

Rows = list[dict[str, Any]]


def _meta_row(m: Meta) -> dict[str, Any]:
    return {"is_current": m.current, "valid_from": m.valid_from, "valid_to": m.valid_to,
            "registered_at": m.registered_at, "source": m.source}


def identifier_rows(p: Person) -> Rows:
    """The ``person_identifier`` rows of ``p`` without ``person_id``: every number, in document order."""
    return [{"number": i.number, "kind": i.kind, "status": i.status, **_meta_row(i.meta)} for i in p.identifiers]


def _name_keys(p: Person) -> tuple[str, str]:
    """(family key, given key) of the current name: the name columns of person_search."""
    name = p.name
    if not name:
        return "", ""
    return name_key(name.family), name_key(" ".join(x for x in (name.given, name.middle) if x))


def given_word_rows(p: Person) -> Rows:
    """The ``person_given_word`` rows of ``p`` without ``person_id``: each distinct word of its search row's
    ``given_key`` (in order) with its ``birth_year`` and ``family_key``; none without a birth year (the table
    serves the given + family + birth year search only, store.search). A word is a prefix-searchable given
    name exactly when it is a word of ``given_key``: store.search's ``word_prefix`` test on ``given_key``
    holds for a word asked iff it is the prefix of one of these rows' ``word``."""
    birth = current(p.birth)
    if birth is None or birth.year is None:
        return []
    family, given = _name_keys(p)
    return [{"birth_year": birth.year, "family_key": family, "word": w} for w in dict.fromkeys(given.split())]


def search_row(p: Person, pid: int) -> dict[str, Any]:
    """The person's current search keys (one row of person_search).

    The address keys come with ``address_protection``, the level at which masking releases that address (the
    person's strictest level in force, server.access.masking), so that search and identification use them only
    for callers who may see it. A strengt fortrolig address is released to nobody: its keys are not stored."""
    family, given = _name_keys(p)
    birth = current(p.birth)
    home = primary_address(p, SEARCH_TYPES)  # the one address rule (store.addresses)
    level = p.protection_level if home else None
    if level == "strengtFortrolig":
        home = None
    return {
        "person_id": pid,
        "family_key": family,
        "given_key": given,
        "birth_date": birth.date if birth else None,
        "birth_year": birth.year if birth else None,
        "gender": p.current_gender,
        "kommune": home.kommune if home else None,
        "postnummer": home.postnummer if home else None,
        "street_key": street_key(home.street) if home and home.street else None,
        "status": p.current_status,
        "address_protection": level,
    }


def _search_rows(p: Person) -> Rows:
    row = search_row(p, 0)
    del row["person_id"]
    return [row]


@dataclass(frozen=True, slots=True)
class Derived:
    """One derived per-person table: its Table, the layout version of its builder, and the builder (the
    person's rows without ``person_id``). ``text`` names the one text column of a one-row-per-person copy
    that fast paths read (None for the index tables)."""

    table: Table
    layout: str
    build: Callable[[Person], Rows]
    text: str | None = None

    @property
    def name(self) -> str:
        return self.table.name

    def column(self) -> Column[Any]:
        assert self.text is not None
        return self.table.c[self.text]


IDENTIFIER = Derived(s.person_identifier, "i1", identifier_rows)
SEARCH = Derived(s.person_search, "s3", _search_rows)
GIVEN_WORDS = Derived(s.person_given_word, "w1", given_word_rows)
BRIEF = Derived(s.person_brief, BRIEF_LAYOUT, lambda p: [{"brief": brief_of(p)}], "brief")
CURRENT = Derived(s.person_current, CURRENT_LAYOUT, lambda p: [{"current": current_of(p)}], "current")

#: Every derived per-person table, in the order rows are written (and ``PreparedPerson.rows`` holds them).
DERIVED: tuple[Derived, ...] = (IDENTIFIER, SEARCH, GIVEN_WORDS, BRIEF, CURRENT)


def derived_for(table: Table) -> Derived:
    return next(d for d in DERIVED if d.table is table)


@dataclass(frozen=True, slots=True)
class DerivedColumns:
    """Columns of a register table built from each row's own document: the table, the layout version of the
    builder, the table's key column, and the builder (the columns' values from the row's document)."""

    table: Table
    layout: str
    key: str
    build: Callable[[Mapping[str, Any]], dict[str, Any]]

    @property
    def name(self) -> str:
        return self.table.name


HPR_KEYS = DerivedColumns(s.hpr_person, HPR_KEY_LAYOUT, "hpr_number", hpr_key_columns)

#: Every register table with derived columns.
COLUMNS: tuple[DerivedColumns, ...] = (HPR_KEYS,)


# -- layout versions ---------------------------------------------------------------------------------------


def layout_key(d: Derived | DerivedColumns) -> str:
    return f"layout.{d.name}"


def recorded_layouts(conn: Connection) -> dict[str, str | None]:
    """table name → the layout recorded in store_state (None: never recorded), for :data:`DERIVED` and
    :data:`COLUMNS`."""
    tables: tuple[Derived | DerivedColumns, ...] = (*DERIVED, *COLUMNS)
    keys = {layout_key(d): d.name for d in tables}
    got = dict(conn.execute(select(s.store_state.c.key, s.store_state.c.value)
                            .where(s.store_state.c.key.in_(list(keys)))).all())
    return {name: got.get(key) for key, name in keys.items()}


def record_layouts(conn: Connection, tables: Sequence[Derived | DerivedColumns] = DERIVED) -> None:
    """Record that ``tables`` now hold the layout of this code."""
    from store.state import set_state

    for d in tables:
        set_state(conn, layout_key(d), d.layout)


def stale_tables(conn: Connection) -> list[Derived]:
    """The derived tables whose recorded layout is not this code's."""
    recorded = recorded_layouts(conn)
    return [d for d in DERIVED if recorded[d.name] != d.layout]


def stale_columns(conn: Connection) -> list[DerivedColumns]:
    """The register tables whose derived columns' recorded layout is not this code's (never recorded: a store
    from before the layout was recorded, keyed as ``h1`` or as the code that loaded it)."""
    recorded = recorded_layouts(conn)
    return [d for d in COLUMNS if recorded[d.name] != d.layout]


# -- a missing fast-path row: built from the document -----------------------------------------------------

_WARN_EVERY = 60.0  # seconds between two warnings of one table (a wash of millions must not flood the log)
_warned: dict[str, float] = {}


def build_missing(conn: Connection, d: Derived, person_ids: Sequence[int]) -> dict[int, str]:
    """The text of ``d`` for persons stored without their row, built from their documents by ``d``'s builder
    (persons deleted meanwhile are left out); logs a warning without patient data naming the rebuild."""
    ids = list(dict.fromkeys(person_ids))
    out: dict[int, str] = {}
    p = s.person
    for k in range(0, len(ids), 500):
        for pid, doc in conn.execute(select(p.c.id, p.c.doc).where(p.c.id.in_(ids[k : k + 500]))):
            out[pid] = d.build(load_stored(doc))[0][d.text or ""]
    now = time.monotonic()
    if out and now - _warned.get(d.name, -_WARN_EVERY) >= _WARN_EVERY:
        _warned[d.name] = now
        log.warning("%d stored person(s) without their %s row: answered from the document; %s",
                    len(out), d.name, REBUILD_HINT)
    return out


# -- checking and rebuilding every derived row from the documents ------------------------------------------

BATCH = 1000  # persons per batch: memory stays flat on a store of millions


@dataclass
class DerivedBatch:
    """Progress of :func:`check_views` / :func:`rebuild_views`: persons seen so far, and per table the persons
    whose rows differ from their documents' (missing, extra or different rows)."""

    persons: int
    drift: dict[str, int]


def _compared(table: Table) -> list[Column[Any]]:
    """The columns a builder writes (not ``person_id``, nor a row's own surrogate ``id``)."""
    return [c for c in table.columns if c.name not in ("person_id", "id")]


def _key(table: Table, row: Any) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in _compared(table))


def _stored(conn: Connection, d: Derived, ids: list[int]) -> dict[int, Counter[tuple[Any, ...]]]:
    cols = _compared(d.table)
    out: dict[int, Counter[tuple[Any, ...]]] = {}
    stmt = select(d.table.c.person_id, *cols).where(d.table.c.person_id.in_(bindparam("ids", expanding=True)))
    for row in conn.execute(stmt, {"ids": ids}):
        out.setdefault(row[0], Counter())[tuple(row[1:])] += 1
    return out


def _expected(d: Derived, person: Person) -> Counter[tuple[Any, ...]]:
    return Counter(_key(d.table, r) for r in d.build(person))


def _batches(conn: Connection) -> Iterator[list[tuple[int, Person]]]:
    last = 0
    p = s.person
    while True:
        rows = conn.execute(select(p.c.id, p.c.doc).where(p.c.id > last).order_by(p.c.id).limit(BATCH)).all()
        if not rows:
            return
        yield [(pid, load_stored(doc)) for pid, doc in rows]
        last = rows[-1][0]


def _drifted(conn: Connection, batch: list[tuple[int, Person]]) -> dict[Derived, list[tuple[int, Person]]]:
    ids = [pid for pid, _ in batch]
    out: dict[Derived, list[tuple[int, Person]]] = {}
    for d in DERIVED:
        stored = _stored(conn, d, ids)
        bad = [(pid, p) for pid, p in batch if stored.get(pid, Counter()) != _expected(d, p)]
        if bad:
            out[d] = bad
    return out


def check_views(engine: Engine, progress: Callable[[int], None] | None = None) -> DerivedBatch:
    """Compare every derived row with what its person's document gives (read-only)."""
    result = DerivedBatch(0, {d.name: 0 for d in DERIVED})
    with engine.connect() as conn:
        for batch in _batches(conn):
            for d, bad in _drifted(conn, batch).items():
                result.drift[d.name] += len(bad)
            result.persons += len(batch)
            if progress:
                progress(len(batch))
    return result


def rebuild_views(engine: Engine, progress: Callable[[int], None] | None = None) -> DerivedBatch:
    """Rewrite, from the documents, the derived rows of every person whose rows differ (one transaction a
    batch, under the ingesters' write lock), then record this code's layouts; returns what it rewrote."""
    from store.engine import write_transaction
    from store.feed import write_lock

    result = DerivedBatch(0, {d.name: 0 for d in DERIVED})
    last = 0
    p = s.person
    while True:
        with write_transaction(engine) as conn:
            write_lock(conn)
            rows = conn.execute(select(p.c.id, p.c.doc).where(p.c.id > last).order_by(p.c.id).limit(BATCH)).all()
            if not rows:
                record_layouts(conn)
                return result
            batch = [(pid, load_stored(doc)) for pid, doc in rows]
            for d, bad in _drifted(conn, batch).items():
                write_derived(conn, d, [(pid, d.build(person)) for pid, person in bad], [pid for pid, _ in bad])
                result.drift[d.name] += len(bad)
        last = rows[-1][0]
        result.persons += len(batch)
        if progress:
            progress(len(batch))


# -- writing a person's derived rows: only what changed ----------------------------------------------------


def _one_row(table: Table) -> bool:
    """A table of one row per person (keyed by ``person_id``), as opposed to an index of many rows each with
    its own surrogate ``id``."""
    return [c.name for c in table.primary_key.columns] == ["person_id"]


def write_derived(conn: Connection, d: Derived, new: Sequence[tuple[int, Rows]], stored: Sequence[int] = ()) -> int:
    """Write ``d``'s rows of many persons at once, touching only what differs from what is stored.

    ``new`` holds each person's rows as ``d``'s builder made them (without ``person_id``); ``stored`` lists
    the ids of those persons that the store already holds (their rows are read here; a new person has none).
    The result equals deleting every row of those persons and inserting ``new`` (what a store rebuilt from
    the documents holds: tests/upstream/test_sync_fast_paths.py), but a row equal to its stored copy is not
    written, so its index entries are left alone: an index row that stays (a person keeps its numbers) is
    kept, a one-row-per-person table's changed row is an UPDATE of the columns that changed (SQLite then
    rewrites only the indexes holding one of them; PostgreSQL keeps a heap-only update when no indexed
    value changed). Returns the number of rows written (inserted, updated or deleted)."""
    t = d.table
    cols = _compared(t)
    names = [c.name for c in cols]
    one = _one_row(t)
    have: dict[int, list[tuple[Any, ...]]] = {}
    ids = list(stored)
    if ids:
        head = [t.c.person_id] if one else [t.c.person_id, t.c.id]
        stmt = select(*head, *cols).where(t.c.person_id.in_(bindparam("ids", expanding=True)))
        for k in range(0, len(ids), 500):
            for got in conn.execute(stmt, {"ids": ids[k : k + 500]}).all():
                have.setdefault(got[0], []).append(tuple(got[1:]))
    inserts: Rows = []
    gone: list[int] = []  # one-row tables: person ids; index tables: row ids
    updates: dict[tuple[str, ...], Rows] = {}
    width = len(names)
    for pid, rows in new:
        old = have.pop(pid, None)
        if old is None:
            inserts += [dict(r, person_id=pid) for r in rows]
            continue
        if one and len(rows) == 1 and len(old) == 1:
            built, was = rows[0], old[0]
            changed = tuple(n for n, v in zip(names, was, strict=True) if built[n] != v)
            if changed:
                updates.setdefault(changed, []).append({"b_pid": pid, **{n: built[n] for n in changed}})
            continue
        if one:  # a row appears or goes (no builder does this today; handled all the same)
            if old:
                gone.append(pid)
            inserts += [dict(r, person_id=pid) for r in rows]
            continue
        wanted = Counter(tuple(r[n] for n in names) for r in rows)
        for row_id, *values in old:
            key = tuple(values[:width])
            if wanted[key] > 0:
                wanted[key] -= 1
            else:
                gone.append(row_id)
        inserts += [{"person_id": pid, **dict(zip(names, key, strict=True))}
                    for key, n in wanted.items() for _ in range(n)]
    key_col = t.c.person_id if one else t.c.id
    for k in range(0, len(gone), 500):
        conn.execute(delete(t).where(key_col.in_(gone[k : k + 500])))
    for rows in updates.values():
        conn.execute(update(t).where(t.c.person_id == bindparam("b_pid")), rows)
    if inserts:
        conn.execute(insert(t), inserts)
    return len(gone) + sum(len(r) for r in updates.values()) + len(inserts)


def rekey_columns(engine: Engine, d: DerivedColumns, *, check: bool = False,
                  progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Compare the derived columns of every row of ``d.table`` with what its document gives and rewrite those
    that differ (one transaction a batch, in key order), then record the layout; with ``check`` nothing is
    written. Returns (rows compared, rows that differed)."""
    from store.engine import write_transaction

    key = d.table.c[d.key]
    names = list(d.build({}))
    cols = [d.table.c[n] for n in names]
    seen = differed = 0
    last: Any = None
    while True:
        with engine.connect() if check else write_transaction(engine) as conn:
            query = select(key, d.table.c.doc, *cols).order_by(key).limit(BATCH)
            rows = conn.execute(query if last is None else query.where(key > last)).all()
            if not rows:
                if not check:
                    record_layouts(conn, [d])
                return seen, differed
            for row in rows:
                doc = orjson.loads(row[1]) if isinstance(row[1], (str, bytes)) else row[1]
                want = d.build(doc if isinstance(doc, Mapping) else {})
                if tuple(row[2:]) != tuple(want[n] for n in names):
                    differed += 1
                    if not check:
                        conn.execute(update(d.table).where(key == row[0]).values(**want))
        seen += len(rows)
        last = rows[-1][0]
        if progress:
            progress(len(rows))
