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
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select

from store import schema as s
from store.document import from_document
from store.errors import InvalidDocument
from store.registers import REGISTER_FILES, register_rows
from store.repository import PersonRepository, PreparedPerson, prepare_person
from store.state import get_feed_position, set_feed_position

__all__ = ["LoadSummary", "load_population", "prepared_chunks", "read_manifest", "record_reject"]

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
    # leave a lock held in the child for ever (seen under Python 3.13: a load hung in the pool's shutdown)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
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


def _load_persons(engine: Engine, path: Path, summary: LoadSummary, progress: Progress | None,
                  workers: int) -> None:
    now = _now()
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
