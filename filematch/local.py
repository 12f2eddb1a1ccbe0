"""A local wash: a file in, a file out, streamed chunk by chunk against the store (no job).

This is ``pregbridge filematch run`` and the benchmark's subject. Memory is flat: one chunk of records
and its answer are held at a time. A CSV file is split into blocks of ``chunk_size`` lines, each parsed
where it is washed; other formats are read here and sent as records. With ``processes > 1`` chunks are
washed by a pool of worker processes (each with its own engine; the release is pickled to them), at
most ``2 × processes`` chunks in flight, answers written in input order. Washing is CPU-bound (Python), so
processes, not threads.

On SQLite the wash's read connections use a smaller memory map and page cache than the store's defaults
(store/engine.py: 256 MB mmap, 64 MB cache), set by PRAGMA on those connections only and restored after the
run: mapped pages that were read count toward the process's RSS, and a wash reads each person once, so a
large map only makes memory grow with the file's size without making the wash faster.

The cyclic garbage collector is tuned for the run (:func:`_wash_gc`, in each worker process, or around a
one-process wash, restored after it): a chunk's records, briefs and answers (~10,000 container objects,
acyclic, freed by reference counting when the chunk is answered) otherwise went through ~7 young and ~0.6
older collections per 1,000 records, and every few chunks a full one over everything the process had
imported — 3–4 µs of CPU per record (measured with ``gc.callbacks``, 100,000 records of a random draw from
the 1M store, 2026-12-05). Objects alive when the run starts are frozen (``gc.freeze``: no collection scans
them again) and a young collection waits for :data:`_GC_YOUNG` net allocations, more than a chunk holds;
cyclic garbage (rare here) is still collected, just later.
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import Connection, Engine

from filematch.formats import Format, SplitFormat, TextOptions
from filematch.formats.text import MAX_FIELD
from filematch.pipeline import UNMASKED, ChunkResult, Release, wash
from filematch.records import InputRecord
from filematch.report import Report
from store.engine import make_engine, read_connection
from store.source import PersonSource
from store.workers import exit_with_parent

SourceOf = Callable[[Engine], PersonSource | None]
"""Builds a process's read-through source over its engine (picklable: each wash process builds its own)."""

__all__ = ["CHUNK", "chunked", "wash_file"]

CHUNK = 2000
_GC_YOUNG = 100_000  # net allocations of container objects before a young collection (Python's default: 700)
_MMAP = 16 << 20  # bytes of SQLite memory map for a wash connection
_CACHE_KB = 16384  # KiB of SQLite page cache for a wash connection


@contextmanager
def _wash_connection(engine: Engine) -> Iterator[Connection]:
    """A read connection with the wash's small SQLite mmap and cache (restored before it goes back)."""
    with read_connection(engine) as conn:
        if conn.dialect.name != "sqlite":
            yield conn
            return
        mmap, cache = (conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("mmap_size", "cache_size"))
        conn.exec_driver_sql(f"PRAGMA mmap_size={_MMAP}")
        conn.exec_driver_sql(f"PRAGMA cache_size=-{_CACHE_KB}")
        try:
            yield conn
        finally:
            conn.exec_driver_sql(f"PRAGMA mmap_size={int(mmap or 0)}")
            conn.exec_driver_sql(f"PRAGMA cache_size={int(cache or 0)}")


