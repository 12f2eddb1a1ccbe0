"""Prometheus metrics: one registry per process, summed across gunicorn's workers (docs/metrics.md).

What is counted. Every call on every face writes one audit record (server/access/audit.py), so the audit
writer is the one hook point: :class:`CallMetrics` is installed there as the audit observer and, per record,

- counts ``pregbridge_requests_total{face, operation, outcome}``;
- observes ``pregbridge_request_duration_seconds{face, operation}`` when the call's start is known (the
  HTTP application and the MLLP handler mark it with :func:`call_started`; the Filematch washers' own job
  events and the HTTP front's refusals have none);
- writes the request log line (logger ``pregbridge.request``, level INFO): face, operation, account,
  outcome, duration and request id, each through :func:`server.logsafe.loggable`.

``pregbridge_audit_queue_depth`` is each process's batched audit queue (summed over live processes), set
after every commit and every hundredth queued record. The store's own figures (persons, Filematch jobs and
records by status, the upstream sync's position and lag) are read from the store at scrape time, at most
once per ``cache_seconds`` per process (:class:`StoreFigures`), never a ``COUNT`` per scrape.

No patient data in a label. ``face`` is one of the faces' fixed names; ``operation`` is one of the
operations a face defines (:func:`known_operations`, read from each face's own tables), else ``other`` —
a refused call's operation is what the client sent (a SOAPAction, a path, an HL7 message type) and must
not become a label; ``outcome`` is a fault code, an HL7 acknowledgement code or an HTTP status phrase
written by pregbridge, kept only while it looks like one (:func:`outcome_label`), else ``other``. No
account label: a refused call's account is the name the client tried.

Multi-process mode. ``pregbridge serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a directory emptied at
start (:func:`prepare_multiprocess_dir`) before gunicorn forks, so every worker's values live in its own
memory-mapped files there and a scrape of any worker sums them all (prometheus_client's documented
multi-process mode); gunicorn's ``child_exit`` hook calls :func:`worker_died`. prometheus_client chooses
its value class when it is first imported, so this module imports it only inside functions.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from annotated_types import Ge, Interval

from server.logsafe import loggable

if TYPE_CHECKING:
    from server.access.audit import AuditRecord

__all__ = ["MULTIPROC_ENV", "CallMetrics", "MetricsSettings", "StoreFigures", "call_started", "current_request_id",
           "exposition",
           "install", "known_operations", "outcome_label", "prepare_multiprocess_dir",
           "single_process", "timed_handler", "upstream_observer", "worker_died"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Latency buckets, seconds: a PREG lookup takes about a millisecond, a Filematch upload can take many seconds."""

request_log = logging.getLogger("pregbridge.request")
_LINE = "request face=%s operation=%s account=%s outcome=%s duration_ms=%s request_id=%s"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]`` (docs/config.md)."""

    enabled: bool = True  # count calls and serve /metrics; false: /metrics answers 404
    # how long a process reuses the store's figures (persons, jobs, sync lag)
    cache_seconds: Annotated[float, Ge(0)] = 15.0
    hl7_host: str = "127.0.0.1"  # the address of `listen-hl7`'s HTTP /health and /metrics
    # their port; 0: none (`listen-hl7 --metrics-port` overrides)
    hl7_port: Annotated[int, Interval(ge=0, le=65535)] = 0


# -- the call in progress ----------------------------------------------------------------------------


class Call:
    """The call in progress in a context: when it started (``time.perf_counter()``) and its request id, which
    is drawn only when something asks for it (:attr:`request_id`: the request log line, an upstream call in
    read-through mode): a call nothing logs and that asks the register nothing draws none."""

    __slots__ = ("_drawn", "_request_id", "started")

    def __init__(self, started: float, request_id: str | None = None) -> None:
        self.started = started
        self._request_id = request_id
        self._drawn = False

    @property
    def request_id(self) -> str:
        rid = self._request_id
        if rid is None:
            rid = self._request_id = _new_id()
            self._drawn = True
        return rid

    def loggable_id(self) -> str:
        """The id as the log shows it: one drawn here as it is (:class:`_RequestIds`: never escaped or masked,
        tests/unit/test_request_ids.py), a caller's through :func:`server.logsafe.loggable`."""
        rid = self.request_id
        return rid if self._drawn else loggable(rid, 64)


