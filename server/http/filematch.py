"""Filematch over HTTP (WSGI, no framework), mounted at ``/filematch/v1``.

==========================================  =====================================================
``POST   /filematch/v1/jobs``               upload a file (multipart/form-data: part ``file``, optional
                                            parts ``format`` csv|fixed|xml and ``encoding``; or the raw
                                            file as the body with ``?format=…&encoding=…``) → 202 with the
                                            job (``Location`` names it)
``GET    /filematch/v1/jobs/{id}``          status and progress
``GET    /filematch/v1/jobs/{id}/result``   the answer file, streamed (409 until the job is done)
``GET    /filematch/v1/jobs/{id}/report``   counts per result code, timings, records/s
``DELETE /filematch/v1/jobs/{id}``          cancel an active job (200 with its state); delete a finished
                                            one with its answer (204)
==========================================  =====================================================

Every call is authenticated with HTTP Basic (:meth:`Authenticator.basic`) and authorised for the
operation ``filematch`` by the account's profile. A job belongs to the account that submitted it: other
accounts get 404. The answer is masked with the *submitter's* profile when it is washed (:func:`release_of`:
the profile's masking, derived from :mod:`server.access.masking`), so a stored answer never holds more
than its owner may see.

The upload is streamed to a spool file (``spool_dir``), never held in memory, then split into chunks in
the store (filematch.jobs) before the 202 is sent; the spool file is deleted. ``max_upload`` bytes refuse
larger bodies with 413. With ``background_workers > 0`` each process that builds the app also runs that
many worker threads (filematch.worker); otherwise run ``pregbridge filematch worker`` processes.
Errors are JSON ``{"error": "…"}`` and never contain record content.

Audit: every job operation writes its record (filematch.jobs: submit, wash, fetch, cancel, delete) with
the client's address (trusted proxies applied) when a request made it; every status or report read and
every refusal (any answer that is not 2xx, before or after authentication) writes one here, with the
account — or the username the request tried — the operation, the HTTP status and the client's address.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from filematch.formats import FORMATS
from filematch.formats.sniff import sniff_file
from filematch.jobs import Auditor, JobEvent, JobSettings, JobStateError, JobStore
from filematch.pipeline import Release
from filematch.records import FileFormatError
from filematch.worker import Worker
from server.access import (
    AccessProfile,
    Account,
    AuditRecord,
    AuditWriter,
    AuthenticationFailed,
    Authenticator,
    AuthorizationFailed,
    Throttled,
    authorize,
    basic_username,
    client_address,
    resolve_profile,
)
from server.access import release_of as masking_release_of
from server.access.throttle import account_part
from server.logsafe import describe
from store.source import PersonSource

__all__ = ["FilematchHttpSettings", "build_filematch_app", "job_auditor", "profile_release", "release_of", "stop_all"]

log = logging.getLogger(__name__)
PREFIX = "/filematch/v1"
OPERATION = "filematch"
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_JOB_PATH = re.compile(r"^/jobs/([0-9a-f]{32})(/result|/report)?$")
_BLOCK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FilematchHttpSettings:
    spool_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    max_upload: int = 2 * 1024**3
    background_workers: int = 0
    jobs: JobSettings = field(default_factory=JobSettings)


_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("filematch_client", default=None)
_ACCOUNT_KEY = "pregbridge.account"


def job_auditor(audit: AuditWriter) -> Auditor:
    """The audit callback of filematch.jobs: one AuditRecord per job operation (face ``filematch``), with the
    client address of the request that caused it (none for the washers' own events)."""

    def write(ev: JobEvent) -> None:
        audit.write(AuditRecord.now(account=ev.account, face="filematch", operation=ev.operation, outcome=ev.outcome,
                                    source=_CLIENT.get(), purpose=f"job {ev.job_id}: {ev.records} records",
                                    returned=ev.numbers))

    return write


def _operation(method: str, path: str) -> tuple[str, str | None]:
    """The audit operation of a request and the job it names."""
    m = _JOB_PATH.match(path)
    if m is None:
        return ("filematch.submit" if path.rstrip("/") == "/jobs" else "filematch.?"), None
    what = {(None, "GET"): "status", (None, "DELETE"): "delete", ("/report", "GET"): "report",
            ("/result", "GET"): "fetch"}.get((m[2], method), "?")
    return f"filematch.{what}", m[1]


def release_of(profile: AccessProfile) -> Release:
    """What ``profile`` releases in a wash answer: its :class:`adapters.policy.Release`, the one that
    ``apply_profile`` and the HL7 fast path read (a wash shows only the elements of
    :data:`filematch.pipeline.ELEMENTS`; tests/integration/test_filematch_release.py checks the wash against
    ``apply_profile``)."""
    return masking_release_of(profile)


def profile_release(profiles: Mapping[str, AccessProfile]) -> Callable[[str], Release]:
    """``release_for`` of the worker: a job's profile name → its :class:`~filematch.pipeline.Release`."""

    def release_for(name: str) -> Release:
        return release_of(resolve_profile(name, profiles))

    return release_for


class HttpError(Exception):
    def __init__(self, status: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def _json(start_response: StartResponse, status: str, body: Mapping[str, Any],
          headers: list[tuple[str, str]] | None = None) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                            *(headers or [])])
    return [data]


