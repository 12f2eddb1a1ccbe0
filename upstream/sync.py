"""The sync: keeps the store current by following Persontjenesten's event feed (docs/upstream.md).

One **page** at a time::

    position = store's feed position (0 on an empty store; a file load's snapshotSequence after a load)
    events   = GET event?sequenceNumber=position+1            (≤ 1,000, in sequence order)
    persons  = POST person/bulk-by-id for the page's person ids (≤ 100 a call, `parallelism` calls at once;
               an id a bulk answer leaves out is asked again alone: a 404 is "gone")
    one transaction: every person saved through the repository's writer (document + every derived table),
               every event recorded in feed_event, rejects recorded, ceased numbers settled, and the position
               moved to the page's last sequence number

Nothing is applied unless the whole page is: a crash (even ``kill -9``) anywhere before the commit leaves
the position where it was, and the rerun fetches the same page again and writes the same rows (a person is
replaced whole by its document, so applying it twice is applying it once). The transaction re-reads the
position under the store's write lock and refuses to apply a page another writer has moved past.

Per person: the answer is mapped (upstream.mapping) and validated by the store's rules
(store.document.from_document). A person that breaks a rule goes to ``reject`` (origin ``sync``, its event's
sequence number, the reason naming the field) and its events are recorded as ``rejected``; a person the
API answers 404 for is left as the store has it (a stored person stays findable) and its events are
recorded as ``missing`` with a reject row saying so; unknown enum values are counted and logged by type.

**Merges.** When a person is continued upon a merger (PersonIsContinuedAsValidUponMerger) its document
lists the duplicate's numbers as ceased identifiers, while the duplicate (PersonIsDiscontinuedAsDuplicate,
status opphoert) still lists them too. A number held by a discontinued person and by a live one is indexed
on the live one only, so a lookup by any ceased number finds the surviving person; a discontinued person
whose numbers nobody else holds stays findable under them (PersonIsDiscontinued).

**Initial sync.** Into an empty store (not in read-through mode) the syncer drops the search tables'
indexes (person_search's and person_given_word's) first and builds them once, sorted, when it has caught
up (store.loading.defer_indexes, as the initial load does): inserted a page at a time, their keys are in no
order and every page rewrote most of their index pages. person_identifier's number index stays (the merge
rule above reads it). A sync stopped before it caught up leaves the indexes to whatever opens the store next
(store.engine.migrate at head: every command and the server build them); faces answer meanwhile, searches
slowly.

**One syncer per store**: :class:`SyncLock` — PostgreSQL: a session advisory lock (keyed by the store's
schema) held by the syncer's own connection; SQLite: an exclusive ``flock`` on ``<database>-sync.lock``
beside the database file. Both are released by the operating system when the process dies, so a rerun
after ``kill -9`` starts at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, insert, select, text, tuple_

from store import schema as s
from store.errors import PregbridgeError
from store.feed import write_lock
from store.loading import defer_indexes, record_reject, restore_deferred_indexes, search_indexes
from store.repository import PersonRepository, PreparedPerson
from store.state import get_feed_position, get_state, set_feed_position, set_state
from store.workers import spawn_pool
from upstream.bulk import Mapped, map_answers, map_bulk, ready
from upstream.readthrough_feed import FeedWatch, HeldMeanwhile, PurgeSchedule, ReadThroughFeed, Selection

__all__ = [
    "SQLITE_CACHE_KIB",
    "EventLike",
    "SyncLock",
    "SyncLockHeld",
    "SyncOptions",
    "SyncStatus",
    "SyncSummary",
    "Syncer",
    "Upstream",
    "sync_status",
]

log = logging.getLogger("pregbridge.sync")

BULK_MAX = 100  # ids per person/bulk-by-id call (the API's limit)
#: SQLite: the page cache of the syncer's connections (KiB; the store's default is 64 MiB). The syncing
#: process's resident memory held a full 64 MiB of it already at 100,000 persons (sqlite3_memory_used, read
#: with gdb in a running benchmark: 69.7 MB), a fifth of the 300 MB the syncer and its workers may use. A
#: changed person dirties ~20 KB of pages on a store of 30,000 (store.derived.write_derived; 27 KB before it),
#: so 32 MiB holds a page of 1,000 without spilling to the WAL mid-transaction, and the B-trees' interior
#: pages besides.
SQLITE_CACHE_KIB = 32 * 1024
_PG_SYNC_LOCK = 0x70726573  # "pres": the syncer's session lock (store.feed's ingest lock is another key)
# advisory locks are per database: the store's schema is the second half of the key, so that stores in two
# schemas of one database have a syncer each
_PG_KEY = ":k, hashtext(current_schema())"
_ORIGIN, _FILE = "sync", "persontjenesten"

# store_state keys
_LATEST, _CAUGHT_UP, _ERROR, _RUN, _HOLDER = ("sync.upstream_latest", "sync.caught_up_at", "sync.last_error",
                                               "sync.last_run", "sync.holder")


class EventLike(Protocol):
    @property
    def sequence_number(self) -> int: ...
    @property
    def person_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...


class Upstream(Protocol):
    """What the sync needs of a Persontjenesten client (upstream.client.PersontjenestenClient fits)."""

    def latest_event(self) -> EventLike | None: ...
    def events(self, sequence_number: int) -> Sequence[EventLike]: ...
    def persons_by_id(self, ids: Sequence[str], parts: Sequence[str],
                      include_history: bool = False) -> list[dict[str, Any]]: ...
    def person_by_id(self, person_id: str, parts: Sequence[str],
                     include_history: bool = False) -> dict[str, Any] | None: ...


class SyncLockHeld(PregbridgeError):
    """Another syncer holds this store's sync lock (the CLI exits 3)."""

    exit_code = 3


