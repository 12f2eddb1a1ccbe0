"""Bulk load of a population directory (docs/data-formats.md): persons and the HPR/AR/FLR registers.

Persons are read in chunks of lines; worker processes (one per core) parse and validate them
(store.document) and build their rows (store.repository.prepare_person: the rows of every derived table of
the registry in store/derived.py), while this process inserts the chunks in file order with one
``executemany`` per table, each chunk in its own transaction: both cores work, memory stays flat (at most
two chunks ahead per worker), and a crash loses at most the chunk in flight (a re-run replaces persons already
loaded, by personId). A line that is not JSON or breaks a rule goes to the ``reject`` table with its line
number and reason; the load goes on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Index, Table, delete, insert, inspect, select

from store import schema as s
from store.document import from_document
from store.errors import InvalidDocument
from store.registers import REGISTER_FILES, register_rows
from store.repository import PersonRepository, PreparedPerson, prepare_person
from store.state import get_feed_position, get_state, set_feed_position, set_state
from store.workers import spawn_pool

__all__ = ["DEFERRED_KEY", "LoadSummary", "defer_indexes", "deferred_indexes", "load_population", "prepared_chunks",
           "read_manifest", "record_reject", "restore_deferred_indexes", "search_indexes"]

BATCH = 2000
Progress = Callable[[int], None]


@dataclass
class LoadSummary:
    persons: int = 0
    replaced: int = 0
    rejected: int = 0
    registers: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    feed_position: int = 0


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / "manifest.json"
    if not path.is_file():
        raise InvalidDocument("no manifest.json in the population directory", where=str(directory))
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidDocument(f"manifest.json is not JSON ({exc.msg})", where=str(path)) from None
    if manifest.get("format") != "pregbridge-population/1":
        raise InvalidDocument("unknown population format", field="format", where=str(path))
    return manifest


def record_reject(conn: Connection, *, origin: str, file: str, line: int | None, reason: str, raw: str,
                  seq: int | None = None, key: str | None = None) -> None:
    conn.execute(insert(s.reject).values(origin=origin, file=file, line=line, seq=seq, record_key=key,
                                         reason=reason, raw=raw, created_at=_now()))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidDocument(f"not JSON ({exc.msg} at column {exc.colno})") from None


def _prepare(chunk: list[tuple[int, str]]) -> tuple[list[PreparedPerson], list[dict[str, Any]]]:
    """Parse and validate lines into rows without person ids (runs in a worker process)."""
    prepared: list[PreparedPerson] = []
    rejects: list[dict[str, Any]] = []
    for n, line in chunk:
        try:
            person = from_document(_parse(line))
        except InvalidDocument as exc:
            rejects.append({"line": n, "reason": str(exc), "raw": line.rstrip("\n")})
            continue
        prepared.append(prepare_person(person))
    return prepared, rejects




def _chunks_of(path: Path, size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for item in _lines(path):
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def prepared_chunks(path: Path, workers: int) -> Iterator[tuple[list[PreparedPerson], list[dict[str, Any]]]]:
    """Prepared chunks in file order; parsing runs in ``workers`` processes, at most 2 chunks ahead each."""
    chunks = _chunks_of(path, BATCH)
    if workers <= 1:
        yield from map(_prepare, chunks)
        return
    # spawned, not forked: a caller may have threads (a server's, a test's), and forking a threaded process can
    # leave a lock held in the child for ever (seen under Python 3.13: a load hung in the pool's shutdown); the
    # workers end if the load is killed (store.workers)
    with spawn_pool(workers) as pool:
        window: deque[Future[tuple[list[PreparedPerson], list[dict[str, Any]]]]] = deque()
        for chunk in chunks:
            window.append(pool.submit(_prepare, chunk))
            if len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _store_chunk(engine: Engine, prepared: list[PreparedPerson], now: dt.datetime, summary: LoadSummary) -> None:
    """Insert one chunk in one transaction; persons already in the store (by key) are replaced."""
    with engine.begin() as conn:
        keys = [p.key for p in prepared]
        existing = set(conn.execute(select(s.person.c.person_key).where(s.person.c.person_key.in_(keys))).scalars())
        summary.replaced += len(keys) - len(set(keys) - existing)  # a re-run, or a key repeated in the file
        PersonRepository(conn).save_prepared([(p, None) for p in prepared], now=now)


# -- an initial load builds the search indexes after its inserts ----------------------------------------------
# Inserted one chunk (one transaction) at a time, every index whose key is not in load order (a number, a name,
# a birth date) had a new entry on nearly every one of its pages in every chunk, and each commit wrote those
# pages again: at 5.6 million persons the load wrote ~349 GB for a 26 GB file (issue 19). Into an empty store
# those indexes are dropped first and built once at the end, sorted (each page written once); the indexes the
# load itself reads through (person_key's, person_id's: replacing a key the file repeats) stay.
# Crash safety: the drops and a store_state entry (DEFERRED_KEY) commit together, the build and the entry's
# removal too; a load killed in between leaves persons that every face still answers (without the
# indexes: slowly), and whatever opens the store next (store.engine.migrate at head: every command and server)
# builds them (:func:`restore_deferred_indexes`); a re-run of the load replaces the persons already loaded.

DEFERRED_KEY = "load.deferred_indexes"
_DEFERRED_TABLES = (s.person_identifier, s.person_search, s.person_given_word)


def deferred_indexes() -> list[Index]:
    """The person tables' indexes an initial load builds after its inserts."""
    return [ix for t in _DEFERRED_TABLES for ix in sorted(t.indexes, key=lambda i: str(i.name))
            if [c.name for c in ix.columns] != ["person_id"]]


