"""Bulk load of a population directory (docs/data-formats.md): persons and the HPR/AR/FLR registers.

Persons are read line by line, validated (store.document), turned into rows (store.repository
.person_rows) and inserted with one ``executemany`` per table for every batch of persons, each batch in
its own transaction: memory stays flat and a crash loses at most the batch in flight (a re-run
replaces persons already loaded, by personId). A line that is not JSON or breaks a rule goes to the
``reject`` table with its line number and reason; the load goes on.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select

from store import schema as s
from store.document import from_document
from store.errors import InvalidDocument
from store.registers import REGISTER_FILES, register_rows
from store.repository import PersonRepository, person_rows
from store.state import get_feed_position, set_feed_position

__all__ = ["LoadSummary", "load_population", "read_manifest", "record_reject"]

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


def _load_persons(engine: Engine, path: Path, summary: LoadSummary, progress: Progress | None) -> None:
    now = _now()
    with engine.connect() as conn:
        next_id = PersonRepository(conn).next_id()
    batch: list[tuple[int, str, Any]] = []

    def flush() -> None:
        nonlocal next_id
        with engine.begin() as conn:
            repo = PersonRepository(conn)
            keys = [p.person_key for _, _, p in batch]
            existing = set(conn.execute(select(s.person.c.person_key).where(s.person.c.person_key.in_(keys))).scalars())
            rows: dict[Table, list[dict[str, Any]]] = {}
            fresh: set[str] = set()
            for _, _, p in batch:
                if p.person_key in existing or p.person_key in fresh:
                    repo.save(p, now=now)  # replace: a re-run, or a key repeated in the file
                    summary.replaced += 1
                    continue
                fresh.add(p.person_key)
                for table, r in person_rows(p, next_id, now).items():
                    rows.setdefault(table, []).extend(r)
                next_id += 1
            for table, r in rows.items():  # dict order: person first, then its elements
                if r:
                    conn.execute(insert(table), r)
        summary.persons += len(batch)
        if progress:
            progress(len(batch))
        batch.clear()

    with engine.connect() as conn:
        rejects: list[dict[str, Any]] = []
        for n, line in _lines(path):
            try:
                person = from_document(_parse(line))
            except InvalidDocument as exc:
                rejects.append({"line": n, "reason": str(exc), "raw": line.rstrip("\n")})
                if progress:
                    progress(1)
                continue
            batch.append((n, line, person))
            if len(batch) >= BATCH:
                flush()
        if batch:
            flush()
        if rejects:
            with conn.begin():
                for r in rejects:
                    record_reject(conn, origin="load", file=path.name, **r)
            summary.rejected += len(rejects)


def load_population(engine: Engine, directory: Path, *, progress: Progress | None = None) -> LoadSummary:
    """Load persons and registers from a population directory; returns what was loaded."""
    import time

    started = time.perf_counter()
    manifest = read_manifest(directory)
    files = manifest.get("files", {})
    summary = LoadSummary()
    _load_persons(engine, directory / files.get("persons", "persons.jsonl"), summary, progress)
    for name in REGISTER_FILES:
        path = directory / files.get(name, f"{name}.jsonl")
        if path.is_file():
            summary.registers[name] = _load_register(engine, name, path, summary)
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


def _insert_all(conn: Connection, pending: dict[Table, list[dict[str, Any]]]) -> None:
    for table, rows in pending.items():
        if rows:
            conn.execute(insert(table), rows)
    pending.clear()
