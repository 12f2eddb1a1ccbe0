"""Serving the WSGI application with gunicorn's pre-forked worker processes.

Pre-forked processes, not threads: spyne and lxml are CPU-bound under the GIL, and threads measured
2–4× slower than processes on this kind of machine.
The application (and its database engine) is built in each worker after the fork.
"""

from __future__ import annotations

import gc
from typing import Any

from gunicorn.app.base import BaseApplication

from server.access import worker_exit
from server.bootstrap import WsgiApp, build_engine, build_wsgi_app
from server.config import Settings
from server.metrics import prepare_multiprocess_dir, remove_multiprocess_dir, worker_died

__all__ = ["GUNICORN_OPTIONS", "serve"]

# One request at a time per pre-forked process (threads lose to processes under the GIL), read whole by the
# front before the app runs (server/front: slow clients hold a socket, not the process). keep_alive is
# the front's http.keep_alive; gunicorn's own keepalive setting is unused by this worker class.
GUNICORN_OPTIONS: dict[str, str | int] = {"worker_class": "server.front.worker.FrontWorker", "threads": 1,
                                          "keep_alive": 75}


def _worker_exit(server: object, worker: object) -> None:
    """gunicorn's worker exit: stop the Filematch washer threads (a chunk in hand is committed), then flush
    the worker's batched audit records (the washers' last audit events included)."""
    from server.http.filematch import stop_all

    stop_all()
    worker_exit(server, worker)


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        http = self.settings.http
        options: dict[str, Any] = {
            "bind": f"{http.host}:{http.port}",
            "workers": http.workers,
            "worker_class": GUNICORN_OPTIONS["worker_class"],
            "threads": GUNICORN_OPTIONS["threads"],
            "keepalive": GUNICORN_OPTIONS["keep_alive"],
            "timeout": http.timeout,  # a worker busy with one request longer than this is killed and replaced
            "graceful_timeout": http.graceful_timeout,
            "max_requests": http.max_requests,
            "max_requests_jitter": http.max_requests_jitter,
            "accesslog": None,  # access logs would carry query strings; the audit trail records calls
            "preload_app": False,
            "worker_exit": _worker_exit,
            "child_exit": worker_died,  # the dead worker's live gauges leave /metrics (server/metrics.py)
            "logger_class": "server.logs.GunicornLogger",  # gunicorn's lines in the [log] format (server/logs.py)
        }
        if http.tls_cert and http.tls_key:
            options.update(certfile=str(http.tls_cert), keyfile=str(http.tls_key))
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        app = build_wsgi_app(self.settings)
        # Everything built so far (spyne's models, the compiled schemas, SQLAlchemy's metadata) lives as long
        # as the worker: move it out of the collector's generations, so that the full collections that many
        # small per-request allocations trigger do not rescan it on every request.
        gc.freeze()
        return app


def serve(settings: Settings) -> None:
    """Migrate the store once, then serve until stopped (SIGINT/SIGTERM). The workers share one emptied
    metrics directory (prometheus_client's multi-process mode, server/metrics.py), set before they fork."""
    metrics_dir = prepare_multiprocess_dir() if settings.metrics.enabled else None
    build_engine(settings).dispose()
    try:
        _Application(settings).run()
    finally:
        if metrics_dir is not None:
            remove_multiprocess_dir(metrics_dir)
