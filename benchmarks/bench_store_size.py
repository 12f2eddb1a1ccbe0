"""Store size benchmark (issue 19): bytes per person by table and index, and the bytes a load writes.

For each ``--num`` (the store suite's population, benchmarks/out/pop-N-SEED, generated if missing):

1. **load writes**: ``pregbridge load`` into a fresh SQLite file, in its own process; the bytes it wrote to
   storage are its ``write_bytes`` (Linux task I/O accounting, its parsing workers included: ``os.wait4``'s
   ``ru_oublock``, 512-byte units), against the file it leaves (database + WAL) and the persons file it read.
   Target: at most a few times the file (issue 19: the load of 5.6M wrote ~349 GB for a 26 GB file, ×13).
2. **size**: the file's pages by table and index (SQLite's ``dbstat``; PostgreSQL with ``--dburl``:
   ``pg_relation_size`` of each table with its TOAST and of each index), per person. Target ≤ 2,500 B.
3. **decode**: reading a stored document (``store.document.load_stored``) in its stored format against the
   same documents as JSON text (format 0, what the store kept before migration 0031), µs per document, on
   up to 5,000 documents of the store, best of 5 rounds: the CPU a lookup (getPerson) pays for compression.

With ``--dburl`` (PostgreSQL) the load runs in this process (its writes are the server's: not counted) and
only the sizes are measured. ``--reuse`` measures the size of an existing ``store-size-N.sqlite`` only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from benchmarks.bench_store import ensure_population
from benchmarks.harness import OUT, Result
from store.document import decode_stored, from_stored, load_stored
from store.engine import make_engine, migrate

__all__ = ["run", "sizes"]

TARGET_BYTES = 2500  # per person (issue 19)
TARGET_WRITES = 4.0  # bytes written by the load / bytes of the file it leaves


_SQLITE_SIZES = "SELECT name, sum(pgsize) FROM dbstat GROUP BY name"
_PG_SIZES = ("SELECT c.relname, CASE WHEN c.relkind = 'i' THEN pg_relation_size(c.oid) ELSE pg_table_size(c.oid) "
             "END FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
             "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')")


def _rows(url: str, sql: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def sizes(url: str) -> dict[str, int]:
    """Bytes by table and index name (tables with their overflow or TOAST, without their indexes)."""
    return {name: int(size) for name, size in _rows(url, _PG_SIZES if url.startswith("postgresql") else _SQLITE_SIZES)}


def _persons(url: str) -> int:
    return int(_rows(url, "SELECT count(*) FROM person")[0][0])


def _load_subprocess(db: Path, pop: Path) -> tuple[float, int]:
    """(seconds, bytes written) of ``pregbridge load`` into a fresh ``db``."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--database-url", f"sqlite:///{db}", "load", str(pop)],
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"pregbridge load failed ({proc.returncode})")
    return time.perf_counter() - started, usage.ru_oublock * 512


def _file_bytes(db: Path) -> int:
    return sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").is_file())


def _best(fn: object, items: list[bytes | str], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for x in items:
            fn(x)  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return best / len(items) * 1e6


def _decode(url: str, n: int) -> Iterator[Result]:
    every = max(1, n // 5000)
    stored = [r[0] for r in _rows(url, f"SELECT doc FROM person WHERE mod(id, {every}) = 0 LIMIT 5000")]
    as_text = [orjson.dumps(decode_stored(d)).decode() for d in stored]
    if not stored:
        return
    old = _best(lambda t: from_stored(orjson.loads(t)), as_text)
    new = _best(load_stored, stored)
    size_old = sum(len(t.encode()) for t in as_text) / len(as_text)
    size_new = sum(len(d) for d in stored) / len(stored)
    yield Result("decode stored document", len(stored), 0.0, f"{new:.1f} µs ({size_new:,.0f} B)", ratio=new / old,
                 baseline=f"JSON text {old:.1f} µs ({size_old:,.0f} B)")


def _size_results(url: str, n: int, seconds: float) -> Iterator[Result]:
    by_name = sizes(url)
    persons = _persons(url) or 1
    total = sum(by_name.values())
    per = total / persons
    yield Result("store size", persons, seconds, f"{per:,.0f} B/person ({total / 1e6:,.1f} MB)",
                 target=f"≤ {TARGET_BYTES:,} B/person", ok=per <= TARGET_BYTES)
    for name, size in sorted(by_name.items(), key=lambda kv: -kv[1]):
        if size / persons >= 1:
            print(f"#   {name:<52} {size / persons:8,.0f} B/person  {size / 1e6:10,.1f} MB", flush=True)


def run(args: argparse.Namespace) -> Iterator[Result]:
    for n in sorted(args.num):
        if args.dburl:
            url = str(args.dburl)
            if not args.reuse:
                from store.loading import load_population

                pop = ensure_population(n, args.seed)
                engine = make_engine(url)
                migrate(engine)
                started = time.perf_counter()
                load_population(engine, pop)
                engine.dispose()
                print(f"# loaded {n:,} persons in {time.perf_counter() - started:.0f} s", flush=True)
            yield from _size_results(url, n, 0.0)
            yield from _decode(url, n)
            continue
        db = OUT / f"store-size-{n}.sqlite"
        url = f"sqlite:///{db}"
        seconds = 0.0
        if not (args.reuse and db.is_file()):
            pop = ensure_population(n, args.seed)
            seconds, written = _load_subprocess(db, pop)
            file_bytes = _file_bytes(db)
            persons_file = (pop / "persons.jsonl").stat().st_size
            ratio = written / file_bytes
            yield Result("load writes", n, seconds,
                         f"{written / 1e6:,.0f} MB for a {file_bytes / 1e6:,.0f} MB file", ratio=ratio,
                         baseline=f"file (persons.jsonl {persons_file / 1e6:,.0f} MB: "
                                  f"{written / persons_file:.2f}×)",
                         target=f"≤ {TARGET_WRITES:.0f}× the file", ok=ratio <= TARGET_WRITES)
        yield from _size_results(url, n, seconds)
        yield from _decode(url, n)
