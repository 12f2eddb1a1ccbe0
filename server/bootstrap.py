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

from server.access import (
    CLIENT_ADDRESS_KEY,
    AccountStore,
    AuditRecord,
    AuditWriter,
    Authenticator,
    TrustedProxies,
    basic_username,
    load_profiles,
)
from server.access.throttle import account_part
from server.config import Settings
from server.front.front import REFUSAL_HOOK, RefusalHook
from server.http import health_app
from server.logsafe import loggable
from server.metrics import call_ended, call_started
from server.metrics import install as install_metrics
from store.engine import make_engine, migrate
from store.krk import LoadResult, Problem, load_krk_file
from store.source import PersonSource

__all__ = ["Components", "accounts_of", "audit_writer_of", "build_components", "build_engine",
           "build_fake_persontjenesten", "build_filematch_worker", "build_hl7_app", "build_sync_client",
           "build_sync_engine", "build_syncer", "build_wsgi_app", "filematch_http_settings", "filematch_release",
           "front_refusal_audit", "listener_endpoint", "load_krk", "person_source_of", "sync_figures", "sync_parts"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build_engine(settings: Settings, *, run_migrations: bool = True) -> Engine:
    engine = make_engine(settings.store.database_url, statement_timeout=settings.store.statement_timeout)
    if run_migrations:
        migrate(engine)
    return engine


def accounts_of(settings: Settings, engine: Engine) -> AccountStore:
    return AccountStore(engine, key_path=settings.access.resolved_key_path(settings.store.data_dir))


def audit_writer_of(settings: Settings, engine: Engine) -> AuditWriter:
    """The audit writer of ``[access]`` (batched or sync); the caller closes it."""
    access = settings.access
    return AuditWriter(engine, mode=access.audit_mode, max_batch=access.audit_max_batch,
                       max_delay=access.audit_max_delay_ms / 1000, max_queue=access.audit_queue_size)


def person_source_of(settings: Settings, engine: Engine) -> PersonSource | None:
    """Where the faces get persons the store does not hold (store/source.py): None in replica mode (the faces
    read the store and nothing else), the read-through source (upstream.readthrough.ReadThrough, with its own
    Persontjenesten client) in ``[upstream] mode = "read-through"``. Built once per process."""
    if settings.upstream.mode != "read-through":
        return None
    from server.metrics import upstream_observer
    from store.linkage.params import NATIONAL_PERSONS, assume_register
    from upstream.readthrough import ReadThrough

    assume_register(NATIONAL_PERSONS)  # identification's odds are over the register, not the few persons held
    return ReadThrough(engine, build_sync_client(settings), settings.upstream, sync_parts(settings),
                       on_call=upstream_observer() if settings.metrics.enabled else None)


def build_hl7_app(settings: Settings, engine: Engine | None = None) -> tuple[Any, AuditWriter]:
    """``pregbridge listen-hl7``: the HL7 face (server.hl7.app.Hl7App) of ``[hl7]`` over the store; the caller
    serves it with ``settings.hl7`` and closes the audit writer and the engine (``app.engine``)."""
    from server.hl7.app import Hl7App

    engine = engine or build_engine(settings)
    audit = audit_writer_of(settings, engine)
    app = Hl7App(engine, accounts_of(settings, engine), load_profiles(settings.access.profiles_path), audit,
                 settings.hl7, account_state_seconds=settings.access.account_state_seconds,
                 source=person_source_of(settings, engine))
    return app, audit


@dataclass
class Components:
    engine: Engine
    accounts: AccountStore
    authenticator: Authenticator
    audit: AuditWriter
    app: WsgiApp
    source: PersonSource | None = None  # read-through mode's (person_source_of), shared by the faces


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
                         lease_seconds=float(fm.lease_seconds), max_field=fm.max_field))


def filematch_release(settings: Settings, profile: str) -> Any:
    """``pregbridge filematch run``: what a wash under the access profile ``profile`` releases
    (filematch.pipeline.Release)."""
    from server.http.filematch import profile_release

    return profile_release(load_profiles(settings.access.profiles_path))(profile)


def build_filematch_worker(settings: Settings, *, lease_seconds: float | None = None) -> tuple[Any, AuditWriter]:
    """``pregbridge filematch worker``: a washer (filematch.worker.Worker) of the store's queued jobs, auditing
    synchronously (a worker process may be stopped at any time); the caller closes the audit writer."""
    from dataclasses import replace

    from filematch.jobs import JobStore
    from filematch.worker import Worker
    from server.http.filematch import job_auditor, profile_release

    engine = build_engine(settings)
    audit = AuditWriter(engine, mode="sync")
    jobs_settings = filematch_http_settings(settings).jobs
    if lease_seconds is not None:
        jobs_settings = replace(jobs_settings, lease_seconds=lease_seconds)
    jobs = JobStore(engine, jobs_settings, audit=job_auditor(audit))
    return Worker(jobs, profile_release(load_profiles(settings.access.profiles_path)),
                  source=person_source_of(settings, engine)), audit