@dataclass(frozen=True, slots=True)
class SyncOptions:
    parts: tuple[str, ...]  # informationParts (upstream.parts.information_parts)
    include_history: bool = True
    parallelism: int = 4  # bulk requests in flight
    poll_interval: float = 30.0
    workers: int = 1  # processes that map and validate (the CLI: one per core)
    # read-through mode (upstream.readthrough_feed): only held persons are fetched; the purge runs on a schedule
    read_through: bool = False
    retention_days: int = 90
    purge_interval: float = 3600.0
    stale_after: float = 300.0  # seconds of failing feed before a warning (the CLI: 10 × poll_interval)


@dataclass
class SyncSummary:
    pages: int = 0
    events: int = 0
    persons: int = 0
    applied: int = 0
    rejected: int = 0
    missing: int = 0
    skipped: int = 0  # read-through: events of persons the store does not hold
    settled_numbers: int = 0
    unknown: Counter[str] = field(default_factory=Counter)
    position: int = 0
    latest: int | None = None
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SyncStatus:
    position: int
    latest: int | None  # the upstream's latest sequence number as last seen (or asked now)
    lag_events: int | None
    lag_seconds: float | None  # since the sync was last caught up; 0 when caught up
    last_error: str | None
    last_run: str | None
    running: bool  # a syncer holds the lock now
    holder: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# -- the lock ------------------------------------------------------------------------------------------


class SyncLock:
    """The store's one-syncer lock (module docstring). ``acquire`` raises :class:`SyncLockHeld`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._fd: int | None = None

    def _path(self) -> Path:
        database = self.engine.url.database
        if not database or database == ":memory:":
            raise PregbridgeError("the sync needs a file or PostgreSQL store, not an in-memory one")
        return Path(f"{database}-sync.lock")

    def try_acquire(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = bool(conn.execute(text(f"SELECT pg_try_advisory_lock({_PG_KEY})"), {"k": _PG_SYNC_LOCK}).scalar())
            conn.commit()  # a session lock outlives the transaction
            if got:
                self._conn = conn
            else:
                conn.close()
            return got
        import fcntl

        fd = os.open(self._path(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire(self) -> SyncLock:
        if not self.try_acquire():
            raise SyncLockHeld("another syncer is running on this store (one syncer per store); this one exits")
        with self.engine.begin() as conn:
            set_state(conn, _HOLDER, f"{socket.gethostname()} pid {os.getpid()} since {_now():%Y-%m-%dT%H:%M:%SZ}")
        return self

    def release(self) -> None:
        if self._conn is not None:
            self._conn.execute(text(f"SELECT pg_advisory_unlock({_PG_KEY})"), {"k": _PG_SYNC_LOCK})
            self._conn.commit()
            self._conn.close()
            self._conn = None
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Does a syncer hold the lock now? (Takes and gives back the lock when free.)"""
        if self.try_acquire():
            self.release()
            return False
        return True

    def __enter__(self) -> SyncLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- status --------------------------------------------------------------------------------------------