@contextmanager
def _wash_gc() -> Iterator[None]:
    """The garbage collector tuned for a wash (module docstring), restored after it."""
    threshold, ours = gc.get_threshold(), gc.get_freeze_count() == 0  # (a caller that froze keeps its own)
    if ours:
        gc.freeze()
    gc.set_threshold(_GC_YOUNG, *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        if ours:
            gc.unfreeze()


def chunked(records: Iterable[InputRecord], size: int) -> Iterator[list[InputRecord]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk


_worker_engine: Engine | None = None
_worker_source: PersonSource | None = None

# A unit of work for the pool: a block of raw text where the format can split itself (CSV: the reading
# process then only splits lines, and parsing runs in the workers too), else a list of records as lists.
_Unit = tuple[Any, ...]


def _units(fmt: Format, src: Path, options: TextOptions, chunk_size: int) -> Iterator[_Unit]:
    if isinstance(fmt, SplitFormat):
        for block in fmt.blocks(src, options, chunk_size):
            yield ("block", block)
    else:
        for chunk in chunked(fmt.read(src, options), chunk_size):
            yield ("records", [r.to_list() for r in chunk])  # plain lists pickle faster than dataclasses


def _records_of(fmt: Format, unit: _Unit) -> list[InputRecord]:
    if unit[0] == "block":
        assert isinstance(fmt, SplitFormat)
        return fmt.parse_block(unit[1])
    return [InputRecord.from_list(r) for r in unit[1]]


def _wash_unit(conn: Connection, fmt: Format, unit: _Unit, options: TextOptions,
               release: Release, source: PersonSource | None = None,
               request_id: str | None = None) -> tuple[bytes, ChunkResult, int]:
    records = _records_of(fmt, unit)
    res = wash(conn, records, release, source=source, request_id=request_id)
    flush = getattr(source, "flush", None)
    if flush is not None:  # the chunk's "asked about" marks written now: a wash process may end at any time
        flush()
    return fmt.encode(res.results, options), ChunkResult([], res.counts, [], res.refused), len(records)


def _init_worker(url: str, source_of: SourceOf | None = None) -> None:
    global _worker_engine, _worker_source
    exit_with_parent()  # a killed wash leaves no worker waiting for ever (store/workers.py)
    _worker_engine = make_engine(url)
    _worker_source = source_of(_worker_engine) if source_of is not None else None
    gc.freeze()  # (_wash_gc, for the worker's life: the process exists for this run only)
    gc.set_threshold(_GC_YOUNG, *gc.get_threshold()[1:])


def _wash_in_worker(unit: _Unit, fmt_name: str, options: TextOptions, release: Release,
                    request_id: str | None = None) -> tuple[bytes, ChunkResult, int]:
    from filematch.formats import format_named

    assert _worker_engine is not None
    with _wash_connection(_worker_engine) as conn:
        return _wash_unit(conn, format_named(fmt_name), unit, options, release, _worker_source, request_id)


def wash_file(engine: Engine, src: Path, out: BinaryIO, fmt: Format, *, encoding: str | None = None,
              release: Release = UNMASKED, chunk_size: int = CHUNK, processes: int = 1,
              progress: Callable[[int], None] | None = None, max_field: int = MAX_FIELD,
              source_of: SourceOf | None = None, request_id: str | None = None) -> Report:
    """Wash ``src`` into ``out`` (FileFormatError if the file cannot be read at all). The report counts the
    lines refused unread (answered INVALID) with the first reasons. ``source_of`` (read-through mode) builds
    each washing process's source; ``request_id`` names the run in the upstream calls it causes."""
    started = time.perf_counter()
    options = replace(fmt.detect(src, encoding), max_field=max_field)
    report = Report()
    out.write(fmt.header(options))
    units = _units(fmt, src, options, chunk_size)
    if processes <= 1:
        source = source_of(engine) if source_of is not None else None
        with _wash_gc(), _wash_connection(engine) as conn:
            for unit in units:
                data, res, n = _wash_unit(conn, fmt, unit, options, release, source, request_id)
                out.write(data)
                report.add(res.counts)
                report.add_refused(res.refused)
                if progress:
                    progress(n)
    else:
        url = engine.url.render_as_string(hide_password=False)
        with ProcessPoolExecutor(processes, initializer=_init_worker, initargs=(url, source_of)) as pool:
            pending: deque[Future[tuple[bytes, ChunkResult, int]]] = deque()
            for unit in units:
                pending.append(pool.submit(_wash_in_worker, unit, fmt.name, options, release, request_id))
                while len(pending) >= 2 * processes:
                    _drain(pending.popleft(), out, report, progress)
            while pending:
                _drain(pending.popleft(), out, report, progress)
    out.write(fmt.footer(options))
    report.seconds = time.perf_counter() - started
    return report


def _drain(fut: Future[tuple[bytes, ChunkResult, int]], out: BinaryIO, report: Report,
           progress: Callable[[int], None] | None) -> None:
    data, res, n = fut.result()
    out.write(data)
    report.add(res.counts)
    report.add_refused(res.refused)
    if progress:
        progress(n)
