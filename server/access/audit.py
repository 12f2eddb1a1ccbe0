"""The audit trail: one record per call, who asked for whom, written without slowing the faces down.

Every face writes an :class:`AuditRecord` per lookup (who, when, face and operation, source address,
purpose if given, outcome, the numbers asked for and returned) through an :class:`AuditWriter`; the
``audit_event`` row keeps the record, and one ``audit_person`` row per distinct number (1–11
characters once NULs and surrounding spaces are removed; longer input stays in the event's ``asked``
list only) indexes it for ``pregbridge audit --person``. The application never deletes audit rows.

On SQLite the ``audit_person`` rows are written in bulk, a generation of 10,000 events at a time,
derived from the events inside SQLite; until then :func:`query_audit` searches the events' lists
(store/audit_index.py: why, and how nothing can be lost). PostgreSQL writes them with each batch.

Modes.

- ``sync``: :meth:`AuditWriter.write` commits before it returns, and raises
  :class:`store.errors.StoreUnavailable` if it cannot: the call can then be refused, so no answer is
  ever given without its audit record. One transaction (a commit, an fsync on PostgreSQL) per call.
- ``batched`` (default): ``write`` puts the record on a bounded in-memory queue and returns; a
  background thread commits batches of up to ``max_batch`` records in one transaction each, waiting at
  most ``max_delay`` for a batch to fill. A full queue blocks the caller (back-pressure) rather than
  dropping. A failed batch is retried with backoff for as long as the process lives, logging the error
  type only (never patient data); after a second failure the batch is split so that one bad record
  cannot hold the others back. :meth:`flush` waits for everything written so far; :meth:`close`
  flushes and stops, and :func:`close_all` / :func:`worker_exit` (for gunicorn's ``worker_exit`` hook;
  also registered with :mod:`atexit`) close every writer of the process.

Durability of ``batched``. A clean exit (SIGTERM to a gunicorn worker, interpreter exit) loses
nothing. ``kill -9`` or a power cut loses the records not yet committed: normally those of the last
``max_delay`` (50 ms) plus the batch being committed; more only while the database is down or slower
than the arrival rate (the queue then holds up to ``max_queue`` records, and callers block when it is
full). The trade-off is throughput: a commit per call costs one synchronous write each, a batch one per
hundreds of calls. Measured on the project's 2-core machine, 20,000 records of one asked and one
returned number each: SQLite sync 1,500–1,800 records/s, batched 15,000–27,000 (``write`` itself
170,000+/s); PostgreSQL sync 250–1,000 records/s, batched 4,000–7,000. Sites that must never answer
without a durable record choose ``sync``.

Writers hold a thread: build them after the fork, one per process.

Observing. Every face writes its records here, so this is where calls are counted and logged: the process's
:class:`AuditObserver` (:func:`set_observer`; server/metrics.py installs one) is told of every record written
(``call``) and of the queue's depth (``queue_depth``: after each commit and every hundredth queued record).
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import json
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson
from sqlalchemy import Engine, Integer, Row, column, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from store import schema as s
from store.audit_index import (
    MAX_NUMBER,
    generation_of,
    has_json1,
    index_events,
    indexed_upto,
    newest_event,
    person_events_sql,
    set_indexed_upto,
)
from store.engine import read_connection
from store.errors import StoreUnavailable

__all__ = ["AuditObserver", "AuditRecord", "AuditWriter", "close_all", "index_persons", "query_audit", "set_observer",
           "worker_exit"]

log = logging.getLogger(__name__)

_LIMITS = {"account": 100, "face": 20, "operation": 80, "source": 100, "purpose": 200, "outcome": 60}


def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited call. ``at`` is UTC (naive, or aware and converted); numbers are identity numbers as asked
    for and as returned."""

    at: dt.datetime
    account: str | None
    face: str
    operation: str
    source: str | None
    purpose: str | None
    outcome: str
    asked: tuple[str, ...] = ()
    returned: tuple[str, ...] = ()

    @classmethod
    def now(cls, *, account: str | None, face: str, operation: str, outcome: str, source: str | None = None,
            purpose: str | None = None, asked: Sequence[str] = (), returned: Sequence[str] = ()) -> AuditRecord:
        return cls(dt.datetime.now(dt.UTC).replace(tzinfo=None), account, face, operation, source, purpose,
                   outcome, tuple(asked), tuple(returned))