def sync_status(engine: Engine, upstream: Upstream | None = None) -> SyncStatus:
    """Position, upstream latest (asked now when ``upstream`` is given, else as last seen), lag, last error."""
    with engine.connect() as conn:
        position = get_feed_position(conn)
        latest_text, caught_up, error, last_run, holder = (get_state(conn, k) for k in
                                                            (_LATEST, _CAUGHT_UP, _ERROR, _RUN, _HOLDER))
    latest = int(latest_text) if latest_text else None
    if upstream is not None:
        event = upstream.latest_event()
        latest = event.sequence_number if event is not None else 0
    lag = None if latest is None else max(0, latest - position)
    lag_seconds: float | None = None
    if lag == 0:
        lag_seconds = 0.0
    elif caught_up:
        lag_seconds = (_now() - dt.datetime.fromisoformat(caught_up)).total_seconds()
    running = SyncLock(engine).held_elsewhere()
    return SyncStatus(position, latest, lag, lag_seconds, error, last_run, running, holder if running else None)


# -- the sync ------------------------------------------------------------------------------------------


@dataclass
class _Page:
    events: list[EventLike]
    seqs: dict[str, int]  # person id → the page's last sequence number of an event about them
    persons: list[PreparedPerson] = field(default_factory=list)
    settle: list[str] = field(default_factory=list)
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unknown: Counter[str] = field(default_factory=Counter)
    read_through: Selection | None = None  # read-through: the persons this page fetched and writes


def _checksum(ev: EventLike) -> str:
    canonical = json.dumps({"sequenceNumber": ev.sequence_number, "personId": ev.person_id,
                            "eventType": ev.event_type}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Checkpointer:
    """SQLite: the WAL is copied back into the database file by a thread of its own after each page's commit,
    not by the committing transaction (SQLite's autocheckpoint, which the syncer's writing connection turns
    off while it writes a page). A page of 1,000 changed persons dirties ~30 MB of pages on a store of
    100,000 (every derived table and its indexes); copying them back and the fsync that follows then overlap
    the next page's work instead of lengthening every commit. Before a page's transaction begins, a WAL grown
    past ``LIMIT`` bytes is checkpointed first (the thread does it; the page waits), so that the transaction
    starts the WAL afresh: it stays bounded. Durability is unchanged (WAL mode with synchronous=NORMAL: a
    commit is on disk at the next checkpoint, whoever runs it; a crashed process loses nothing committed).

    The thread has its own connection, out of the engine's pool, with a page cache of 1 MB: a checkpoint reads
    through its connection's cache, and the store's 64 MB one would add that much to the syncer's memory."""

    LIMIT = 96 << 20  # bytes of WAL: about three pages of 1,000 changed persons on a store of 100,000
    CACHE_KIB = 1024

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._wal = Path(f"{engine.url.database}-wal")
        self._cond = threading.Condition()
        self._asked = self._done = 0  # checkpoints asked for, and the last one asked for that has run
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="sync-checkpoint", daemon=True)
        self._thread.start()

    @staticmethod
    def wanted(engine: Engine) -> bool:
        return engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:")

    def _checkpoint(self, conn: Connection) -> None:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").all()

    def _run(self) -> None:
        conn: Connection | None = None
        try:
            conn = self.engine.connect()
            conn.detach()  # its pragma below stays with it: closed for good at the end, never back in the pool
            conn.execution_options(sqlite_begin="none")  # a checkpoint runs outside any transaction
            conn.exec_driver_sql(f"PRAGMA cache_size=-{self.CACHE_KIB}")
            while True:
                with self._cond:
                    while self._asked == self._done and not self._closing:
                        self._cond.wait()
                    if self._asked == self._done:  # closing, nothing left
                        return
                    target = self._asked
                try:
                    self._checkpoint(conn)
                except Exception as exc:  # noqa: BLE001 - the next one (or SQLite's own) catches up
                    log.warning("a WAL checkpoint after a page failed (%s); the next one catches up",
                                type(exc).__name__)
                with self._cond:
                    self._done = target
                    self._cond.notify_all()
        except Exception as exc:  # noqa: BLE001 - no connection: SQLite's own checkpoints remain
            log.warning("the WAL checkpointer could not start (%s)", type(exc).__name__)
        finally:
            with self._cond:
                self._closing = True
                self._done = self._asked  # nobody waits for a thread that is gone
                self._cond.notify_all()
            if conn is not None:
                conn.close()

    def _ask(self) -> int:
        with self._cond:
            if self._closing:
                return self._done
            self._asked += 1
            self._cond.notify_all()
            return self._asked

    def committed(self) -> None:
        """A page was committed: copy it back (in the thread)."""
        self._ask()

    def before_begin(self) -> None:
        """Wait for a checkpoint first when the WAL has grown past ``LIMIT``."""
        try:
            size = self._wal.stat().st_size
        except FileNotFoundError:
            return
        if size > self.LIMIT:
            target = self._ask()
            with self._cond:
                while self._done < target:
                    self._cond.wait()

    def close(self) -> None:
        """One last checkpoint, then the thread ends."""
        self._ask()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()


