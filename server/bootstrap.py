"""The composition root: the only module that knows every concrete class.

It turns :class:`server.config.Settings` into a migrated store engine and the WSGI application of
every face, mounted by path. Called once per process (in each pre-forked worker, after the fork),
never at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from server.access import AccountStore, AuditWriter, Authenticator, load_profiles
from server.config import Settings
from server.http import health_app
from store.engine import make_engine, migrate
from store.krk import LoadResult, Problem, load_krk_file

__all__ = ["Components", "build_components", "build_engine", "build_wsgi_app", "filematch_http_settings", "load_krk"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build_engine(settings: Settings, *, run_migrations: bool = True) -> Engine:
    engine = make_engine(settings.store.database_url)
    if run_migrations:
        migrate(engine)
    return engine


def accounts_of(settings: Settings, engine: Engine) -> AccountStore:
    return AccountStore(engine, key_path=settings.access.resolved_key_path(settings.store.data_dir))


@dataclass
class Components:
    engine: Engine
    accounts: AccountStore
    authenticator: Authenticator
    audit: AuditWriter
    app: WsgiApp


def filematch_http_settings(settings: Settings) -> Any:
    """The Filematch face's settings (server.http.filematch.FilematchHttpSettings) from ``[filematch]``."""
    import datetime as dt

    from filematch.jobs import JobSettings
    from server.http.filematch import FilematchHttpSettings

    fm = settings.filematch
    return FilematchHttpSettings(
        spool_dir=fm.spool_dir or settings.store.data_dir / "filematch-spool", max_upload=fm.max_upload,
        background_workers=fm.background_workers,
        jobs=JobSettings(chunk_size=fm.chunk_size, retention=dt.timedelta(days=fm.retention_days),
                         lease_seconds=float(fm.lease_seconds)))


def build_components(settings: Settings, engine: Engine | None = None) -> Components:
    from server.http.filematch import build_filematch_app
    from server.soap.ar import build_ar_app
    from server.soap.flr import build_flr_app
    from server.soap.hpr import build_hpr_app
    from server.soap.krk import build_krk_app
    from server.soap.preg import build_preg_app, load_contract
    from server.soap.preg.face import PregFace

    engine = engine or build_engine(settings)
    access = settings.access
    accounts = accounts_of(settings, engine)
    authenticator = Authenticator.from_settings(engine, accounts, access)
    audit = AuditWriter(engine, mode=access.audit_mode, max_batch=access.audit_max_batch,
                        max_delay=access.audit_max_delay_ms / 1000, max_queue=access.audit_queue_size)
    profiles = load_profiles(access.profiles_path)
    preg = build_preg_app(PregFace(engine, load_contract(settings.preg.namespace, settings.preg_address),
                                   authenticator, profiles, audit), max_body=settings.preg.max_body)
    ar = build_ar_app(engine, authenticator, profiles, audit,
                      public_base_url=settings.ar_public_base_url)
    flr = build_flr_app(engine, authenticator, profiles, audit, public_base_url=settings.ar_public_base_url)
    filematch = build_filematch_app(engine, authenticator, profiles, audit, filematch_http_settings(settings))
    mounts: dict[str, WsgiApp] = {settings.preg.path.rstrip("/"): preg, "/v1/AR": ar, "/v1/AR/Basic": ar}
    mounts.update({"/v2/flr": flr, "/v2/flr/Basic": flr})
    hpr = build_hpr_app(engine, authenticator, profiles, audit, public_base_url=settings.ar_public_base_url)
    mounts.update({"/v2/HPR": hpr, "/v2/HPR/Basic": hpr})
    krk = build_krk_app(engine, authenticator, profiles, audit, public_base_url=settings.ar_public_base_url)
    mounts.update({"/v1/krk": krk, "/v1/krk/Basic": krk})
    health = health_app(engine)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", "")).rstrip("/")
        if path.startswith("/filematch/v1"):
            return filematch(environ, start_response)
        face = mounts.get(path)
        if face is not None:
            return face(environ, start_response)
        return health(environ, start_response)

    return Components(engine, accounts, authenticator, audit, app)


def load_krk(settings: Settings, path: Path, *, replace: bool) -> tuple[LoadResult | None, list[Problem]]:
    """``pregbridge krk load``: check a KRK file and write it to the store (store.krk.load_krk_file)."""
    engine = build_engine(settings)
    try:
        return load_krk_file(engine, path, replace=replace)
    finally:
        engine.dispose()


def build_wsgi_app(settings: Settings, engine: Engine | None = None) -> WsgiApp:
    """The HTTP application of every face (one per worker process)."""
    return build_components(settings, engine).app
