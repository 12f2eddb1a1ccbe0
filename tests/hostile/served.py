"""A real ``pregbridge serve`` on a free loopback port, over a small store, for the hostile-client cases.

:func:`served` stores the handcrafted persons of tests/integration/preg_support.py in the given database,
adds one ``full`` account, writes a configuration file with the given ``[http]`` settings (small deadlines
and caps keep the cases fast), and starts ``python -m server serve`` as its own process group with its
output in a log file. :meth:`Served.stop` ends it with SIGTERM (gunicorn's graceful stop, so the
worker-exit hooks run) and returns the log, which the cases check for tracebacks.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from server.access import AccountStore
from store.engine import make_engine, migrate
from tests.integration.preg_support import CT11, PATH, REPO, Population, envelope, populate

__all__ = ["USER", "PASSWORD", "Served", "served"]

USER = "epj-hostile"
PASSWORD = "hostile-clients-password-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    port: int
    pop: Population
    proc: subprocess.Popen[bytes]
    log_path: Path
    tls: ssl.SSLContext | None = None  # the client's context when the server speaks HTTPS

    def request(self, method: str, path: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                *, timeout: float = 5.0, source: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
        conn = (http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, source_address=(source, 0),
                                            context=self.tls) if self.tls is not None else
                http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(source, 0)))
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def get_person(self, *, timeout: float = 5.0, source: str = "127.0.0.1") -> tuple[int, bytes]:
        """A normal PREG getPerson of an ordinary stored person, with HTTP Basic."""
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        body = envelope("1.1", f"<p:getPerson><p:personnummer>{self.pop.ordinary}</p:personnummer></p:getPerson>")
        status, _, answer = self.request("POST", PATH, body, {"Content-Type": CT11, "Authorization": f"Basic {auth}"},
                                         timeout=timeout, source=source)
        return status, answer

    def assert_normal(self, *, source: str = "127.0.0.1", within: float = 3.0) -> None:
        """/health and a getPerson are answered, each within ``within`` seconds."""
        started = time.monotonic()
        status, _, body = self.request("GET", "/health", timeout=within, source=source)
        assert status == 200 and b'"status": "ok"' in body, (status, body[:200])
        status, answer = self.get_person(timeout=within, source=source)
        assert status == 200 and b"getPersonResponse" in answer, (status, answer[:300])
        assert time.monotonic() - started < 2 * within

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> str:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
        return self.log()


@contextlib.contextmanager
def served(db_url: str, work_dir: Path, http: Mapping[str, float | int | str], *, workers: int = 2,
           tls: ssl.SSLContext | None = None) -> Iterator[Served]:
    engine = make_engine(db_url)
    migrate(engine)
    pop = populate(engine, work_dir)
    AccountStore(engine).add(USER, PASSWORD, "full")
    engine.dispose()
    config = work_dir / "pregbridge.toml"
    config.write_text("[http]\n" + "".join(f"{k} = {v!r}\n" for k, v in http.items()), encoding="utf-8")
    log_path = work_dir / "serve.log"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    for attempt in range(3):  # a free port can be taken by another test's server before ours binds it: retry
        port = _free_port()
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server", "--config", str(config), "--database-url", db_url, "--data-dir",
                 str(work_dir), "serve", "--port", str(port), "--workers", str(workers)],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Served(port, pop, proc, log_path, tls)
        deadline = time.monotonic() + 60
        started = False
        while not started:
            try:
                started = server.request("GET", "/health", timeout=2)[0] == 200
            except OSError:
                pass
            if started or "Address already in use" in server.log() or time.monotonic() > deadline \
                    or proc.poll() is not None:
                break
            time.sleep(0.2)
        if not started and "Address already in use" in server.log() and attempt < 2:
            server.stop()
            continue
        break
    try:
        if not started:
            raise AssertionError("pregbridge serve did not start: " + server.log()[-3000:])
        yield server
    finally:
        server.stop()