def _text(value: str | None, limit: int) -> str | None:
    # NUL is refused by PostgreSQL; over-long values would fail the whole batch: clean both here.
    if value is None or (len(value) <= limit and "\x00" not in value):
        return value
    return value.replace("\x00", "")[:limit]


_EVENT_COLUMNS = ("at", "account", "face", "operation", "source", "purpose", "outcome", "asked", "returned")
assert tuple(_LIMITS) == _EVENT_COLUMNS[1:7], "_LIMITS must list the text columns in _EVENT_COLUMNS order"
assert set(_EVENT_COLUMNS) | {"id"} == set(s.audit_event.c.keys()), "audit_event changed: update _event_values"


def _event_values(r: AuditRecord) -> tuple[Any, ...]:
    """The ``audit_event`` values of a record in :data:`_EVENT_COLUMNS` order, cleaned to fit: UTC time,
    texts without NULs and within their column, the number lists without NULs."""
    return (_utc(r.at), *(_text(getattr(r, k), n) for k, n in _LIMITS.items()),
            [a.replace("\x00", "") for a in r.asked], [a.replace("\x00", "") for a in r.returned])


def _event_row(r: AuditRecord) -> dict[str, Any]:
    return dict(zip(_EVENT_COLUMNS, _event_values(r), strict=True))


def _person_numbers(r: AuditRecord) -> list[tuple[str, str]]:
    """(number, role) for each distinct number asked for and returned that fits ``audit_person.number``: the
    number as the event's list keeps it (NULs removed), without surrounding spaces, as store/audit_index.py
    derives them on SQLite."""
    out = []
    for role, numbers in (("asked", r.asked), ("returned", r.returned)):
        for n in dict.fromkeys(x.replace("\x00", "").strip(" ") for x in numbers):
            if 0 < len(n) <= MAX_NUMBER:
                out.append((n, role))
    return out


def _person_rows(audit_id: int, r: AuditRecord) -> list[dict[str, Any]]:
    gen = generation_of(audit_id)
    return [{"audit_id": audit_id, "number": n, "role": role, "gen": gen} for n, role in _person_numbers(r)]


def _insert(engine: Engine, records: Sequence[AuditRecord]) -> None:
    """One transaction: the event rows (one multi-row INSERT … RETURNING id, ids in parameter order; on
    SQLite :func:`_insert_sqlite`), then their person rows."""
    if engine.dialect.name == "sqlite":
        _insert_sqlite(engine, records)
    else:
        _insert_returning(engine, records)


def _insert_returning(engine: Engine, records: Sequence[AuditRecord]) -> None:
    e = s.audit_event
    with engine.begin() as conn:
        ids = conn.execute(insert(e).returning(e.c.id, sort_by_parameter_order=True),
                           [_event_row(r) for r in records]).scalars().all()
        persons = [row for audit_id, r in zip(ids, records, strict=True) for row in _person_rows(audit_id, r)]
        if persons:
            conn.execute(insert(s.audit_person), persons)


_EV, _AP = s.audit_event, s.audit_person  # names for the driver-level SQL below, through store.schema
_SQLITE_EVENT = (f"INSERT INTO {_EV.name} ({_EV.c.id.name}, {', '.join(_EVENT_COLUMNS)}) "
                 f"VALUES (?, {', '.join('?' * len(_EVENT_COLUMNS))})")
