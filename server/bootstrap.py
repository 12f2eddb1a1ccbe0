"""The composition root: the only module that knows every concrete class.

It turns :class:`server.config.Settings` into a migrated store engine and the WSGI application of
every face. Called once per process (in each pre-forked worker, after the fork), never at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine

from server.config import Settings
from server.http import health_app
from store.engine import make_engine, migrate

__all__ = ["build_engine", "build_wsgi_app"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build_engine(settings: Settings, *, run_migrations: bool = True) -> Engine:
    engine = make_engine(settings.store.database_url)
    if run_migrations:
        migrate(engine)
    return engine


def build_wsgi_app(settings: Settings, engine: Engine | None = None) -> WsgiApp:
    """The HTTP application: health for now; the SOAP faces mount here as they are built."""
    return health_app(engine or build_engine(settings))