def search_indexes() -> list[Index]:
    """The search tables' share of :func:`deferred_indexes` (person_search's and person_given_word's): what an
    initial sync defers."""
    return [ix for ix in deferred_indexes() if ix.table is not s.person_identifier]


def defer_indexes(engine: Engine, indexes: list[Index] | None = None) -> bool:
    """Drop ``indexes`` (a subset of :func:`deferred_indexes`; all of them by default) of an empty store,
    recording that they are to be built; False when the store has persons (they stay). The initial load
    defers all of them, the initial sync (upstream.sync) those of the search tables only: it reads
    person_identifier's number index itself (merges)."""
    with engine.begin() as conn:
        if conn.execute(select(s.person.c.id).limit(1)).first() is not None:
            return False
        if get_state(conn, DEFERRED_KEY) is None:
            set_state(conn, DEFERRED_KEY, "building after the initial load or sync")
        present = _present_indexes(conn)
        for ix in deferred_indexes() if indexes is None else indexes:
            if ix.name in present:
                ix.drop(conn)
    return True


def _present_indexes(conn: Connection) -> set[str]:
    insp = inspect(conn)
    return {str(ix["name"]) for t in _DEFERRED_TABLES for ix in insp.get_indexes(t.name)}


def restore_deferred_indexes(engine: Engine) -> bool:
    """Build the indexes an initial load deferred and has not built yet (a load killed before its end), then
    clear their record; False when there was nothing to build. store.engine.migrate calls it at head: the look
    at store_state is a plain read (no write lock) unless there is something to build."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        pending = get_state(conn, DEFERRED_KEY) is not None
        conn.rollback()
        if not pending:
            return False
        dbapi = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
        before = _build_pragmas(dbapi) if dbapi is not None else {}
        try:
            with conn.execution_options(sqlite_begin="IMMEDIATE").begin():
                if get_state(conn, DEFERRED_KEY) is None:  # another process built them meanwhile
                    return False
                present = _present_indexes(conn)
                for ix in deferred_indexes():
                    if ix.name not in present:
                        ix.create(conn)
                conn.execute(delete(s.store_state).where(s.store_state.c.key == DEFERRED_KEY))
        finally:
            if dbapi is not None:
                for name, value in before.items():
                    dbapi.execute(f"PRAGMA {name}={value}")
    return True


#: SQLite while the deferred indexes are built (the settings cannot change inside a transaction, so they are
#: set on the DBAPI connection between two): the sort in temporary files, not in memory (a national store's
#: index is ~0.5 GB), with a 16 MiB buffer, and the table read through the page cache rather than mapped —
#: mapped pages count in the process's RSS, and an initial sync's builder is the syncer, held to 300 MB
#: (issue 14: the 1M sync's peak rose by ~68 MB during the build, half of it mapped pages, half the sorter's).
_BUILD_PRAGMAS = {"temp_store": "FILE", "cache_size": "-16384", "mmap_size": "0"}


def _build_pragmas(dbapi: Any) -> dict[str, str]:
    """Set :data:`_BUILD_PRAGMAS` on ``dbapi``; returns the values they replaced."""
    before = {name: str(dbapi.execute(f"PRAGMA {name}").fetchone()[0]) for name in _BUILD_PRAGMAS}
    for name, value in _BUILD_PRAGMAS.items():
        dbapi.execute(f"PRAGMA {name}={value}")
    return before


def _load_persons(engine: Engine, path: Path, summary: LoadSummary, progress: Progress | None,
                  workers: int) -> None:
    now = _now()
    deferred = defer_indexes(engine)
    for prepared, rejects in prepared_chunks(path, workers):
        _store_chunk(engine, prepared, now, summary)
        summary.persons += len(prepared)
        if rejects:
            with engine.begin() as conn:
                for r in rejects:
                    record_reject(conn, origin="load", file=path.name, **r)
            summary.rejected += len(rejects)
        if progress:
            progress(len(prepared) + len(rejects))
    if deferred:
        restore_deferred_indexes(engine)


PARALLEL_FROM = 16 * 1024 * 1024  # bytes of persons file from which a load parses in worker processes


def load_population(engine: Engine, directory: Path, *, progress: Progress | None = None,
                    workers: int | None = None) -> LoadSummary:
    """Load persons and registers from a population directory; returns what was loaded.

    ``workers``: processes that parse and validate (default: one per core for a persons file of at least
    :data:`PARALLEL_FROM` bytes, else 1 = in this process: starting the pool costs more than a small file).
    """
    import time

    started = time.perf_counter()
    manifest = read_manifest(directory)
    files = manifest.get("files", {})
    summary = LoadSummary()
    persons = directory / files.get("persons", "persons.jsonl")
    if workers is None:
        small = not persons.is_file() or persons.stat().st_size < PARALLEL_FROM
        workers = 1 if small else (os.cpu_count() or 1)
    _load_persons(engine, persons, summary, progress, workers)
    for name in REGISTER_FILES:
        path = directory / files.get(name, f"{name}.jsonl")
        if path.is_file():
            summary.registers[name] = _load_register(engine, name, path, summary)
    krk = directory / files.get("krk", "krk.csv")
    if krk.is_file():
        summary.registers["krk"] = _load_krk(engine, krk, summary)
    with engine.begin() as conn:
        position = int(manifest.get("snapshotSequence", 0))
        if get_feed_position(conn) < position:
            set_feed_position(conn, position)
        summary.feed_position = get_feed_position(conn)
    summary.seconds = time.perf_counter() - started
    return summary


def _load_register(engine: Engine, name: str, path: Path, summary: LoadSummary) -> int:
    """Replace one register wholesale (registers come as full extracts)."""
    count = 0
    with engine.begin() as conn:
        for table in reversed(REGISTER_FILES[name]):
            conn.execute(delete(table))
        pending: dict[Table, list[dict[str, Any]]] = {}
        for n, line in _lines(path):
            try:
                for table, rows in register_rows(name, _parse(line)).items():
                    pending.setdefault(table, []).extend(rows)
                count += 1
            except InvalidDocument as exc:
                record_reject(conn, origin="load", file=path.name, line=n, reason=str(exc), raw=line.rstrip("\n"))
                summary.rejected += 1
            if sum(len(v) for v in pending.values()) >= 20000:
                _insert_all(conn, pending)
        _insert_all(conn, pending)
    return count


def _load_krk(engine: Engine, path: Path, summary: LoadSummary) -> int:
    """Replace the KRK register from its file (store/krk.py); a file with an error is rejected whole, each
    error as a reject with its line."""
    from store.krk import load_krk_file

    result, problems = load_krk_file(engine, path, replace=True)
    if result is not None:
        return result.contacts
    with engine.begin() as conn:
        for p in problems:
            if p.level == "error":
                record_reject(conn, origin="load", file=path.name, line=p.line or None, reason=p.message, raw="")
                summary.rejected += 1
    return 0


def _insert_all(conn: Connection, pending: dict[Table, list[dict[str, Any]]]) -> None:
    for table, rows in pending.items():
        if rows:
            conn.execute(insert(table), rows)
    pending.clear()