_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("pregbridge_call", default=None)


class _RequestIds:
    """Request ids for calls that bring none (an HL7 message; the SOAP faces take the caller's X-Request-Id or
    draw their own, server/soap/middleware.py): 16 lowercase hex characters, a random prefix drawn once per
    process and a counter. An id only correlates a call's log line with its audit record and the upstream
    calls it caused (docs/metrics.md, docs/upstream.md), so it must be unique, not unguessable: a counter is
    unique within the process, the prefix (32 random bits, drawn again in a forked child and after 2**32
    ids) tells processes apart, and a draw costs a ``next`` and a format instead of ``secrets.token_hex`` and
    a check. The prefix ends in a letter, so no id holds a run of eleven decimal digits, which
    :func:`server.logsafe.loggable` would mask: the log shows every id as it is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = self._fresh()

    @staticmethod
    def _fresh() -> tuple[str, Iterator[int]]:
        while not (prefix := secrets.token_hex(4))[-1].isalpha():
            pass
        return prefix, itertools.count()

    def __call__(self) -> str:
        state = self._state  # the prefix and its counter, read as one
        n = next(state[1])  # atomic: itertools.count is one C call
        if n > 0xFFFFFFFF:  # 2**32 ids with this prefix: the next prefix (once per 4 billion calls)
            with self._lock:
                if self._state is state:
                    self._state = self._fresh()
            return self()
        return f"{state[0]}{n:08x}"

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._state = self._fresh()


_new_id = _RequestIds()
os.register_at_fork(after_in_child=_new_id.after_fork)  # a forked worker must not repeat its parent's ids


def call_started(request_id: str | None = None) -> contextvars.Token[Call | None]:
    """Mark the start of a call in this context (reset with the returned token when it ends); without a
    ``request_id`` the call gets one when something first asks for it (:attr:`Call.request_id`)."""
    return _CALL.set(Call(time.perf_counter(), request_id))


def current_request_id() -> str | None:
    """The id of the call in progress in this context (the one its request log line carries), if any."""
    current = _CALL.get()
    return current.request_id if current is not None else None


_BREAKER_VALUE = {"closed": 0.0, "half-open": 0.5, "open": 1.0}
_UPSTREAM_OPERATIONS = frozenset({"person_by_nin", "persons_by_nin", "search_persons"})


def upstream_observer() -> Callable[[str, str, str], None]:
    """The read-through source's ``on_call`` (upstream/readthrough.py): counts
    ``pregbridge_upstream_calls_total{operation, outcome}`` (operation one of the API calls a legacy request
    causes; outcome ``ok``, ``paused`` — refused at once while the breaker is open —, ``unavailable``,
    ``notfound`` … as :func:`outcome_label` keeps it) and sets ``pregbridge_upstream_breaker_open`` (0 closed,
    0.5 half-open, 1 open; the most open of the processes). Made once per process."""
    global _upstream
    if _upstream is not None:
        return _upstream
    from prometheus_client import Counter, Gauge

    _check_value_class()
    calls = Counter("pregbridge_upstream_calls", "Persontjenesten calls made for legacy requests (read-through "
                    "mode), by operation and outcome", ("operation", "outcome"))
    breaker = Gauge("pregbridge_upstream_breaker_open", "The read-through circuit breaker: 0 closed, 0.5 "
                    "half-open (one probe), 1 open (calls paused)", multiprocess_mode="max")

    def observe(operation: str, outcome: str, state: str) -> None:
        calls.labels(operation if operation in _UPSTREAM_OPERATIONS else "other", outcome_label(outcome)).inc()
        breaker.set(_BREAKER_VALUE.get(state, 1.0))

    _upstream = observe
    return observe


_upstream: Callable[[str, str, str], None] | None = None


def call_ended(token: contextvars.Token[Call | None]) -> None:
    _CALL.reset(token)


def timed_handler(handler: Callable[[bytes, Any], bytes]) -> Callable[[bytes, Any], bytes]:
    """An MLLP handler (server.hl7.listener.Handler) whose calls are marked as :func:`call_started` marks them
    (inlined: this runs once per message)."""
    set_call, reset, clock = _CALL.set, _CALL.reset, time.perf_counter

    def timed(frame: bytes, peer: Any) -> bytes:
        token = set_call(Call(clock()))
        try:
            return handler(frame, peer)
        finally:
            reset(token)
    return timed


# -- labels -----------------------------------------------------------------------------------------

_OPERATION_SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "soap-preg": (("server.soap.preg.face", "OPERATIONS"),),
    "soap-ar": (("server.soap.ar.face", "READ_OPERATIONS"), ("server.soap.ar.face", "WRITE_OPERATIONS")),
    "soap-flr": (("server.soap.flr.face", "OPERATIONS"), ("server.soap.flr.face", "NOT_OFFERED")),
    "soap-hpr": (("server.soap.hpr.face", "READ_OPERATIONS"),),
    "soap-krk": (("server.soap.krk.face", "OPERATIONS"),),
}
_FILEMATCH_OPERATIONS = frozenset(f"filematch.{op}" for op in ("submit", "wash", "fetch", "cancel", "delete", "status",
                                                                "report"))


def known_operations(face: str) -> frozenset[str]:
    """The operations ``face`` defines, read from its own tables (empty for a face without any, such as the
    HTTP front, whose every refusal counts as ``other``)."""
    import importlib

    if face == "hl7":
        from server.hl7.router import ROUTES

        return frozenset(r.operation for r in ROUTES)
    if face == "filematch":
        return _FILEMATCH_OPERATIONS
    names: set[str] = set()
    for module, attr in _OPERATION_SOURCES.get(face, ()):
        try:
            names.update(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):  # a face renamed its table: its calls count as `other`
            log.warning("metrics: the operations of %s are not known (%s.%s)", face, module, attr)
    return frozenset(names)


_OUTCOME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 :._-]{0,47}\Z")
_DIGITS = re.compile(r"\d{4}")
_FACE = re.compile(r"[a-z0-9][a-z0-9-]{0,19}\Z")


def outcome_label(outcome: str) -> str:
    """An outcome as a label: pregbridge's own codes and phrases (``ok``, ``Client``, ``AE:207``,
    ``408 header timeout``) as they are; anything else (a run of four digits or more, other characters,
    over 48 characters) ``other``."""
    return outcome if _OUTCOME.match(outcome) and not _DIGITS.search(outcome) else "other"


# -- the per-call observer ----------------------------------------------------------------------------


class CallMetrics:
    """The audit observer (module docstring): counters, latency, queue depth and the request log line."""

    def __init__(self, *, count: bool = True) -> None:
        self.count = count
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._operations: dict[str, frozenset[str]] = {}
        self._loggable: dict[tuple[str, str, str | None, str], tuple[str, str, str, str]] = {}
        self._lock = threading.Lock()
        if count:
            from prometheus_client import Counter, Gauge, Histogram

            _check_value_class()
            self.requests = Counter("pregbridge_requests", "Calls answered or refused, by face, operation and outcome",
                                    ("face", "operation", "outcome"))
            self.duration = Histogram("pregbridge_request_duration_seconds",
                                      "Time from a call's start to its audit record, by face and operation",
                                      ("face", "operation"), buckets=BUCKETS)
            self.queue = Gauge("pregbridge_audit_queue_depth", "Audit records queued, not yet committed",
                               multiprocess_mode="livesum")

    def _labels(self, face: str, operation: str, outcome: str) -> tuple[Any, Any]:
        key = (face, operation, outcome)
        found = self._children.get(key)
        if found is not None:
            return found
        with self._lock:
            known = self._operations.get(face)
            if known is None:
                known = self._operations[face] = known_operations(face)
            f = face if _FACE.match(face) else "other"
            op = operation if operation in known else "other"
            children = (self.requests.labels(f, op, outcome_label(outcome)), self.duration.labels(f, op))
            if len(self._children) < 4096:  # keys are few (faces × operations × outcomes); a bound all the same
                self._children[key] = children
            return children

    def call(self, record: AuditRecord) -> None:
        """One audited call (AuditWriter.write). Never raises: a metric must not fail a call."""
        try:
            logged = request_log.isEnabledFor(logging.INFO)
            if not (self.count or logged):  # metrics off and the request line off: nothing to measure
                return
            current = _CALL.get()
            seconds = time.perf_counter() - current.started if current is not None else None
            if self.count:
                counter, histogram = self._labels(record.face, record.operation, record.outcome)
                counter.inc()
                if seconds is not None:
                    histogram.observe(seconds)
            if logged:
                self._log(record, seconds, current.loggable_id() if current is not None else "-")
        except Exception as exc:  # noqa: BLE001 - the seam: counting must never fail the call it counts
            log.error("metrics: a call was not counted (%s)", type(exc).__name__)

    def _safe(self, record: AuditRecord) -> tuple[str, str, str, str]:
        """:func:`loggable` of a record's face, operation, account and outcome, remembered per combination (they
        repeat): escaping and masking cost more than the rest of the log line."""
        key = (record.face, record.operation, record.account, record.outcome)
        done = self._loggable.get(key)
        if done is None:
            done = (loggable(record.face, 20), loggable(record.operation, 80),
                    loggable(record.account, 100) if record.account else "-", loggable(record.outcome, 60))
            if len(self._loggable) >= 4096:  # a bound: many made-up operations or account names
                self._loggable.clear()
            self._loggable[key] = done
        return done

    def _log(self, record: AuditRecord, seconds: float | None, request_id: str) -> None:
        face, operation, account, outcome = self._safe(record)
        fields = {"face": face, "operation": operation, "account": account, "outcome": outcome,
                  "duration_ms": round(seconds * 1000, 2) if seconds is not None else None,
                  "request_id": request_id}
        duration = f"{fields['duration_ms']}" if seconds is not None else "-"
        # request_log.info(...) without logging's look up the stack for the caller (findCaller: a dozen calls
        # per line): the record names this module as its source, line 0 — no pregbridge format shows either
        line = request_log.makeRecord(request_log.name, logging.INFO, __file__, 0, _LINE,
                                      (face, operation, account, outcome, duration, request_id), None,
                                      "_log", fields)
        request_log.handle(line)

    def queue_depth(self, n: int) -> None:
        if self.count:
            try:
                self.queue.set(n)
            except Exception as exc:  # noqa: BLE001 - as in call()
                log.error("metrics: the audit queue depth was not set (%s)", type(exc).__name__)


def _check_value_class() -> None:
    """Make sure metrics made from now on use the multi-process values when ``PROMETHEUS_MULTIPROC_DIR`` is
    set (prometheus_client reads it once, at its first import, which may have come before the variable)."""
    from prometheus_client import values

    wanted = bool(os.environ.get(MULTIPROC_ENV))
    if wanted != bool(getattr(values.ValueClass, "_multiprocess", False)):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


_installed: CallMetrics | None = None


def install(settings: MetricsSettings) -> CallMetrics:
    """This process's call observer, installed on its audit writers (made once per process: the first call's
    settings win). With ``enabled = false`` nothing is counted, but the request log line is still written."""
    global _installed
    from server.access.audit import set_observer

    if _installed is None:
        _installed = CallMetrics(count=settings.enabled)
    set_observer(_installed)
    return _installed


# -- the store's figures ------------------------------------------------------------------------------


class StoreFigures:
    """The store's figures for /metrics and /health, read at most once per ``cache_seconds`` (per process)."""

    def __init__(self, read: Callable[[], dict[str, Any]], cache_seconds: float) -> None:
        self.read = read
        self.cache_seconds = cache_seconds
        self._at = -1e18
        self._value: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self.cache_seconds:
                self._value = self.read()  # may raise: the caller reports the store unavailable
                self._at = now
            return self._value


