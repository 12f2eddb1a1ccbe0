"""Filematch over HTTP on a real loopback socket: upload (multipart and raw), status, download, report,
cancel, authentication, per-account jobs and masking with the submitter's profile."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import Engine

from filematch.jobs import JobSettings
from server.access import BUILTIN_PROFILES, AccountStore, AuditWriter, Authenticator, query_audit
from server.http.filematch import FilematchHttpSettings, build_filematch_app
from store import schema
from tests.integration.test_filematch_pipeline import EXPECTED, FIX, load_persons

PASSWORD = "a-long-password-1"


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - wsgiref's signature
        pass


@pytest.fixture
def server(engine: Engine, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    load_persons(engine)
    accounts = AccountStore(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    accounts.add("kari", PASSWORD, "full")
    accounts.add("ola", PASSWORD, "utenHjemmel")
    audit = AuditWriter(engine, mode="sync")
    settings = FilematchHttpSettings(spool_dir=tmp_path / "spool", max_upload=1_000_000, background_workers=1,
                                     jobs=JobSettings(chunk_size=4))
    app = build_filematch_app(engine, Authenticator(engine, accounts), BUILTIN_PROFILES, audit, settings)
    httpd = make_server("127.0.0.1", 0, app, server_class=WSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/filematch/v1", engine
    finally:
        httpd.shutdown()
        httpd.server_close()
        app.stop()  # type: ignore[attr-defined] # joins the worker threads before the engine is disposed
        audit.close()


def wait_done(url: str, job: str, user: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info = requests.get(f"{url}/jobs/{job}", auth=(user, PASSWORD), timeout=10).json()
        if info["status"] == "done":
            return dict(info)
        time.sleep(0.05)
    raise AssertionError(f"job not done: {info}")


def test_upload_status_download_report(server: tuple[str, Engine]) -> None:
    url, engine = server
    with (FIX / "wash-latin1.csv").open("rb") as f:
        r = requests.post(f"{url}/jobs", auth=("kari", PASSWORD), files={"file": ("register.csv", f)},
                          data={"format": "csv"}, timeout=10)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    assert r.headers["Location"] == f"/filematch/v1/jobs/{job}" and r.json()["records"] == 15
    info = wait_done(url, job, "kari")
    assert info["progress"] == 1.0
    r = requests.get(f"{url}/jobs/{job}/result", auth=("kari", PASSWORD), timeout=10)
    assert r.status_code == 200 and "iso-8859-1" in r.headers["Content-Type"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("iso-8859-1"), newline=""), delimiter=";"))
    assert {row["ref"]: row["code"] for row in rows} == EXPECTED
    assert next(row for row in rows if row["ref"] == "R06")["street"] == "Hemmeligveien 7"  # full sees fortrolig
    report = requests.get(f"{url}/jobs/{job}/report", auth=("kari", PASSWORD), timeout=10).json()
    assert report["records"] == 15 and report["counts"]["UNCHANGED"] == 2
    # the job is kari's alone; once done, DELETE removes it with its answer
    assert requests.get(f"{url}/jobs/{job}", auth=("ola", PASSWORD), timeout=10).status_code == 404
    assert requests.delete(f"{url}/jobs/{job}", auth=("ola", PASSWORD), timeout=10).status_code == 404
    assert requests.delete(f"{url}/jobs/{job}", auth=("kari", PASSWORD), timeout=10).status_code == 204
    assert requests.get(f"{url}/jobs/{job}", auth=("kari", PASSWORD), timeout=10).status_code == 404
    assert requests.get(f"{url}/jobs/{job}/result", auth=("kari", PASSWORD), timeout=10).status_code == 404
    chunks = schema.filematch_chunk
    with engine.connect() as conn:
        assert conn.execute(chunks.select().where(chunks.c.job_id == job)).first() is None
    audit = query_audit(engine, account="kari")
    assert {a.operation for a in audit} >= {"filematch.submit", "filematch.wash", "filematch.fetch", "filematch.delete"}


def test_raw_xml_upload_is_masked_with_the_submitters_profile(server: tuple[str, Engine]) -> None:
    url, _ = server
    r = requests.post(f"{url}/jobs?format=xml", auth=("ola", PASSWORD), data=(FIX / "wash.xml").read_bytes(),
                      headers={"Content-Type": "application/xml"}, timeout=10)
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    wait_done(url, job, "ola")
    body = requests.get(f"{url}/jobs/{job}/result", auth=("ola", PASSWORD), timeout=10).content
    assert b"Sperret adr. fortrolig" in body and b"Hemmeligveien" not in body and b"Skjultgata" not in body


def test_refusals(server: tuple[str, Engine]) -> None:
    url, _ = server
    assert requests.get(f"{url}/jobs/{'0' * 32}", timeout=10).status_code == 401
    assert requests.get(f"{url}/jobs/{'0' * 32}", auth=("kari", "wrong-password"), timeout=10).status_code == 401
    assert requests.get(f"{url}/jobs/{'0' * 32}", auth=("kari", PASSWORD), timeout=10).status_code == 404
    with (FIX / "bad" / "unknown-column.csv").open("rb") as f:
        r = requests.post(f"{url}/jobs", auth=("kari", PASSWORD), files={"file": f}, timeout=10)
    assert r.status_code == 422 and "unknown column" in r.json()["error"]
    r = requests.post(f"{url}/jobs?format=pdf", auth=("kari", PASSWORD), data=b"x", timeout=10)
    assert r.status_code == 400
    r = requests.post(f"{url}/jobs", auth=("kari", PASSWORD), data=b"x" * 1_000_001, timeout=10)
    assert r.status_code == 413


def test_cancel_a_queued_job(engine: Engine, tmp_path: Path) -> None:
    from filematch.jobs import JobStore

    jobs = JobStore(engine, JobSettings(chunk_size=4))
    info = jobs.submit(FIX / "wash-crlf.txt", "fixed", account="kari", profile="full")
    assert jobs.cancel(info.id, account="kari").status == "cancelled"


def test_stop_all_stops_and_joins_the_washer_threads(engine: Engine, tmp_path: Path) -> None:
    """gunicorn's worker exit (server/runner.py) stops this process's washers before the audit is flushed."""
    from server.http.filematch import stop_all

    accounts = AccountStore(engine, hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    audit = AuditWriter(engine, mode="sync")
    settings = FilematchHttpSettings(spool_dir=tmp_path / "spool", background_workers=2)
    app = build_filematch_app(engine, Authenticator(engine, accounts), BUILTIN_PROFILES, audit, settings)
    threads = app.worker_threads  # type: ignore[attr-defined]
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    stop_all(10)
    assert not any(t.is_alive() for t in threads)
    audit.close()