class _Body:
    """wsgi.input, read at most CONTENT_LENGTH bytes."""

    def __init__(self, environ: Mapping[str, Any], limit: int) -> None:
        try:
            self.remaining = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError("400 Bad Request", "invalid Content-Length") from None
        if environ.get("CONTENT_LENGTH") in (None, ""):
            raise HttpError("411 Length Required", "a request body with Content-Length is required")
        if self.remaining <= 0:
            raise FileFormatError("the file is empty", 1, 1)
        if self.remaining > limit:
            raise HttpError("413 Content Too Large", f"the upload is larger than {limit} bytes")
        self.stream: IO[bytes] = environ["wsgi.input"]

    def read(self) -> bytes:
        if self.remaining <= 0:
            return b""
        data = self.stream.read(min(_BLOCK, self.remaining))
        self.remaining -= len(data)
        if not data:
            self.remaining = 0
        return data


def _disposition(headers: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in headers.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == "content-disposition":
            for m in re.finditer(r'(\w+)="([^"]*)"|(\w+)=([^;\s]+)', value):
                out[(m[1] or m[3]).lower()] = m[2] if m[1] else m[4]
    return out


def read_multipart(body: _Body, boundary: bytes, sink: IO[bytes]) -> tuple[dict[str, str], bool]:
    """Stream a multipart/form-data body: the ``file`` part into ``sink``, small fields returned.

    Memory stays flat: at most one read block plus the delimiter is buffered. Returns (fields, file seen).
    """
    delim = b"\r\n--" + boundary
    buf = b"\r\n"
    fields: dict[str, str] = {}
    seen = False

    def more() -> None:
        nonlocal buf
        chunk = body.read()
        if not chunk:
            raise HttpError("400 Bad Request", "the multipart body is truncated")
        buf += chunk

    while (i := buf.find(delim)) < 0:
        buf = buf[-len(delim):]
        more()
    buf = buf[i + len(delim):]
    while True:
        while len(buf) < 2:
            more()
        if buf.startswith(b"--"):
            return fields, seen
        while (j := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > 16 * 1024:
                raise HttpError("400 Bad Request", "multipart part headers are too long")
            more()
        disp = _disposition(buf[2:j].decode("latin-1"))
        buf = buf[j + 4:]
        name = disp.get("name", "")
        is_file = name == "file" or "filename" in disp
        if is_file and (seen or name != "file"):  # one job is one file: never join two into one
            raise HttpError("400 Bad Request", "one file per job: the form has a second file part"
                            if seen else "the file part must be named file")
        small = bytearray()
        while True:
            i = buf.find(delim)
            part, done = (buf[:i], True) if i >= 0 else (buf[: max(0, len(buf) - len(delim))], False)
            if is_file:
                sink.write(part)
            else:
                small += part
                if len(small) > 1024:
                    raise HttpError("400 Bad Request", f"form field {name[:30]} is too long")
            if done:
                buf = buf[i + len(delim):]
                break
            buf = buf[len(part):]
            more()
        if is_file:
            seen = True
        elif name:
            fields[name] = small.decode("utf-8", "replace").strip()


class FilematchApp:
    def __init__(self, jobs: JobStore, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                 settings: FilematchHttpSettings, audit: AuditWriter | None = None) -> None:
        self.audit = audit
        self.jobs = jobs
        self.authenticator = authenticator
        self.profiles = profiles
        self.settings = settings
        self.stop_workers: threading.Event | None = None  # set when background worker threads run
        self.worker_threads: list[threading.Thread] = []

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the background worker threads and wait for them (a chunk in hand is finished or given back),
        so that none touches the store after its owner closed it."""
        if self.stop_workers is not None:
            self.stop_workers.set()
        for t in self.worker_threads:
            t.join(timeout)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        statuses: list[str] = []

        def capture(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            statuses.append(status)
            return start_response(status, headers, *exc_info)

        client = client_address(environ)
        token = _CLIENT.set(client or None)
        try:
            return self._serve(environ, capture)
        finally:
            _CLIENT.reset(token)
            self._audit(environ, statuses[-1] if statuses else "500 Internal Server Error", client)

    def _audit(self, environ: Mapping[str, Any], status: str, client: str) -> None:
        """The record of a refusal (not 2xx) or of a status or report read; job operations record themselves."""
        path = str(environ.get("PATH_INFO", ""))
        path = path[len(PREFIX):] if path.startswith(PREFIX) else path
        operation, job_id = _operation(str(environ.get("REQUEST_METHOD", "GET")).upper(), path)
        ok = status.startswith("2")
        if self.audit is None or (ok and operation not in ("filematch.status", "filematch.report")):
            return
        account = environ.get(_ACCOUNT_KEY)
        if not isinstance(account, str):
            name = basic_username(environ.get("HTTP_AUTHORIZATION"))
            account = account_part(name) if name else None
        self.audit.write(AuditRecord.now(account=account, face="filematch", operation=operation,
                                         outcome="ok" if ok else status[:60], source=client or None,
                                         purpose=f"job {job_id}" if job_id else None))

    def _serve(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path.startswith(PREFIX):
            path = path[len(PREFIX):]
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            account = self._authenticate(environ)
            if path.rstrip("/") == "/jobs":
                if method != "POST":
                    raise HttpError("405 Method Not Allowed", "POST a file to /jobs", [("Allow", "POST")])
                return self._submit(environ, account, start_response)
            m = _JOB_PATH.match(path)
            if not m:
                raise HttpError("404 Not Found", "not found")
            job_id, what = m[1], m[2]
            info = self.jobs.get(job_id, account.username, any_account=False)
            if info is None:
                raise HttpError("404 Not Found", "no such job")
            if what is None and method == "GET":
                return _json(start_response, "200 OK", info.to_json())
            if what is None and method == "DELETE":  # an active job is cancelled, a finished one deleted
                if info.status in ("done", "failed", "cancelled"):
                    self.jobs.delete(job_id, account=account.username)
                    start_response("204 No Content", [])
                    return []
                return _json(start_response, "200 OK", self.jobs.cancel(job_id, account=account.username).to_json())
            if method != "GET":
                raise HttpError("405 Method Not Allowed", "method not allowed", [("Allow", "GET")])
            if what == "/report":
                return _json(start_response, "200 OK", self.jobs.report(job_id).to_json())
            stream = self.jobs.result(job_id, account=account.username)
            fmt = FORMATS[info.format]
            charset = "" if fmt.name == "xml" else f"; charset={info.options.get('encoding', 'utf-8')}"
            start_response("200 OK", [("Content-Type", fmt.media_type + charset),
                                      ("Content-Disposition", f'attachment; filename="{job_id}{fmt.suffix}"')])
            return stream
        except HttpError as exc:
            return _json(start_response, exc.status, {"error": exc.message}, exc.headers)
        except Throttled as exc:
            return _json(start_response, "429 Too Many Requests", {"error": exc.message},
                         [("Retry-After", str(exc.retry_after))])
        except AuthenticationFailed as exc:
            return _json(start_response, "401 Unauthorized", {"error": exc.message},
                         [("WWW-Authenticate", 'Basic realm="pregbridge", charset="UTF-8"')])
        except AuthorizationFailed as exc:
            return _json(start_response, "403 Forbidden", {"error": exc.message})
        except JobStateError as exc:
            return _json(start_response, "409 Conflict", {"error": str(exc)})
        except FileFormatError as exc:
            return _json(start_response, "422 Unprocessable Content", exc.to_json())
        except SQLAlchemyError as exc:
            log.warning("filematch: store unavailable (%s)", type(exc).__name__)
            return _json(start_response, "503 Service Unavailable", {"error": "the store is unavailable"})
        except Exception as exc:  # noqa: BLE001 - the face's last seam: a JSON 500, never a trace to anyone
            log.error("filematch: internal error (%s)", describe(exc))
            return _json(start_response, "500 Internal Server Error", {"error": "internal error"})

    def _authenticate(self, environ: dict[str, Any]) -> Account:
        account = self.authenticator.basic(environ.get("HTTP_AUTHORIZATION"), client_address(environ))
        environ[_ACCOUNT_KEY] = account.username
        authorize(resolve_profile(account.profile, self.profiles), OPERATION)
        return account

    def _submit(self, environ: Mapping[str, Any], account: Account, start_response: StartResponse) -> Iterable[bytes]:
        query = {k: v[0] for k, v in parse_qs(str(environ.get("QUERY_STRING", ""))).items()}
        ctype = str(environ.get("CONTENT_TYPE", ""))
        body = _Body(environ, self.settings.max_upload)
        self.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="filematch-", suffix=".upload", dir=self.settings.spool_dir)
        spool = Path(name)
        try:
            with os.fdopen(fd, "wb") as sink:
                if ctype.lower().startswith("multipart/form-data"):
                    m = re.search(r'boundary="?([^";]+)"?', ctype)
                    if not m:
                        raise HttpError("400 Bad Request", "multipart/form-data without a boundary")
                    fields, seen = read_multipart(body, m[1].encode("latin-1"), sink)
                    if not seen:
                        raise HttpError("400 Bad Request", "the form has no part named file")
                    query.update(fields)
                else:
                    while chunk := body.read():
                        sink.write(chunk)
            fmt = query.get("format") or sniff_file(spool)  # not given: read from the file's first bytes
            if fmt not in FORMATS:
                raise HttpError("400 Bad Request", f"unknown format; one of {', '.join(FORMATS)}")
            try:
                info = self.jobs.submit(spool, fmt, account=account.username, profile=account.profile,
                                        encoding=query.get("encoding") or None)
            except ValueError as exc:
                if isinstance(exc, FileFormatError):
                    raise
                raise HttpError("400 Bad Request", str(exc)) from None
        finally:
            spool.unlink(missing_ok=True)
        location = f"{PREFIX}/jobs/{info.id}"
        body_json = {**info.to_json(), "links": {"status": location, "result": location + "/result",
                                                 "report": location + "/report"}}
        return _json(start_response, "202 Accepted", body_json, [("Location", location)])


_running: weakref.WeakSet[FilematchApp] = weakref.WeakSet()


def stop_all(timeout: float = 20.0) -> None:
    """Stop every background washer of this process (gunicorn's worker exit, server/runner.py): a chunk in
    hand is finished and its answer committed, instead of waiting out the lease in another worker."""
    for app in list(_running):
        app.stop(timeout)


def _start_workers(app: FilematchApp, profiles: Mapping[str, AccessProfile], n: int,
                   source: PersonSource | None = None) -> None:
    _running.add(app)
    app.stop_workers = threading.Event()
    for i in range(n):
        worker = Worker(app.jobs, profile_release(profiles), source=source)
        t = threading.Thread(target=worker.run, args=(app.stop_workers,), name=f"filematch-worker-{i}", daemon=True)
        t.start()
        app.worker_threads.append(t)


def build_filematch_app(engine: Engine, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                        audit: AuditWriter, settings: FilematchHttpSettings, *,
                        source: PersonSource | None = None) -> WsgiApp:
    """The Filematch WSGI app (mount it for every path under ``/filematch/v1``); its background washers ask
    ``source`` for numbers the store lacks (read-through mode)."""
    jobs = JobStore(engine, settings.jobs, audit=job_auditor(audit))
    app = FilematchApp(jobs, authenticator, profiles, settings, audit)
    if settings.background_workers > 0:
        _start_workers(app, profiles, settings.background_workers, source)
    return app