_JOB_STATUSES = ("receiving", "queued", "running", "done", "failed", "cancelled")  # store/schema.py filematch_job


class _StoreCollector:
    def __init__(self, figures: StoreFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        try:
            f = self.figures.get()
        except Exception as exc:  # noqa: BLE001 - a scrape reports the store as down, never fails
            log.warning("metrics: the store's figures are unavailable (%s)", type(exc).__name__)
            yield GaugeMetricFamily("pregbridge_store_up", "1 when the store answered the last read", value=0)
            return
        yield GaugeMetricFamily("pregbridge_store_up", "1 when the store answered the last read", value=1)
        yield GaugeMetricFamily("pregbridge_store_persons", "Persons in the store (PostgreSQL: the planner's "
                                "estimate once the table is analysed)", value=f["persons"])
        yield GaugeMetricFamily("pregbridge_feed_position", "The store's change feed position", value=f["position"])
        jobs = GaugeMetricFamily("pregbridge_filematch_jobs", "Filematch jobs kept, by status", labels=["status"])
        records = GaugeMetricFamily("pregbridge_filematch_records", "Records of the Filematch jobs kept, by status",
                                    labels=["status"])
        washed = GaugeMetricFamily("pregbridge_filematch_records_washed",
                                   "Records washed so far of the Filematch jobs kept, by status", labels=["status"])
        kept = {status: (0, 0, 0) for status in _JOB_STATUSES} | f["filematch"]
        for status, (n, total, done) in sorted(kept.items()):
            jobs.add_metric([status], n)
            records.add_metric([status], total)
            washed.add_metric([status], done)
        yield from (jobs, records, washed)
        sync = f.get("sync")
        if sync is not None:
            for name, key, text in (("position", "position", "Persontjenesten sequence number applied"),
                                    ("upstream_latest", "latest", "Persontjenesten's latest sequence number as "
                                                                  "last seen by the sync"),
                                    ("lag_events", "lag_events", "Events the sync is behind"),
                                    ("lag_seconds", "lag_seconds", "Seconds since the sync was last caught up "
                                                                   "(0 when caught up)"),
                                    ("running", "running", "1 when a syncer holds the store's sync lock"),
                                    ("staleness_seconds", "staleness_seconds", "Seconds since the sync last read "
                                     "the feed successfully (a page applied, or caught up)")):
                value = sync.get(key)
                if value is not None:
                    yield GaugeMetricFamily(f"pregbridge_sync_{name}", text, value=float(value))
            if sync.get("purged") is not None:
                yield CounterMetricFamily("pregbridge_retention_persons_purged", "Persons deleted by the "
                                          "read-through retention purge (store.retention)", value=sync["purged"])


def exposition(figures: StoreFigures | None, info: Mapping[str, str]) -> tuple[bytes, str]:
    """The text exposition of this process's metrics (all processes' in multi-process mode), the store's
    figures and ``pregbridge_info``; with its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily

    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    else:
        from prometheus_client import REGISTRY

        registry = CollectorRegistry()
        registry.register(_Forward(REGISTRY))

    class _Info:
        def collect(self) -> Iterable[Any]:
            g = GaugeMetricFamily("pregbridge_info", "pregbridge's version and store backend",
                                  labels=sorted(info))
            g.add_metric([info[k] for k in sorted(info)], 1)
            yield g

    registry.register(_Info())
    if figures is not None:
        registry.register(_StoreCollector(figures))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """The default registry's metrics (one process: the HL7 listener, tests) in a scrape's own registry."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Any]:
        return list(self.registry.collect())


# -- multi-process bookkeeping (gunicorn) ---------------------------------------------------------------


def prepare_multiprocess_dir(data_dir: Path | None = None) -> Path:
    """Point ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before gunicorn forks: the one it names
    already, emptied (prometheus_client's rule: wipe it between runs), else a new private temporary one
    (``data_dir`` is not used: two servers on one data directory must not share it)."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        if path.is_dir():
            for entry in path.iterdir():
                if entry.is_file() and entry.suffix == ".db":
                    entry.unlink()
        else:
            path.mkdir(mode=0o700, parents=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="pregbridge-metrics-"))
        os.environ[MULTIPROC_ENV] = str(path)
    return path


def remove_multiprocess_dir(path: Path) -> None:
    """Remove a directory :func:`prepare_multiprocess_dir` made (a temporary one) when the server stops."""
    if path.name.startswith("pregbridge-metrics-") and path.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(path, ignore_errors=True)


def single_process() -> None:
    """This process counts on its own (``listen-hl7``): forget a ``PROMETHEUS_MULTIPROC_DIR`` inherited from
    the environment, before any metric is made."""
    os.environ.pop(MULTIPROC_ENV, None)


def worker_died(server: object, worker: Any) -> None:
    """gunicorn's ``child_exit(server, worker)`` hook: drop the dead worker's live gauges."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, path)  # type: ignore[no-untyped-call]
