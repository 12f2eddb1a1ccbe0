"""``GET /health``: is the store reachable, how many persons, where is the change feed.

Counts only (no patient data). Answers 503 with ``{"status": "unavailable"}`` when the database is
down, so a load balancer takes the process out of rotation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from store import schema as s
from store.engine import read_connection
from store.state import get_feed_position

__all__ = ["health_app"]

log = logging.getLogger(__name__)
StartResponse = Callable[..., Any]


def _json(start_response: StartResponse, status: str, body: dict[str, Any]) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def health_app(engine: Engine) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/health", "/"):
            return _json(start_response, "404 Not Found", {"error": "not found"})
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _json(start_response, "405 Method Not Allowed", {"error": "method not allowed"})
        try:
            with read_connection(engine) as conn:
                persons = conn.execute(select(func.count()).select_from(s.person)).scalar_one()
                position = get_feed_position(conn)
        except SQLAlchemyError as exc:
            log.warning("health check: store unavailable (%s)", type(exc).__name__)
            return _json(start_response, "503 Service Unavailable", {"status": "unavailable"})
        return _json(start_response, "200 OK", {"status": "ok", "persons": persons, "feedPosition": position})

    return app