# The same rows from one JSON array parameter (SQLite's JSON1, built in since 3.38 and in most builds long
# before): one statement per batch, so the GIL is released once, not once per row (see _insert_sqlite).
_SQLITE_EVENT_JSON = (f"INSERT INTO {_EV.name} ({_EV.c.id.name}, {', '.join(_EVENT_COLUMNS)}) SELECT ? + key, "
                      + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(_EVENT_COLUMNS)))
                      + " FROM json_each(?)")
_SQLITE_PERSON = (f"INSERT INTO {_AP.name} ({_AP.c.audit_id.name}, {_AP.c.number.name}, {_AP.c.role.name}, "
                  f"{_AP.c.gen.name}) VALUES (?, ?, ?, ?)")


def _insert_sqlite(engine: Engine, records: Sequence[AuditRecord]) -> None:
    """:func:`_insert` on SQLite, the same rows at a fraction of the cost: SQLAlchemy sends an INSERT …
    RETURNING one row at a time to keep the ids in order, ~30 µs a record, more than a PIX query costs.
    The transaction holds SQLite's write lock from its BEGIN IMMEDIATE (store/engine.py), so the ids after
    the largest one are free: given explicitly, the batch is one statement. Person rows follow in bulk,
    a generation of events at a time (store/audit_index.py). Values are stored exactly as :func:`_insert_returning`
    stores them (tests/integration/test_audit_sqlite_insert.py): the timestamp through the column's own
    SQLAlchemy bind processor, the number lists as its JSON serialiser writes them (:func:`_json_list`).

    One statement, not an ``executemany``: pysqlite releases the GIL around every row's ``sqlite3_step``
    and takes it back after, and with a busy event loop in the same process each of those is a GIL
    hand-over. The rows travel as one JSON array (orjson) that ``json_each`` unpacks inside SQLite; where
    SQLite lacks JSON1, ``executemany`` and person rows at once."""
    at_of = _at_processor(engine.dialect)
    events = []
    for r in records:
        at, *texts, asked, returned = _event_values(r)
        events.append((at_of(at), *texts, _json_list(asked), _json_list(returned)))
    with engine.begin() as conn:
        first = newest_event(conn) + 1
        last = first + len(events) - 1
        if has_json1(conn):
            conn.exec_driver_sql(_SQLITE_EVENT_JSON, (first, orjson.dumps(events).decode()))
            index_events(conn, last, limit=2)  # the generations now complete (a catch-up: two per batch)
        else:
            conn.exec_driver_sql(_SQLITE_EVENT, [(first + i, *row) for i, row in enumerate(events)])
            persons = [(audit_id, n, role, generation_of(audit_id)) for audit_id, r in enumerate(records, start=first)
                       for n, role in _person_numbers(r)]
            if persons:
                conn.exec_driver_sql(_SQLITE_PERSON, persons)
            set_indexed_upto(conn, last)


def index_persons(engine: Engine) -> int:
    """Write the ``audit_person`` rows of every event past the watermark now (SQLite; elsewhere, and where they
    are written with each batch, there is nothing to do). Returns the number of events indexed."""
    if engine.dialect.name != "sqlite":
        return 0
    with engine.begin() as conn:
        if not has_json1(conn):
            return 0
        return index_events(conn, newest_event(conn), whole=False)


def _at_processor(dialect: Any) -> Any:
    """``audit_event.at``'s SQLAlchemy bind processor on ``dialect`` (what _insert_returning's rows go through);
    looked up once per batch."""
    processor = s.audit_event.c.at.type.dialect_impl(dialect).bind_processor(dialect)
    return processor or (lambda value: value)


def _json_list(values: Sequence[str]) -> str:
    """``json.dumps`` of the values without NULs (what SQLAlchemy's JSON serialiser on SQLite stores of
    :func:`_event_values`' lists); identity numbers (ASCII letters and digits) are joined directly."""
    if not values:
        return "[]"
    if all(v.isascii() and v.isalnum() for v in values):
        return '["' + '", "'.join(values) + '"]'
    return json.dumps([v.replace("\x00", "") for v in values])