def front_refusal_audit(audit: AuditWriter, proxies: TrustedProxies) -> RefusalHook:
    """The front's refusal hook (server/front/front.py): one audit record per request the HTTP front refused
    before any face saw it (face ``http-front``; the outcome is the status and reason, the operation the
    request's path, cut and sanitised, or ``?``; the attempted Basic account when the headers were read; the
    client address, trusted proxies applied)."""
    def record(outcome: str, environ: dict[str, str], path: str | None) -> None:
        name = basic_username(environ.get("HTTP_AUTHORIZATION"))
        audit.write(AuditRecord.now(account=account_part(name) if name else None, face="http-front",
                                    operation=loggable(path[:80], 80)[:80] if path else "?", outcome=outcome[:60],
                                    source=proxies.of_environ(environ) or None))
    return record


def build_components(settings: Settings, engine: Engine | None = None) -> Components:
    from server.http.filematch import build_filematch_app
    from server.soap.ar import build_ar_app
    from server.soap.flr import build_flr_app
    from server.soap.hpr import build_hpr_app
    from server.soap.krk import build_krk_app
    from server.soap.middleware import request_id
    from server.soap.preg import build_preg_app, load_contract
    from server.soap.preg.face import PregFace

    engine = engine or build_engine(settings)
    access = settings.access
    accounts = accounts_of(settings, engine)
    authenticator = Authenticator.from_settings(engine, accounts, access)
    audit = audit_writer_of(settings, engine)
    profiles = load_profiles(access.profiles_path)
    source = person_source_of(settings, engine)  # None in replica mode: the faces read the store only
    preg = build_preg_app(PregFace(engine, load_contract(settings.preg.namespace, settings.preg_address),
                                   authenticator, profiles, audit, source=source), max_body=settings.preg.max_body)
    ar = build_ar_app(engine, authenticator, profiles, audit,
                      public_base_url=settings.ar_public_base_url)
    flr = build_flr_app(engine, authenticator, profiles, audit, public_base_url=settings.ar_public_base_url)
    filematch = build_filematch_app(engine, authenticator, profiles, audit, filematch_http_settings(settings),
                                    source=source)
    mounts: dict[str, WsgiApp] = {settings.preg.path.rstrip("/"): preg, "/v1/AR": ar, "/v1/AR/Basic": ar}
    mounts.update({"/v2/flr": flr, "/v2/flr/Basic": flr})
    hpr = build_hpr_app(engine, authenticator, profiles, audit, public_base_url=settings.ar_public_base_url)
    mounts.update({"/v2/HPR": hpr, "/v2/HPR/Basic": hpr})
    krk = build_krk_app(engine, authenticator, profiles, audit, public_base_url=settings.ar_public_base_url)
    mounts.update({"/v1/krk": krk, "/v1/krk/Basic": krk})
    faces = {"soap-preg": [settings.preg.path], "soap-ar": ["/v1/AR", "/v1/AR/Basic"],
             "soap-flr": ["/v2/flr", "/v2/flr/Basic"], "soap-hpr": ["/v2/HPR", "/v2/HPR/Basic"],
             "soap-krk": ["/v1/krk", "/v1/krk/Basic"], "filematch": ["/filematch/v1"]}
    health = health_app(engine, faces=faces, metrics=settings.metrics, sync_status=sync_figures(settings, engine))
    proxies = access.proxies()
    install_metrics(settings.metrics)  # counts and logs every audited call (server/metrics.py)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[CLIENT_ADDRESS_KEY] = proxies.of_environ(environ)  # for throttling and audit (trusted proxies)
        token = call_started(request_id(environ))  # the call's start and id, for its metrics and log line
        try:
            path = str(environ.get("PATH_INFO", "")).rstrip("/")
            if path.startswith("/filematch/v1"):
                return filematch(environ, start_response)
            face = mounts.get(path)
            if face is not None:
                return face(environ, start_response)
            return health(environ, start_response)
        finally:
            call_ended(token)

    setattr(app, REFUSAL_HOOK, front_refusal_audit(audit, proxies))  # picked up by server.front.worker
    return Components(engine, accounts, authenticator, audit, app, source)


