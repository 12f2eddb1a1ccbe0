"""The audit trail: one record per call, who asked for whom, written without slowing the faces down.

Every face writes an :class:`AuditRecord` per lookup (who, when, face and operation, source address,
purpose if given, outcome, the numbers asked for and returned) through an :class:`AuditWriter`; the
``audit_event`` row keeps the record, and one ``audit_person`` row per distinct number (1–11
characters; longer input stays in the event's ``asked`` list only) indexes it for
``pregbridge audit --person``. The application never deletes audit rows.

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
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import queue
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, Row, insert, select
from sqlalchemy.exc import SQLAlchemyError

from store import schema as s
from store.engine import read_connection
from store.errors import StoreUnavailable

__all__ = ["AuditRecord", "AuditWriter", "close_all", "query_audit", "worker_exit"]

log = logging.getLogger(__name__)

_STOP = object()
_FLUSH = object()
_MAX_NUMBER = 11  # audit_person.number
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
    return None if value is None else value.replace("\x00", "")[:limit]


def _event_row(r: AuditRecord) -> dict[str, Any]:
    return {
        "at": _utc(r.at),
        **{k: _text(getattr(r, k), n) for k, n in _LIMITS.items()},
        "asked": [a.replace("\x00", "") for a in r.asked],
        "returned": [a.replace("\x00", "") for a in r.returned],
    }


def _person_rows(audit_id: int, r: AuditRecord) -> list[dict[str, Any]]:
    rows = []
    for role, numbers in (("asked", r.asked), ("returned", r.returned)):
        for n in dict.fromkeys(x.strip() for x in numbers):
            if 0 < len(n) <= _MAX_NUMBER and "\x00" not in n:
                rows.append({"audit_id": audit_id, "number": n, "role": role})
    return rows


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


_EVENT_COLUMNS = tuple(c.name for c in s.audit_event.c if c.name != "id")
_SQLITE_EVENT = (f"INSERT INTO audit_event (id, {', '.join(_EVENT_COLUMNS)}) "
                 f"VALUES (?, {', '.join('?' * len(_EVENT_COLUMNS))})")
_SQLITE_PERSON = "INSERT INTO audit_person (audit_id, number, role) VALUES (?, ?, ?)"
_SQLITE_PROCESSORS: dict[str, tuple[tuple[str, Any], ...]] = {}


def _insert_sqlite(engine: Engine, records: Sequence[AuditRecord]) -> None:
    """:func:`_insert` on SQLite, the same rows at a fraction of the cost: SQLAlchemy sends an INSERT …
    RETURNING one row at a time to keep the ids in order, ~30 µs a record, more than a PIX query costs.
    The transaction holds SQLite's write lock from its BEGIN IMMEDIATE (store/engine.py), so the ids after
    the largest one are free: given explicitly, both tables are one executemany each. Values go through
    the columns' own SQLAlchemy bind processors, so they are stored exactly as :func:`_insert` stores them."""
    dialect = engine.dialect
    processors = _SQLITE_PROCESSORS.get(dialect.name)
    if processors is None:
        processors = _SQLITE_PROCESSORS[dialect.name] = tuple(
            (name, s.audit_event.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in _EVENT_COLUMNS)
    with engine.begin() as conn:
        first = int(conn.exec_driver_sql("SELECT coalesce(max(id), 0) + 1 FROM audit_event").scalar_one())
        events: list[tuple[Any, ...]] = []
        persons: list[tuple[Any, ...]] = []
        for audit_id, r in enumerate(records, start=first):
            row = _event_row(r)
            events.append((audit_id, *(p(row[name]) if p else row[name] for name, p in processors)))
            persons.extend((audit_id, x["number"], x["role"]) for x in _person_rows(audit_id, r))
        conn.exec_driver_sql(_SQLITE_EVENT, events)
        if persons:
            conn.exec_driver_sql(_SQLITE_PERSON, persons)


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
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, max_queue))
        self._done = threading.Condition()
        self._submitted = 0
        self._written = 0
        self._closed = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if mode == "batched":
            self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
            self._thread.start()
            _register(self)

    @property
    def pending(self) -> int:
        """Records accepted but not yet committed."""
        with self._done:
            return self._submitted - self._written

    def write(self, record: AuditRecord) -> None:
        """Record one call: committed now (sync) or queued (batched; blocks while the queue is full)."""
        if not isinstance(record, AuditRecord):
            raise TypeError(f"expected an AuditRecord, not {type(record).__name__}")
        if self._closed:
            raise RuntimeError("audit writer is closed")
        if self._thread is None:
            try:
                _insert(self.engine, [record])
            except SQLAlchemyError as exc:
                log.error("audit record not written (%s)", type(exc).__name__)
                raise StoreUnavailable("the audit trail is unavailable") from None
            return
        with self._done:
            self._submitted += 1
        self._queue.put(record)
        if self._queue.qsize() == self.max_batch:  # a full batch waits no longer (edge: once per batch)
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record written before this call is committed; False if ``timeout`` passed first."""
        if self._thread is None:
            return True
        with self._done:
            target = self._submitted
            if self._written >= target:
                return True
        self._queue.put(_FLUSH)
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self._written >= target, timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush and stop the thread. Records still unwritten after ``timeout`` are reported in the log."""
        if self._closed:
            return
        self._closed = True
        _writers.discard(self)
        if self._thread is None:
            return
        self._queue.put(_STOP)
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
        stop = False
        while not stop:
            item: object | None = self._queue.get()
            batch: list[AuditRecord] = []
            deadline = time.monotonic() + self.max_delay
            while item is not None:
                if item is _STOP:
                    stop = True
                    break
                if item is _FLUSH:
                    break
                assert isinstance(item, AuditRecord)
                batch.append(item)
                if len(batch) >= self.max_batch:
                    break
                item = self._next(deadline)
            if batch:
                self._commit(batch)

    def _next(self, deadline: float) -> object | None:
        """The next queued item, or None at ``deadline``. The thread sleeps on ``_wake`` while a batch fills and
        then drains the queue: waiting on the queue itself would wake it (and hand it the GIL) once per record,
        which cost a busy HL7 listener more than the inserts (docs/hl7.md "Performance"). ``write`` wakes it
        when a batch is full, ``flush`` and ``close`` after queueing their marker."""
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._wake.wait(remaining)
            self._wake.clear()

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
    e, p = s.audit_event, s.audit_person
    q = select(e)
    if person is not None:
        q = q.where(e.c.id.in_(select(p.c.audit_id).where(p.c.number == person.strip())))
    if account is not None:
        q = q.where(e.c.account == account)
    if since is not None:
        q = q.where(e.c.at >= _utc(since))
    q = q.order_by(e.c.at.desc(), e.c.id.desc()).limit(max(0, limit))
    with read_connection(engine) as conn:
        return [_record(r) for r in conn.execute(q)]