class AuditObserver(Protocol):
    """Told of every audited call of the process (module docstring); must not raise."""

    def call(self, record: AuditRecord) -> None: ...

    def queue_depth(self, n: int) -> None: ...


_observer: AuditObserver | None = None


def set_observer(observer: AuditObserver | None) -> None:
    """The process's observer of audited calls (None: none)."""
    global _observer
    _observer = observer


_writers: weakref.WeakSet[AuditWriter] = weakref.WeakSet()
_atexit_registered = False


def close_all(timeout: float | None = 30.0) -> None:
    """Flush and stop every writer of this process (gunicorn worker exit, interpreter exit)."""
    for writer in list(_writers):
        writer.close(timeout)


def worker_exit(server: object, worker: object) -> None:
    """gunicorn's ``worker_exit(server, worker)`` hook: close this worker's audit writers."""
    close_all()


class AuditWriter:
    """Writes audit records, synchronously or in batches from a background thread (see the module docstring)."""

    def __init__(self, engine: Engine, *, mode: Literal["sync", "batched"] | str = "batched", max_batch: int = 500,
                 max_delay: float = 0.05, max_queue: int = 100_000, max_retry_delay: float = 5.0) -> None:
        if mode not in ("sync", "batched"):
            raise ValueError(f"audit mode must be sync or batched, not {mode!r}")
        self.engine = engine
        self.mode = mode
        self.max_batch = max(1, max_batch)
        self.max_delay = max_delay
        self.max_retry_delay = max_retry_delay
        self.max_queue = max(1, max_queue)
        self._items: collections.deque[AuditRecord] = collections.deque()
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)  # notified after each commit
        self._submitted = 0
        self._written = 0
        self._waiting = 0  # callers in flush/close or blocked on a full queue: commit without delay
        self._closed = False
        self._stopping = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if mode == "batched":
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()
            _register(self)

    @property
    def pending(self) -> int:
        """Records accepted but not yet committed."""
        with self._lock:
            return self._submitted - self._written

    def write(self, record: AuditRecord) -> None:
        """Record one call: committed now (sync) or queued (batched; blocks while the queue is full)."""
        if not isinstance(record, AuditRecord):
            raise TypeError(f"expected an AuditRecord, not {type(record).__name__}")
        observer = _observer
        if observer is not None:
            observer.call(record)
        if self._closed:
            raise RuntimeError("audit writer is closed")
        if self._thread is None:
            try:
                _insert(self.engine, [record])
            except SQLAlchemyError as exc:
                log.error("audit record not written (%s)", type(exc).__name__)
                raise StoreUnavailable("the audit trail is unavailable") from None
            return
        items = self._items
        if len(items) >= self.max_queue:
            self._wait_for_room()
        with self._lock:  # close() sets _closed under this lock: a record is either queued before it or refused
            if self._closed:
                raise RuntimeError("audit writer is closed")
            self._submitted += 1
            items.append(record)
            n = len(items)
        if n == 1 or n == self.max_batch:  # the first record of a batch, or a full one (see _run)
            self._wake.set()
        if n % 100 == 0 and observer is not None:
            observer.queue_depth(n)

    def _wait_for_room(self) -> None:
        with self._done:
            self._waiting += 1
            self._wake.set()
            try:
                self._done.wait_for(lambda: len(self._items) < self.max_queue or self._stopping)
            finally:
                self._waiting -= 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record written before this call is committed; False if ``timeout`` passed first."""
        if self._thread is None:
            return True
        with self._done:
            target = self._submitted
            if self._written >= target:
                return True
            self._waiting += 1
            self._wake.set()
            try:
                return self._done.wait_for(lambda: self._written >= target, timeout)
            finally:
                self._waiting -= 1

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush and stop the thread. Records still unwritten after ``timeout`` are reported in the log."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _writers.discard(self)
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("audit writer stopped with %d record(s) not written", self.pending)

    def __enter__(self) -> AuditWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread --------------------------------------------------------------------------

    def _run(self) -> None:
        """Commit batches until closed. The thread sleeps on ``_wake`` while a batch fills (up to ``max_delay``
        after its first record) and then takes the whole batch: waking it per record (as a queue.Queue get
        does) handed it the GIL once per record, which cost a busy HL7 listener more than the inserts
        (docs/hl7.md "Performance"). ``write`` wakes it for the first record and for a full batch; ``flush``,
        ``close`` and a writer blocked on a full queue make it commit at once."""
        items = self._items
        while True:
            if not items:
                if not self._stopping:
                    self._wake.wait()
                elif not items:  # read after _stopping: every record queued before close() is in items
                    return
            self._wake.clear()
            deadline = time.monotonic() + self.max_delay
            while len(items) < self.max_batch and not (self._waiting or self._stopping):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
                self._wake.clear()
            batch = [items.popleft() for _ in range(min(len(items), self.max_batch))]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[AuditRecord]) -> None:
        pending, attempt, delay = batch, 0, 0.05
        while pending:
            try:
                _insert(self.engine, pending)
                self._mark(len(pending))
                return
            except Exception as exc:  # noqa: BLE001 - the seam: nothing may kill the writer thread
                attempt += 1
                log.error("audit batch of %d record(s) not written (%s, attempt %d); retrying",
                          len(pending), type(exc).__name__, attempt)
            if attempt >= 2 and len(pending) > 1:
                pending = [r for r in pending if not self._commit_one(r)]
            if pending:
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, self.max_retry_delay)

    def _commit_one(self, record: AuditRecord) -> bool:
        try:
            _insert(self.engine, [record])
        except Exception:  # noqa: BLE001
            return False
        self._mark(1)
        return True

    def _mark(self, n: int) -> None:
        with self._done:
            self._written += n
            self._done.notify_all()
        observer = _observer
        if observer is not None:
            observer.queue_depth(len(self._items))


def _register(writer: AuditWriter) -> None:
    global _atexit_registered
    _writers.add(writer)
    if not _atexit_registered:
        atexit.register(close_all)
        _atexit_registered = True


def _record(r: Row[Any]) -> AuditRecord:
    return AuditRecord(r.at, r.account, r.face, r.operation, r.source, r.purpose, r.outcome,
                       tuple(r.asked or ()), tuple(r.returned or ()))


def query_audit(engine: Engine, *, person: str | None = None, account: str | None = None,
                since: dt.datetime | None = None, limit: int = 100) -> list[AuditRecord]:
    """Audit records, newest first: those naming ``person`` (asked or returned), of ``account``, at or
    after ``since`` (UTC), at most ``limit``."""
    e = s.audit_event
    q = select(e)
    with read_connection(engine) as conn:
        if person is not None:
            number = person.strip()
            tail = engine.dialect.name == "sqlite" and 0 < len(number) <= MAX_NUMBER and has_json1(conn)
            top = generation_of(max(1, newest_event(conn)))
            params: dict[str, Any] = {"number": number}
            if engine.dialect.name == "postgresql":
                params["gens"] = list(range(top + 1))
            else:
                params["top"] = top
            if tail:
                params["mark"] = indexed_upto(conn)
            ids = text(person_events_sql(engine.dialect.name, tail=tail)).bindparams(**params)
            q = q.where(e.c.id.in_(ids.columns(column("audit_id", Integer))))
        if account is not None:
            q = q.where(e.c.account == account)
        if since is not None:
            q = q.where(e.c.at >= _utc(since))
        q = q.order_by(e.c.at.desc(), e.c.id.desc()).limit(max(0, limit))
        return [_record(r) for r in conn.execute(q)]