class SyncConflict(PregbridgeError):
    """The store's feed position moved while a page was fetched (another writer): nothing was applied."""


class Syncer:
    """Follows the feed into the store (module docstring): fetches with ``parallelism`` threads, maps and
    validates in ``workers`` processes (1: in this process), and applies one page per transaction here while
    the next page is fetched and mapped. One per process (the :class:`SyncLock` makes it one per store)."""

    def __init__(self, engine: Engine, upstream: Upstream, options: SyncOptions) -> None:
        if "NorwegianIdentificationNumber" not in options.parts:
            raise ValueError("the sync needs the NorwegianIdentificationNumber part")
        self.engine = engine
        self.upstream = upstream
        self.options = options
        self._pool = ThreadPoolExecutor(max(1, options.parallelism), thread_name_prefix="sync-fetch")
        self._ahead = ThreadPoolExecutor(1, thread_name_prefix="sync-ahead")  # the next page, while one is written
        self._workers: ProcessPoolExecutor | None = None
        if options.workers > 1:  # spawned, not forked: this process has threads (the fetch pool, httpx)
            self._workers = spawn_pool(options.workers)  # ending with this process if it is killed
            # started now, with their imports done, as the syncer's own start is: not in a page's time
            for started in [self._workers.submit(ready) for _ in range(options.workers)]:
                started.result()
        self._checkpointer = _Checkpointer(engine) if _Checkpointer.wanted(engine) else None
        self._rt = ReadThroughFeed(engine) if options.read_through else None
        self._purge = (PurgeSchedule(engine, options.retention_days, options.purge_interval)
                       if options.read_through else None)
        with engine.connect() as conn:
            self._watch = FeedWatch(options.stale_after, get_state(conn, _RUN))
        self._deferred = False  # the search tables' indexes dropped for an initial sync (module docstring)

    def close(self) -> None:
        """Stop the fetch threads and worker processes and close the upstream client (if it has ``close``)."""
        self._ahead.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True)
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        if self._checkpointer is not None:
            try:
                self._checkpointer.close()
            except Exception as exc:  # noqa: BLE001 - the store may be what failed; SQLite catches up later
                log.warning("the last WAL checkpoint failed (%s)", type(exc).__name__)
        close = getattr(self.upstream, "close", None)
        if callable(close):
            close()

    # -- fetch and map (no transaction open) --

    def _bulk(self, ids: Sequence[str]) -> bytes | list[dict[str, Any]]:
        """One bulk answer: its bytes when the client gives them (parsed in a worker process), else its list."""
        o = self.options
        body = getattr(self.upstream, "persons_by_id_body", None)
        if callable(body):
            return bytes(body(ids, o.parts, o.include_history))
        return self.upstream.persons_by_id(ids, o.parts, o.include_history)

    def _one(self, person_id: str) -> dict[str, Any] | None:
        return self.upstream.person_by_id(person_id, self.options.parts, self.options.include_history)

    def _map(self, fn: Callable[..., Mapped], *args: Any) -> Future[Mapped]:
        if self._workers is None:
            done: Future[Mapped] = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:  # noqa: BLE001 - raised where a worker's would be: at result()
                done.set_exception(exc)
            return done
        return self._workers.submit(fn, *args)

    def _page(self, events: list[EventLike]) -> _Page:
        seqs: dict[str, int] = {}
        for ev in events:
            seqs[ev.person_id] = ev.sequence_number
        page = _Page(events, seqs)
        ids = list(seqs)
        if self._rt is not None:  # read-through: only the persons the store holds (and merge survivors)
            page.read_through = self._rt.select(events)
            ids = page.read_through.fetch
        chunks = {self._pool.submit(self._bulk, ids[i : i + BULK_MAX]): ids[i : i + BULK_MAX]
                  for i in range(0, len(ids), BULK_MAX)}
        # each answer is parsed and mapped in a worker while the others are still on their way
        mapped = [self._map(map_bulk, chunks[fetch], fetch.result()) for fetch in as_completed(chunks)]
        results = [m.result() for m in mapped]
        answered = {key for r in results for key in r.answered}
        for _ in range(sum(r.strays for r in results)):
            log.warning("a bulk answer held a person that was not asked for; left out")
        left = [i for i in ids if i not in answered]
        singles = []
        for person_id, raw in zip(left, self._pool.map(self._one, left), strict=True):
            if raw is None:
                page.missing.append(person_id)  # the API answers 404 for this person
            else:
                singles.append((person_id, raw))
        if singles:
            results.append(self._map(map_answers, singles).result())
        for result in results:
            page.persons += result.persons
            page.settle += [n for numbers in result.settle for n in numbers]
            page.rejects += result.rejects
            page.unknown.update(result.unknown)
        if self._rt is not None:
            self._rt.narrow(page)
        return page

    # -- apply (one transaction) --

    @contextmanager
    def _checkpointed(self, conn: Connection) -> Iterator[None]:
        """SQLite: ``conn`` without its autocheckpoint while a page is written, the checkpointer told after
        (:class:`_Checkpointer`); the pooled connection is given back as it was."""
        ckpt = self._checkpointer
        if ckpt is None:
            yield
            return
        ckpt.before_begin()

        def pragma(sql: str) -> Any:
            conn.execution_options(sqlite_begin="none")  # pragmas outside a transaction
            value = conn.exec_driver_sql(sql).scalar()
            conn.commit()
            return value

        auto = int(pragma("PRAGMA wal_autocheckpoint") or 0)
        pragma("PRAGMA wal_autocheckpoint=0")
        try:
            yield
        finally:
            pragma(f"PRAGMA wal_autocheckpoint={auto}")
        ckpt.committed()

    def _apply(self, page: _Page, position: int, summary: SyncSummary) -> None:
        for _ in range(4):
            try:
                return self._write(page, position, summary)
            except HeldMeanwhile:  # read-through: a skipped person was stored meanwhile; fetch the page again
                page = self._page(page.events)
        return self._write(page, position, summary)

    def _write(self, page: _Page, position: int, summary: SyncSummary) -> None:
        now = _now()
        last = page.events[-1].sequence_number
        with self.engine.connect() as conn, self._checkpointed(conn):
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                write_lock(conn)
                at = get_feed_position(conn)
                if at != position:
                    raise SyncConflict(f"the feed position moved from {position} to {at} while a page was "
                                       "fetched (another writer?); nothing was applied")
                if self._rt is not None:
                    self._rt.recheck(conn, page)
                recorded = ReadThroughFeed.recorded(page, page.events)
                PersonRepository(conn).save_prepared([(p, page.seqs[p.key]) for p in page.persons], now=now)
                summary.settled_numbers += _settle_numbers(conn, page.settle)
                for person_id, reason, raw in page.rejects:
                    record_reject(conn, origin=_ORIGIN, file=_FILE, line=None, seq=page.seqs[person_id],
                                  key=person_id[:64], reason=reason, raw=raw)
                for person_id in page.missing:
                    record_reject(conn, origin=_ORIGIN, file=_FILE, line=None, seq=page.seqs[person_id],
                                  key=person_id[:64], reason="the person is gone from Persontjenesten (404); "
                                  "the store keeps what it had", raw="")
                outcome = {**{r[0]: "rejected" for r in page.rejects}, **dict.fromkeys(page.missing, "missing")}
                rows = [{"seq": ev.sequence_number, "person_key": ev.person_id[:64], "event_type": ev.event_type[:80],
                         "registered_at": None, "applied_at": now, "checksum": _checksum(ev),
                         "outcome": outcome.get(ev.person_id, "applied")} for ev in recorded]
                if rows:  # read-through: none when the page held no event of a held person
                    conn.execute(insert(s.feed_event), rows)
                set_feed_position(conn, last)
                set_state(conn, _RUN, f"{now:%Y-%m-%dT%H:%M:%SZ}")
                if summary.latest is not None and last >= summary.latest:
                    set_state(conn, _CAUGHT_UP, now.isoformat(timespec="seconds"))
        summary.pages += 1
        summary.events += len(page.events)
        summary.skipped += len(page.events) - len(recorded)
        summary.persons += len(page.seqs)
        summary.applied += len(page.persons)
        summary.rejected += len(page.rejects)
        summary.missing += len(page.missing)
        summary.position = last

    def _events(self, after: int) -> list[EventLike]:
        events = [ev for ev in self.upstream.events(after + 1) if ev.sequence_number > after]
        for x, y in zip(events, events[1:], strict=False):
            if y.sequence_number <= x.sequence_number:
                raise PregbridgeError("the event feed's sequence numbers do not increase; nothing was applied")
        return events

    def sync_pages(self, summary: SyncSummary, stop: threading.Event,
                   progress: Callable[[SyncSummary], None] | None = None) -> None:
        """Apply pages until the feed has no more (or ``stop`` is set). The next page is fetched and mapped
        while this one is written (one page ahead): its events are asked for from this page's last sequence
        number, and it is applied only after this one committed, against that position."""
        with self.engine.connect() as conn:
            position = get_feed_position(conn)
        summary.position = position
        events = self._events(position)
        ahead: Future[_Page] | None = self._ahead.submit(self._page, events) if events else None
        while ahead is not None and not stop.is_set():
            page = ahead.result()
            summary.unknown.update(page.unknown)
            try:
                following = self._events(page.events[-1].sequence_number)
            except Exception:
                self._apply(page, position, summary)  # the page in hand is good: keep it, then report
                raise
            ahead = self._ahead.submit(self._page, following) if following else None
            try:
                self._apply(page, position, summary)
            except BaseException:
                if ahead is not None:
                    ahead.cancel()
                raise
            position = summary.position
            if progress:
                progress(summary)
        if ahead is not None:  # stopped: the page fetched ahead is dropped, fetched again next time
            ahead.cancel()
        if not stop.is_set():
            if self._deferred:  # caught up after an initial sync: its search indexes, built once
                self._deferred = False
                restore_deferred_indexes(self.engine)
            with self.engine.begin() as conn:
                now = _now()
                set_state(conn, _CAUGHT_UP, now.isoformat(timespec="seconds"))
                set_state(conn, _RUN, f"{now:%Y-%m-%dT%H:%M:%SZ}")

    def _note_latest(self, summary: SyncSummary) -> None:
        event = self.upstream.latest_event()
        summary.latest = event.sequence_number if event is not None else 0
        with self.engine.begin() as conn:
            set_state(conn, _LATEST, str(summary.latest))

    def _page_done(self, progress: Callable[[SyncSummary], None] | None, reported: Counter[str],
                   summary: SyncSummary) -> None:
        if progress:
            progress(summary)
        if self._purge is not None:
            self._purge.tick()
        self._log_unknown(summary, reported)

    def _log_unknown(self, summary: SyncSummary, reported: Counter[str]) -> None:
        for enum, n in (summary.unknown - reported).items():
            log.warning("Persontjenesten sent %d value(s) of %s that this version does not know; kept as "
                        "docs/upstream.md says", n, enum)
        reported.update(summary.unknown - reported)

    def run(self, *, once: bool = True, stop: threading.Event | None = None,
            progress: Callable[[SyncSummary], None] | None = None) -> SyncSummary:
        """Apply pages until caught up (``once``), or keep following the feed until ``stop`` is set, waiting
        ``poll_interval`` when caught up and after a transient upstream failure. Errors that retrying will not
        cure (configuration, authentication, a rule of the feed) are recorded and raised."""
        from upstream.errors import UpstreamUnavailable

        stop = stop or threading.Event()
        summary = SyncSummary()
        reported: Counter[str] = Counter()
        started = time.perf_counter()
        if self._rt is None:
            self._deferred = defer_indexes(self.engine, search_indexes())
        try:
            while not stop.is_set():
                if self._purge is not None:  # read-through: purge when due, before persons are fetched
                    self._purge.tick()
                try:
                    self._note_latest(summary)
                    self.sync_pages(summary, stop, functools.partial(self._page_done, progress, reported))
                    self._clear_error()
                    self._watch.ok()
                except UpstreamUnavailable as exc:
                    self._record_error(exc)
                    self._watch.failed()
                    if once:
                        raise
                    log.warning("Persontjenesten unavailable (%s); retrying in %.0f s", type(exc).__name__,
                                self.options.poll_interval)
                except Exception as exc:
                    self._record_error(exc)
                    raise
                if once:
                    break
                stop.wait(self.options.poll_interval)
        finally:
            self._log_unknown(summary, reported)
            summary.seconds = time.perf_counter() - started
        return summary

    def _record_error(self, exc: BaseException) -> None:
        message = exc.message if isinstance(exc, PregbridgeError) else ""  # our messages carry no patient data
        try:
            with self.engine.begin() as conn:
                set_state(conn, _ERROR, f"{_now():%Y-%m-%dT%H:%M:%SZ} {type(exc).__name__}: {message}")
        except Exception:  # noqa: BLE001 - the store itself may be what failed; the caller sees the first error
            log.warning("could not record the sync's last error in the store")

    def _clear_error(self) -> None:
        with self.engine.begin() as conn:
            if get_state(conn, _ERROR):
                set_state(conn, _ERROR, "")


