"""A real ``pregbridge serve --workers 2`` process on a free loopback port, and the requests the lockout cases send.

The store is SQLite in the process's data directory or a PostgreSQL schema of its own; accounts are added
with ``pregbridge users add`` before the server starts. Everything the server writes to stdout and stderr
goes to ``server.log``, which :meth:`Served.assert_no_traceback` reads.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import Engine, create_engine, select

from store import schema as s
from tests.integration.preg_support import CT11, envelope, fault_of

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
WRONG = "not the right password at all"
TRUSTED_PROXY = "127.0.0.1"  # the test client itself plays the trusted reverse proxy
UNTRUSTED_PEER = "127.0.0.2"
PREG_PATH = "/preg/v1/Personregister"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def fault(self) -> tuple[str, str, str]:
        return fault_of(etree.fromstring(self.body))


def basic_auth(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def http_request(port: int, method: str, path: str, body: bytes | None, headers: Mapping[str, str], *,
                 source: str | None = None) -> Answer:
    """One request on a new loopback connection (``source``: bind the client side to that loopback address)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@dataclass
class Served:
    port: int
    data_dir: Path
    env: dict[str, str]
    log: Path
    db_url: str
    engine: Engine

    def request(self, method: str, path: str, *, user: str, password: str, forwarded_for: str | None = None,
                source: str | None = None, body: bytes | None = None,
                headers: Mapping[str, str] | None = None) -> Answer:
        sent = {**basic_auth(user, password), **(headers or {})}
        if forwarded_for is not None:
            sent["X-Forwarded-For"] = forwarded_for
        return http_request(self.port, method, path, body, sent, source=source)

    def ping(self, user: str, password: str, **kw: Any) -> Answer:
        """A PREG ``ping`` (SOAP 1.1, HTTP Basic)."""
        return self.request("POST", PREG_PATH, user=user, password=password, body=envelope("1.1", "<p:ping/>"),
                            headers={"Content-Type": CT11}, **kw)

    def job_status(self, user: str, password: str, **kw: Any) -> Answer:
        """A Filematch status read of a job that does not exist (404 once authenticated; 401/429 before)."""
        return self.request("GET", "/filematch/v1/jobs/" + "0" * 32, user=user, password=password, **kw)

    def pregbridge(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "server", "--data-dir", str(self.data_dir), *args], cwd=ROOT,
                              env=self.env, input=stdin, capture_output=True, text=True, timeout=120)

    def failures(self, key: str) -> int | None:
        t = s.auth_throttle
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.failures).where(t.c.key == key)).scalar()

    def audit(self, *, source: str | None = None, account: str | None = None) -> list[Any]:
        e = s.audit_event
        q = select(e.c.account, e.c.face, e.c.operation, e.c.outcome, e.c.source).order_by(e.c.id)
        if source is not None:
            q = q.where(e.c.source == source)
        if account is not None:
            q = q.where(e.c.account == account)
        with self.engine.connect() as conn:
            return list(conn.execute(q).all())

    def wait_for_audit(self, count: int, **kw: Any) -> list[Any]:
        """The audit records matching ``kw`` once at least ``count`` are committed (batched mode: ~50 ms)."""
        deadline = time.monotonic() + 10
        while True:
            rows = self.audit(**kw)
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)

    def assert_no_traceback(self) -> None:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in text, text[-3000:]


CONFIG = """\
[access]
trusted_proxies = ["{proxy}"]
pair_free_failures = 2
account_free_failures = 20
address_free_failures = 50
delay_base_seconds = 1
delay_max_seconds = 60

[filematch]
background_workers = 0
"""


@contextlib.contextmanager
def served(db_url: str | None, work: Path, accounts: Mapping[str, str]) -> Iterator[Served]:
    """Serve a fresh store (``db_url``; None: SQLite in ``work``) with ``accounts`` (name → profile)."""
    config = work / "pregbridge.toml"
    config.write_text(CONFIG.format(proxy=TRUSTED_PROXY), encoding="utf-8")
    env = dict(os.environ, PYTHONWARNINGS="ignore", PREGBRIDGE_CONFIG=str(config), COLUMNS="200")
    if db_url is not None:
        env["PREGBRIDGE_DATABASE_URL"] = db_url
    url = db_url or f"sqlite:///{(work / 'pregbridge.sqlite').resolve()}"
    port = free_port()
    log = work / "server.log"
    engine = create_engine(url)
    srv = Served(port, work, env, log, url, engine)
    for name, profile in accounts.items():
        added = srv.pregbridge("users", "add", name, "--profile", profile, "--password-stdin", stdin=PASSWORD + "\n")
        assert added.returncode == 0, added.stderr
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "server", "--data-dir", str(work), "serve", "--port", str(port),
                                 "--workers", "2"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise AssertionError(f"the server did not start: {tail}") from None
                time.sleep(0.2)
        yield srv
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        engine.dispose()
