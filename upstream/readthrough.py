"""Read-through mode (issue 18): the :class:`store.source.PersonSource` that fetches the persons a site asks about.

In ``[upstream] mode = "read-through"`` the store holds only the persons this site has asked about; the
composition root (server/bootstrap.py ``person_source_of``) gives every face one :class:`ReadThrough` per
process, and each face calls it *before* it reads the store, then answers from the store exactly as a replica.

``ensure_numbers(numbers)`` — lookups by number:

1. Numbers that are not valid identity numbers are left alone (the face refuses or answers "not found" as a
   replica does; they are never sent upstream).
2. **Held** numbers (any identifier of a stored person, ceased and historic ones included: the
   ``person_identifier`` table) are *touched* (``store.retention.touch_asked``, which retention reads), but
   not on every lookup: a person is touched at most once per :data:`TOUCH_EVERY` (an hour) per process, and
   the touches are written in one batch when the oldest has waited :data:`TOUCH_FLUSH` seconds or
   :data:`TOUCH_BATCH` are pending (and on close). A number this process has seen held stays known for
   :data:`HELD_TTL` seconds, so a hot lookup costs no extra query; retention never deletes a person touched
   within ``retention_days`` (≥ 1 day), so the cache cannot outlive a held person.
3. **Missing** numbers are fetched: one with ``person/get-by-nin``, more with ``person/bulk-by-nin`` (≤ 100 a
   call, chunked), mapped with upstream.mapping as the sync maps (``upstream.sync.map_answers``), and stored
   through the sync's writer (``save_prepared``: the document and every derived table; ceased numbers
   settled; a person that breaks a rule to ``reject``), touched in the same short write transaction.
4. A number the register does not know (404, or absent from a bulk answer) is remembered as unknown for
   :data:`NEGATIVE_TTL` seconds (60: a number just issued upstream is found a minute later at the latest) and
   answered "not found" by the face, as a replica answers it.

**Deadline.** Every upstream call made for a legacy request ends within ``upstream.lookup_deadline`` (2 s),
retries included: the one client of the process runs it in :meth:`PersontjenestenClient.scoped`.

**Circuit breaker** (:class:`Breaker`). ``breaker_failures`` failed calls in a row (unavailable, timed out,
refused) open it: for ``breaker_pause`` seconds no call is made and a miss is answered at once with
:class:`~store.source.SourceUnavailable`; then one call (the probe) is let through — success closes it,
failure opens it again. Persons in the store are answered whatever its state.

**Single-flight.** Two requests (threads) missing the same number fetch it once per process: the first
registers a flight for it, the other waits for that flight (at most the deadline) and reads its outcome.
Storing a fetched person is one short write transaction per call; on SQLite (WAL) and PostgreSQL readers of
other persons never wait for it.

**Audit.** Each call carries the legacy call's request id as ``X-Request-Id`` and is logged with it (logger
``upstream.readthrough``: operation, how many numbers, outcome, request id — never a number), and counted by
``on_call(operation, outcome)`` (server/metrics.py: ``pregbridge_upstream_calls_total``).

:meth:`ReadThrough.ensure_search` (searches) has the same breaker, deadline, single-flight and touch; the
search itself is ``upstream.readthrough_search.search_into_store``.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from store import schema as s
from store.engine import read_connection, write_transaction
from store.errors import PregbridgeError
from store.feed import write_lock
from store.identity import is_valid
from store.retention import touch_asked
from store.search import SearchCriteria
from store.source import SourceUnavailable
from upstream.errors import UpstreamError
from upstream.settings import UpstreamSettings
from upstream.spec import BULK_MAX

__all__ = ["HELD_TTL", "NEGATIVE_TTL", "TOUCH_BATCH", "TOUCH_EVERY", "TOUCH_FLUSH", "Breaker", "ReadThrough"]

log = logging.getLogger("upstream.readthrough")

NEGATIVE_TTL = 60.0  # seconds a number the register does not know is answered "not found" without asking again
TOUCH_EVERY = 3600.0  # seconds between two touches of one person by one process
TOUCH_FLUSH = 5.0  # seconds a touch may wait to be written
TOUCH_BATCH = 500  # pending touches that are written at once
HELD_TTL = 600.0  # seconds a number seen held is known held without a query
_CACHE_MAX = 200_000  # numbers remembered (held or unknown); the caches are cleared when full
_ORIGIN, _FILE = "read-through", "person/bulk-by-nin"

CallObserver = Callable[[str, str, str], None]
"""``on_call(operation, outcome, breaker state)`` after each call (or refusal while the breaker is open)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Breaker:
    """closed → (``failures`` failures in a row) → open for ``pause`` s → half-open: one probe → closed / open."""

    def __init__(self, failures: int, pause: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.pause = pause
        self._clock = clock
        self._lock = threading.Lock()
        self._count = 0
        self._open_until: float | None = None
        self._probing = False
        self.opened = 0  # times it opened (for tests and logs)

    @property
    def state(self) -> str:
        with self._lock:
            if self._open_until is None:
                return "closed"
            return "half-open" if self._clock() >= self._open_until else "open"

    def allow(self) -> bool:
        """May a call be made now? In half-open state only the first caller (the probe) may."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._clock() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def success(self) -> None:
        with self._lock:
            if self._open_until is not None:
                log.info("read-through: Persontjenesten answers again; calls resume")
            self._count, self._open_until, self._probing = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self._count += 1
            if self._probing or (self._open_until is None and self._count >= self.failures):
                self._open_until = self._clock() + self.pause
                self.opened += 1
                log.warning("read-through: %d failed Persontjenesten call(s) in a row; calls paused for %g s",
                            self._count, self.pause)
            self._probing = False


@dataclass
class _Flight:
    """One fetch of some numbers in progress; ``failed`` holds those it could not resolve."""

    done: threading.Event = field(default_factory=threading.Event)
    failed: set[str] = field(default_factory=set)
    error: PregbridgeError | None = None  # a search's: what its followers raise too


class ReadThrough:
    """Persons missing from the store are fetched from Persontjenesten, stored, and answered from the store."""

    def __init__(self, engine: Engine, client: Any, settings: UpstreamSettings, parts: Sequence[str], *,
                 on_call: CallObserver | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.client = client  # upstream.client.PersontjenestenClient (the process's one pooled client)
        self.settings = settings
        self.parts = tuple(parts)
        self.on_call = on_call
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_pause, clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._searches: dict[SearchCriteria, _Flight] = {}
        self._held: dict[str, tuple[int, float]] = {}  # number → (person id, known held until)
        self._unknown: dict[str, float] = {}  # number → answered "not found" until
        self._touched: dict[int, float] = {}  # person id → when this process last touched it
        self._pending: set[int] = set()
        self._pending_since: float | None = None
        self._touch_lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    # -- PersonSource ---------------------------------------------------------------------------------

    def ensure_numbers(self, numbers: Sequence[str], *, request_id: str | None = None) -> None:
        now = self._clock()
        if len(numbers) == 1:  # the hot lookup: one number, held, touched within the hour — two dict reads
            h = self._held.get(numbers[0])
            if h is not None and h[1] > now and now - self._touched.get(h[0], -TOUCH_EVERY) < TOUCH_EVERY:
                return
        wanted = [n for n in dict.fromkeys(numbers) if n and len(n) == 11 and is_valid(n)]
        held_ids: list[int] = []
        unsure: list[str] = []
        for n in wanted:
            h = self._held.get(n)
            if h is not None and h[1] > now:
                held_ids.append(h[0])
            elif self._unknown.get(n, 0.0) <= now:
                unsure.append(n)
        if unsure:
            found = self._held_in_store(unsure, now)
            held_ids.extend(found.values())
            missing = [n for n in unsure if n not in found]
            if missing:
                self._fetch(missing, request_id or _new_id())
        self._touch(held_ids, now)

    def ensure_search(self, criteria: SearchCriteria, *, request_id: str | None = None) -> None:
        rid = request_id or _new_id()
        with self._lock:
            flight = self._searches.get(criteria)
            lead = flight is None
            if flight is None:
                flight = self._searches[criteria] = _Flight()
        if not lead:  # the same search is being asked: its answer is this one's
            if not flight.done.wait(self.settings.lookup_deadline + 1.0):
                raise SourceUnavailable()
            if flight.error is not None:
                raise flight.error
            return
        try:
            ids = self._search(criteria, rid)
        except BaseException as exc:
            flight.error = exc if isinstance(exc, PregbridgeError) else SourceUnavailable()
            raise
        finally:
            with self._lock:
                self._searches.pop(criteria, None)
            flight.done.set()
        if ids:
            self._write_touches(ids)
            now = self._clock()
            for pid in ids:
                self._touched[pid] = now

    def _search(self, criteria: SearchCriteria, rid: str) -> list[int]:
        from upstream.readthrough_search import search_into_store

        if not self.breaker.allow():
            self._observe("search_persons", "paused", rid, 0)
            raise SourceUnavailable()
        started = time.perf_counter()
        try:
            with self.client.scoped(deadline=self.settings.lookup_deadline, request_id=rid):
                ids: list[int] = search_into_store(self.client, self.engine, criteria, request_id=rid,
                                                   deadline=self.settings.lookup_deadline, parts=self.parts)
        except UpstreamError as exc:
            self.breaker.failure()
            self._observe("search_persons", _outcome(exc), rid, 0, started)
            raise SourceUnavailable() from None
        except PregbridgeError:  # TooManyHits, criteria refused: the register did answer
            self.breaker.success()
            self._observe("search_persons", "ok", rid, 0, started)
            raise
        self.breaker.success()
        self._observe("search_persons", "ok", rid, 0, started)
        return ids

    def close(self) -> None:
        self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.client.close()

    # -- held numbers -----------------------------------------------------------------------------------

    def _held_in_store(self, numbers: Sequence[str], now: float) -> dict[str, int]:
        t = s.person_identifier
        found: dict[str, int] = {}
        with read_connection(self.engine) as conn:
            for k in range(0, len(numbers), 500):
                found.update(conn.execute(select(t.c.number, t.c.person_id)
                                          .where(t.c.number.in_(numbers[k:k + 500]))).all())
            if conn.in_transaction():
                conn.rollback()
        if found:
            if len(self._held) > _CACHE_MAX:
                self._held.clear()
            until = now + HELD_TTL
            for n, pid in found.items():
                self._held[n] = (pid, until)
        return found

    # -- touches (coalesced) ----------------------------------------------------------------------------

    def _touch(self, person_ids: Iterable[int], now: float) -> None:
        due = [pid for pid in person_ids if now - self._touched.get(pid, -TOUCH_EVERY) >= TOUCH_EVERY]
        if not due:
            return
        flush = timer = False
        with self._touch_lock:
            for pid in due:
                self._touched[pid] = now
                self._pending.add(pid)
            if self._pending_since is None:
                self._pending_since = now
                timer = True
            flush = len(self._pending) >= TOUCH_BATCH or now - self._pending_since >= TOUCH_FLUSH
        if flush:
            self.flush()
        elif timer:  # written within TOUCH_FLUSH even if no lookup follows
            t = threading.Timer(TOUCH_FLUSH, self.flush)
            t.daemon = True
            t.start()

    def flush(self) -> None:
        """Write the pending touches (one short transaction)."""
        with self._touch_lock:
            pending, self._pending, self._pending_since = self._pending, set(), None
            if len(self._touched) > _CACHE_MAX:
                self._touched.clear()
        if pending:
            try:
                self._write_touches(pending)
            except Exception as exc:  # noqa: BLE001 - a touch must not fail a lookup; retried at the next flush
                log.warning("read-through: touches not written (%s); kept for the next flush", type(exc).__name__)
                with self._touch_lock:
                    self._pending |= pending
                    self._pending_since = self._pending_since or self._clock()

    def _write_touches(self, person_ids: Iterable[int]) -> None:
        """Touch the persons still in the store, under the write lock the retention purge takes, so a person the
        purge deleted meanwhile is neither an error (a foreign key) nor remembered as held."""
        ids = set(person_ids)
        with write_transaction(self.engine) as conn:
            write_lock(conn)
            kept = set(conn.execute(select(s.person.c.id).where(s.person.c.id.in_(ids))).scalars())
            touch_asked(conn, kept, _now())
        gone = ids - kept
        if gone:
            with self._lock:
                for n in [n for n, (pid, _) in self._held.items() if pid in gone]:
                    self._held.pop(n, None)

    # -- fetching (single-flight) -----------------------------------------------------------------------

    def _fetch(self, numbers: list[str], request_id: str) -> None:
        mine = _Flight()
        waits: list[tuple[str, _Flight]] = []
        lead: list[str] = []
        with self._lock:
            for n in numbers:
                flight = self._flights.get(n)
                if flight is None:
                    self._flights[n] = mine
                    lead.append(n)
                else:
                    waits.append((n, flight))
        failed: set[str] = set()
        if lead:
            try:
                failed = self._fetch_lead(lead, request_id)
            except BaseException:
                failed = set(lead)
                raise
            finally:
                mine.failed = set(failed)
                with self._lock:
                    for n in lead:
                        self._flights.pop(n, None)
                mine.done.set()
        limit = self.settings.lookup_deadline + 1.0
        for n, flight in waits:
            if not flight.done.wait(limit) or n in flight.failed:
                failed.add(n)
        if failed:
            raise SourceUnavailable()

    def _fetch_lead(self, numbers: list[str], request_id: str) -> set[str]:
        """Fetch and store ``numbers``; returns those that could not be resolved (the call failed). A batch of
        more than 100 (a Filematch chunk) is asked in calls of ≤ 100, up to ``upstream.parallelism`` in flight;
        each answer is stored as it comes (one short write transaction each)."""
        chunks = [numbers[k:k + BULK_MAX] for k in range(0, len(numbers), BULK_MAX)]
        failed: set[str] = set()
        if len(chunks) == 1 or self.settings.parallelism == 1:
            answers: Iterable[tuple[list[str], list[dict[str, Any]] | None]] = (
                (c, self._ask(c, request_id)) for c in chunks)
        else:
            pool = self._pool()
            answers = (f.result() for f in [pool.submit(lambda c: (c, self._ask(c, request_id)), c) for c in chunks])
        for chunk, persons in answers:
            if persons is None:
                failed.update(chunk)
            else:
                self._store(chunk, persons)
        return failed

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.settings.parallelism, thread_name_prefix="read-through")
            return self._executor

    def _ask(self, chunk: list[str], request_id: str) -> list[dict[str, Any]] | None:
        """One call for ``chunk`` (get-by-nin for one number, bulk-by-nin for more): the persons, or None when
        the call failed or the breaker is open."""
        op = "person_by_nin" if len(chunk) == 1 else "persons_by_nin"
        if not self.breaker.allow():
            self._observe(op, "paused", request_id, len(chunk))
            return None
        started = time.perf_counter()
        try:
            with self.client.scoped(deadline=self.settings.lookup_deadline, request_id=request_id):
                if len(chunk) == 1:
                    one = self.client.person_by_nin(chunk[0], self.parts, self.settings.include_history)
                    persons: list[dict[str, Any]] = [one] if one is not None else []
                else:
                    persons = self.client.persons_by_nin(chunk, self.parts, self.settings.include_history)
        except UpstreamError as exc:
            self.breaker.failure()
            self._observe(op, _outcome(exc), request_id, len(chunk), started)
            return None
        self.breaker.success()
        self._observe(op, "ok", request_id, len(chunk), started)
        return persons

    def _store(self, asked: list[str], persons: list[dict[str, Any]]) -> None:
        """Map and store the answer's persons, touched, in one short write transaction; the numbers asked for
        that no stored person holds are remembered as unknown."""
        from upstream.readthrough_search import write_answers

        found: dict[str, int] = {}
        now = self._clock()
        if persons:
            with write_transaction(self.engine) as conn:
                write_lock(conn)
                ids, _ = write_answers(conn, persons, operation=_FILE)
                t = s.person_identifier
                found = dict(conn.execute(select(t.c.number, t.c.person_id).where(t.c.number.in_(asked))).all())
                touch_asked(conn, set(ids) | set(found.values()), _now())
        with self._lock:
            if len(self._unknown) > _CACHE_MAX:
                self._unknown.clear()
            for n in asked:
                if n in found:
                    self._unknown.pop(n, None)
                    self._held[n] = (found[n], now + HELD_TTL)
                else:
                    self._unknown[n] = now + NEGATIVE_TTL
        for pid in found.values():
            self._touched[pid] = now

    # -- audit and metrics ------------------------------------------------------------------------------

    def _observe(self, op: str, outcome: str, request_id: str, keys: int, started: float | None = None) -> None:
        took = f" in {1000 * (time.perf_counter() - started):.0f} ms" if started is not None else ""
        level = logging.INFO if outcome == "ok" else logging.WARNING
        if log.isEnabledFor(level):
            log.log(level, "read-through %s of %d number(s): %s%s request_id=%s", op, keys, outcome, took,
                    request_id[:64])
        if self.on_call is not None:
            try:
                self.on_call(op, outcome, self.breaker.state)
            except Exception:  # noqa: BLE001 - a metric must not fail a lookup
                pass


def _outcome(exc: UpstreamError) -> str:
    """A bounded label for a failed call: the error's class (unavailable, auth, config, problem, …)."""
    name = type(exc).__name__.removeprefix("Upstream").lower()
    return name or "error"


def _new_id() -> str:
    return secrets.token_hex(8)