# -- merges: ceased numbers findable on the surviving person -------------------------------------------------


def _settle_numbers(conn: Connection, numbers: Sequence[str]) -> int:
    """Index a number held by a discontinued person and by a live one on the live one only (module
    docstring); returns how many index rows were dropped. ``numbers`` are those of the page's persons that
    are discontinued or hold a ceased number, the only ways such a pair arises."""
    if not numbers:
        return 0
    numbers = list(dict.fromkeys(numbers))
    holders: defaultdict[str, set[int]] = defaultdict(set)
    t = s.person_identifier
    for k in range(0, len(numbers), 500):
        for number, pid in conn.execute(select(t.c.number, t.c.person_id).where(t.c.number.in_(numbers[k : k + 500]))):
            holders[number].add(pid)
    shared = {n: pids for n, pids in holders.items() if len(pids) > 1}
    if not shared:
        return 0
    pids = list({pid for group in shared.values() for pid in group})
    status = dict(conn.execute(select(s.person_search.c.person_id, s.person_search.c.status)
                               .where(s.person_search.c.person_id.in_(pids))).all())
    drop = [(n, pid) for n, group in shared.items() if any(status.get(p) != "opphoert" for p in group)
            for pid in group if status.get(pid) == "opphoert"]
    for k in range(0, len(drop), 500):
        conn.execute(delete(t).where(tuple_(t.c.number, t.c.person_id).in_(drop[k : k + 500])))
    return len(drop)


@contextmanager
def running(engine: Engine, upstream: Upstream, options: SyncOptions) -> Iterator[Syncer]:
    """The store's sync lock held and a :class:`Syncer` ready; both let go at the end."""
    with SyncLock(engine):
        syncer = Syncer(engine, upstream, options)
        try:
            yield syncer
        finally:
            syncer.close()
