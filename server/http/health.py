"""``GET /health`` and ``GET /metrics``: is the store reachable, what is served, and the Prometheus metrics.

``/health`` answers JSON: ``status``, pregbridge's ``version``, the store ``backend`` (``sqlite`` or
``postgresql``), ``persons`` and ``feedPosition``, and ``faces``: each face this process serves with its
paths. Counts only (no patient data). It answers 503 with ``{"status": "unavailable"}`` when the database
is down, so a load balancer takes the process out of rotation. The store's figures are read at most once per
``[metrics] cache_seconds`` per process (:class:`server.metrics.StoreFigures`): a load balancer polling
``/health`` does not count a large person table each time; the feed position is read live, so a store gone
down answers 503 at once.

``/metrics`` is the Prometheus text exposition of server/metrics.py (404 when ``[metrics] enabled = false``).
The same application serves the HL7 listener's endpoint (``listen-hl7 --metrics-port``) with its own faces.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from server.metrics import MetricsSettings, StoreFigures, exposition
from store import schema as s
from store.engine import read_connection
from store.state import get_feed_position

__all__ = ["Endpoint", "health_app", "serve_endpoint", "store_reader", "version"]

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def version() -> str:
    """The installed pregbridge's version (its package metadata), ``unknown`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pregbridge")
    except PackageNotFoundError:
        return "unknown"


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _persons(conn: Any) -> int:
    """Persons in the store: on PostgreSQL the planner's estimate once the table has been analysed (a count
    of millions of rows takes seconds there), else a count."""
    if conn.dialect.name == "postgresql":
        estimate = conn.execute(text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass('person')")
                                ).scalar()
        if estimate is not None and estimate >= 0:
            return int(estimate)
    return int(conn.execute(select(func.count()).select_from(s.person)).scalar_one())


def store_reader(engine: Engine, sync_status: Callable[[], Mapping[str, Any] | None] | None = None
                 ) -> Callable[[], dict[str, Any]]:
    """The read behind :class:`server.metrics.StoreFigures`: persons, the feed position, the Filematch jobs
    kept by status (jobs, their records, records washed), and the sync's position and lag from
    ``sync_status`` (composed in server/bootstrap.py; None: no sync figures)."""
    job = s.filematch_job

    def read() -> dict[str, Any]:
        with read_connection(engine) as conn:
            persons = _persons(conn)
            position = get_feed_position(conn)
            rows = conn.execute(select(job.c.status, func.count(), func.coalesce(func.sum(job.c.records), 0),
                                       func.coalesce(func.sum(job.c.done_records), 0)).group_by(job.c.status)).all()
        figures: dict[str, Any] = {"persons": persons, "position": position,
                                   "filematch": {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}}
        if sync_status is not None:
            try:
                figures["sync"] = sync_status()
            except Exception as exc:  # noqa: BLE001 - the sync's figures are optional; the rest still answers
                log.warning("metrics: the sync's status is unavailable (%s)", type(exc).__name__)
        return figures

    return read


def health_app(engine: Engine, *, faces: Mapping[str, Iterable[str]] | None = None,
               metrics: MetricsSettings | None = None,
               sync_status: Callable[[], Mapping[str, Any] | None] | None = None) -> WsgiApp:
    """``/health`` and ``/metrics`` over ``engine``; ``faces`` maps each face served to its paths."""
    settings = metrics or MetricsSettings()
    figures = StoreFigures(store_reader(engine, sync_status), settings.cache_seconds)
    served = {name: sorted(set(paths)) for name, paths in (faces or {}).items()}
    info = {"version": version(), "backend": engine.dialect.name}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/health", "/", "/metrics") or (path == "/metrics" and not settings.enabled):
            return _json(start_response, "404 Not Found", {"error": "not found"})
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "method not allowed"})
        if path == "/metrics":
            data, content_type = exposition(figures, info)
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(data)))])
            return [data]
        try:
            with read_connection(engine) as conn:  # live: a store gone down shows at once
                position = get_feed_position(conn)
            f = figures.get()
        except SQLAlchemyError as exc:
            log.warning("health check: store unavailable (%s)", type(exc).__name__)
            return _json(start_response, "503 Service Unavailable", {"status": "unavailable", **info})
        return _json(start_response, "200 OK", {"status": "ok", **info, "persons": f["persons"],
                                                "feedPosition": position, "faces": served})

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - wsgiref's signature
        pass  # a scrape every few seconds is not worth a log line


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Endpoint:
    """``/health`` and ``/metrics`` of a process that serves no HTTP of its own (``pregbridge listen-hl7``):
    wsgiref in a daemon thread (:func:`serve_endpoint`)."""

    def __init__(self, server: WSGIServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, name="metrics-endpoint", daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_endpoint(app: WsgiApp, host: str, port: int) -> Endpoint:
    """Serve ``app`` on ``host:port`` in a thread (an OSError when the port is taken)."""
    return Endpoint(make_server(host, port, app, server_class=_Server, handler_class=_Quiet))