def sync_figures(settings: Settings, engine: Engine) -> Callable[[], dict[str, Any] | None] | None:
    """The sync's position and lag for /metrics (upstream.sync.sync_status; None without ``[upstream] base_url``)."""
    if not settings.upstream.base_url:
        return None

    def read() -> dict[str, Any]:
        from upstream.readthrough_feed import feed_figures
        from upstream.sync import sync_status

        st = sync_status(engine)
        rt = feed_figures(engine, st.last_run, count=False)  # held persons: pregbridge_store_persons
        return {"position": st.position, "latest": st.latest, "lag_events": st.lag_events,
                "lag_seconds": st.lag_seconds, "running": int(st.running),
                "staleness_seconds": rt.staleness_seconds, "purged": rt.purged_total}

    return read


def listener_endpoint(settings: Settings, engine: Engine, mllp: Any, port: int | None) -> Any:
    """The HL7 listener's HTTP /health and /metrics (server.http.health.Endpoint) on ``[metrics] hl7_host`` and
    ``port`` (None: ``[metrics] hl7_port``; 0: none, and None is returned). Counts this process's calls."""
    from server.http.health import serve_endpoint
    from server.metrics import single_process

    port = settings.metrics.hl7_port if port is None else port
    single_process()  # one listener process, one registry: never another process's multi-process directory
    install_metrics(settings.metrics)
    if not port:
        return None
    app = health_app(engine, faces={"hl7": [f"mllp://{mllp.host}:{mllp.port}"]}, metrics=settings.metrics)
    return serve_endpoint(app, settings.metrics.hl7_host, port)


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


def build_fake_persontjenesten(population: Path, *, host: str, port: int, extract: bool, faults: dict[str, int],
                               slow_seconds: float, retry_after: int, client_id: str | None,
                               client_jwk: Path | None, token_lifetime: int, require_nonce: bool) -> Any:
    """The fake Persontjenesten (upstream.fake.RunningFake), bound but not yet serving."""
    from upstream.fake import FakeAuth, FakeOptions, Faults, make_fake_server
    from upstream.fake.helseid import public_jwk_file
    from upstream.spec import SCOPES

    auth = None
    if client_id or client_jwk:
        if not (client_id and client_jwk):
            raise ValueError("--client-id and --client-jwk go together")
        scopes = frozenset(SCOPES.values())
        auth = FakeAuth({client_id: (public_jwk_file(client_jwk), scopes)}, token_lifetime=token_lifetime,
                        require_nonce=require_nonce)
    options = FakeOptions(host=host, port=port, extract=extract, auth=auth,
                          faults=Faults(**faults, slow_seconds=slow_seconds, retry_after=retry_after))
    return make_fake_server(population, options)


def sync_parts(settings: Settings) -> tuple[str, ...]:
    """The information parts the sync fetches: the union of what the configured access profiles can release
    (every profile ``load_profiles`` gives, built-ins included), narrowed by ``[upstream] information_parts``."""
    from upstream.parts import information_parts

    profiles = load_profiles(settings.access.profiles_path)
    elements = {e for p in profiles.values() for e in p.elements}
    return information_parts(elements, settings.upstream.information_parts)


def build_sync_client(settings: Settings) -> Any:
    """The Persontjenesten client (upstream.client.PersontjenestenClient) of ``[upstream]``."""
    from upstream.client import PersontjenestenClient

    return PersontjenestenClient(settings.upstream)


def _sync_pragmas(dbapi_conn: Any, record: Any) -> None:
    from upstream.sync import SQLITE_CACHE_KIB

    dbapi_conn.execute("PRAGMA mmap_size=0")
    dbapi_conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")


def build_sync_engine(settings: Settings) -> Engine:
    """The store engine of the sync process: the store's, but on SQLite without memory-mapped reads (the
    faces' hot lookups want them; a writer that reads a page of keys does not, and the mapped pages of a
    growing database would count in the syncer's resident memory, measured flat: benchmarks/bench_sync.py)
    and with the page cache upstream.sync.SQLITE_CACHE_KIB says (its docstring: why that size)."""
    from sqlalchemy import event

    engine = build_engine(settings)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sync_pragmas)
        engine.dispose()  # connections made before (the migration's) are closed; new ones get the pragma
    return engine


def build_syncer(settings: Settings, engine: Engine) -> Any:
    """The sync (upstream.sync.Syncer) of ``[upstream]`` over ``engine``; the caller holds the store's sync lock
    (upstream.sync.SyncLock) and closes the syncer and its client."""
    import os

    from upstream.sync import Syncer, SyncOptions

    up = settings.upstream
    options = SyncOptions(parts=sync_parts(settings), include_history=up.include_history,
                          parallelism=up.parallelism, poll_interval=up.poll_interval, workers=os.cpu_count() or 1,
                          read_through=up.mode == "read-through", retention_days=up.retention_days,
                          purge_interval=up.purge_interval, stale_after=10 * up.poll_interval)
    return Syncer(engine, build_sync_client(settings), options)
