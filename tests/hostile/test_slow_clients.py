"""Slow and greedy clients against a real ``pregbridge serve`` (issue 13, item 1), on SQLite and PostgreSQL.

Before the front (gunicorn's sync workers), two clients sending a byte every two seconds stopped every
HTTP face until gunicorn killed its workers after 60 s. Here sixteen such clients (more than the two
workers) drip bytes into the headers or the body while normal requests — /health and a PREG getPerson —
must be answered at once; then each slow client must get the typed refusal (a SOAP fault of its
version where it said it speaks SOAP, else a plain 408) within its deadline; the per-address cap
answers 503 over its limit without touching other addresses; and no traceback reaches the log.

Deadlines are small (http settings in the served configuration) to keep the cases to seconds. The slow
clients come from their own loopback addresses (127.0.0.10 and up), so the per-address cap, which
counts per worker process, does not refuse them.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import schema as s
from store.engine import make_engine
from tests.hostile.served import PASSWORD, USER, Served, served
from tests.integration.preg_support import PATH, backend_url, envelope, fault_of
from tests.integration.preg_support import Raw as _Raw

HTTP: dict[str, float | int | str] = {"header_timeout": 2.0, "body_timeout": 2.0, "body_min_rate": 1000,
                                     "keep_alive": 5.0, "max_connections_per_address": 4, "max_connections": 200}
DRIP = 0.5  # seconds between the slow clients' bytes

pytestmark = pytest.mark.xdist_group("hostile-served")  # one served process per backend, not one per xdist worker


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    work = tmp_path_factory.mktemp(f"slow-{request.param}")
    with backend_url(request.param, work) as url, served(url, work, HTTP) as srv:
        for _ in range(6):  # each worker verifies the password once (argon2), then caches it
            srv.get_person(timeout=10)
        yield srv, url


class SlowClients:
    """``n`` connections from their own loopback addresses, each sending ``head`` and then one byte of
    ``drip`` every DRIP seconds (from a thread) until the server answers or ``stop`` is called."""

    def __init__(self, port: int, n: int, head: bytes, drip: bytes = b"a", *, first_address: int = 10) -> None:
        self.socks = []
        for i in range(n):
            sock = socket.socket()
            sock.bind((f"127.0.0.{first_address + i}", 0))
            sock.connect(("127.0.0.1", port))
            if head:
                sock.sendall(head)
            self.socks.append(sock)
        self.drip = drip
        self.done = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self) -> None:
        while not self.done.wait(DRIP):
            for sock in self.socks:
                try:
                    sock.send(self.drip)
                except OSError:
                    pass

    def answers(self, timeout: float) -> list[tuple[bytes, float]]:
        """Each connection's whole answer (read to the server's close) and when it had ended."""
        out = []
        deadline = time.monotonic() + timeout
        for sock in self.socks:
            data = b""
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
            out.append((data, time.monotonic() - self.started))
        self.stop()
        return out

    def stop(self) -> None:
        self.done.set()
        self.thread.join()
        for sock in self.socks:
            sock.close()


def _parse(answer: bytes) -> _Raw:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return _Raw(status, headers, body)


def _keep_answering(srv: Served, seconds: float) -> int:
    """Normal requests, one after the other, for ``seconds``: each answered within two seconds (a sync
    worker held by a slow client would not answer for 60)."""
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        srv.assert_normal(within=2.0)
        n += 1
    return n


def test_slow_headers_hold_no_worker_and_get_a_soap_fault_in_time(server: tuple[Served, str]) -> None:
    srv, _ = server
    head = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"
            "X-Slow: ").encode()
    slow = SlowClients(srv.port, 16, head)
    assert _keep_answering(srv, 1.5) >= 2
    for answer, ended in slow.answers(timeout=6):
        raw = _parse(answer)
        assert raw.status == 500 and raw.content_type.startswith("application/soap+xml"), answer[:300]
        assert fault_of(raw.xml())[:2] == ("1.2", "Client.RequestTimeout")
        assert 1.5 <= ended <= 5.0  # header_timeout 2 s from connect, whatever bytes keep coming
    srv.assert_normal()


def test_slow_request_line_gets_a_plain_408(server: tuple[Served, str]) -> None:
    srv, _ = server
    slow = SlowClients(srv.port, 16, b"GET /hea", b"l", first_address=40)
    assert _keep_answering(srv, 1.0) >= 2
    for answer, ended in slow.answers(timeout=6):
        raw = _parse(answer)
        assert (raw.status, raw.content_type) == (408, "text/plain; charset=utf-8"), answer[:300]
        assert raw.body == b"the request headers did not arrive in time\n"
        assert ended <= 5.0
    srv.assert_normal()


def test_slow_body_holds_no_worker_and_gets_a_soap_fault_in_time(server: tuple[Served, str]) -> None:
    srv, _ = server
    head = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
            "Content-Length: 1000\r\n\r\n<").encode()
    slow = SlowClients(srv.port, 16, head, b" ", first_address=70)
    assert _keep_answering(srv, 2.0) >= 2
    for answer, ended in slow.answers(timeout=7):
        raw = _parse(answer)
        assert raw.status == 500 and raw.content_type.startswith("text/xml"), answer[:300]
        assert fault_of(raw.xml())[:2] == ("1.1", "Client.RequestTimeout")
        # body_timeout 2 s + 1000 declared bytes at 1000 B/s = 3 s, counted from the end of the headers
        assert 2.5 <= ended <= 6.0
    srv.assert_normal()


def test_silent_connections_are_closed_after_the_header_deadline(server: tuple[Served, str]) -> None:
    srv, _ = server
    idle = SlowClients(srv.port, 16, b"", b"", first_address=100)
    srv.assert_normal()
    for answer, ended in idle.answers(timeout=6):
        assert _parse(answer).status == 408
        assert 1.5 <= ended <= 5.0
    srv.assert_normal()


def test_the_per_address_cap_answers_503_and_spares_other_addresses(server: tuple[Served, str]) -> None:
    srv, _ = server
    socks = []
    try:
        for _ in range(20):
            sock = socket.socket()
            sock.bind(("127.0.0.200", 0))
            sock.connect(("127.0.0.1", srv.port))
            socks.append(sock)
        srv.assert_normal()  # from 127.0.0.1: its own count
        refused = 0
        for sock in socks:  # a 503 is sent at once; a taken connection hears nothing before its 2 s deadline
            sock.settimeout(0.02)
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue  # taken: idle until its header deadline
            raw = _parse(data)
            assert (raw.status, raw.headers.get("retry-after")) == (503, "1"), data
            refused += 1
        # 4 per address in each of the 2 workers: 8 taken at most, 4 at least (one worker took them all)
        assert 12 <= refused <= 16
    finally:
        for sock in socks:
            sock.close()
    time.sleep(0.3)
    srv.assert_normal(source="127.0.0.200")  # closed connections no longer count


def test_malformed_http_gets_a_typed_answer_not_an_html_page(server: tuple[Served, str]) -> None:
    srv, _ = server
    cases = [
        (b"GARBAGE\r\n\r\n", 400, "text/plain"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "text/plain"),
        (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nX-Big: "
         + b"b" * 40000 + b"\r\n\r\n", 500, "text/xml"),
        (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/soap+xml\r\n"
         + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 500, "application/soap+xml"),
        (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
         b"Content-Length: 9999999999999\r\n\r\n", 500, "text/xml"),
        (b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", 400, "text/plain"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, "text/plain"),
    ]
    for request, status, content_type in cases:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        raw = _parse(data)
        assert (raw.status, raw.content_type.split(";")[0]) == (status, content_type), (request[:60], data[:300])
        assert b"<html" not in raw.body.lower()
        if status == 500:
            assert fault_of(raw.xml())[1] in ("Client.InvalidRequest", "Client.RequestTooLarge")
        srv.assert_normal()


def _front_records(url: str, source: str) -> list[tuple[str, str, str | None]]:
    """The front's audit records (operation, outcome, account) from ``source``, oldest first."""
    engine = make_engine(url)
    try:
        e = s.audit_event
        with engine.connect() as conn:
            rows = conn.execute(select(e.c.operation, e.c.outcome, e.c.account).where(e.c.face == "http-front")
                                .where(e.c.source == source).order_by(e.c.id)).all()
        return [(r[0], r[1], r[2]) for r in rows]
    finally:
        engine.dispose()


def _wait_for_records(url: str, source: str) -> list[tuple[str, str, str | None]]:
    deadline = time.monotonic() + 5  # the batched audit writer commits within 50 ms
    while not _front_records(url, source) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # a second record, if one were (wrongly) written, would be committed by now
    return _front_records(url, source)


def test_the_fronts_refusals_are_audited_once_with_the_client_address(server: tuple[Served, str]) -> None:
    """Issue 13, item 8: a refusal the front makes before any face sees the request writes one audit record
    (face http-front) with the outcome, the path when read, the attempted Basic account when the headers
    were read, and the client's address."""
    srv, url = server
    auth = b"Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode())
    slow = SlowClients(srv.port, 1, f"POST {PATH} HTTP/1.1\r\nHost: x\r\n".encode() + b"Authorization: " + auth
                       + b"\r\nX-Slow: ", first_address=230)
    cases = [("127.0.0.231", b"GARBAGE\r\n\r\n", 400),
             ("127.0.0.232", b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth
              + b"\r\nContent-Length: 9999999999999\r\n\r\n", 413)]
    for source, request, status in cases:
        with socket.socket() as sock:
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", srv.port))
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert _parse(data).status == status, data[:300]
    assert _parse(slow.answers(timeout=6)[0][0]).status == 408
    assert _wait_for_records(url, "127.0.0.230") == [(PATH, "408 header timeout", None)]  # headers unread
    assert _wait_for_records(url, "127.0.0.231") == [("?", "400 malformed", None)]
    assert _wait_for_records(url, "127.0.0.232") == [(PATH, "413 body too large", USER)]
    srv.assert_normal()


def test_the_runner_serves_through_the_front(tmp_path: Path) -> None:
    from server.runner import GUNICORN_OPTIONS

    assert GUNICORN_OPTIONS["worker_class"] == "server.front.worker.FrontWorker"


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_tls_is_served_and_a_stalled_handshake_is_cut_off(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    settings = dict(HTTP, tls_cert=str(cert), tls_key=str(key))
    with served(f"sqlite:///{tmp_path / 'store.sqlite'}", tmp_path, settings, workers=1, tls=context) as srv:
        srv.assert_normal()
        stalled = SlowClients(srv.port, 4, b"\x16\x03\x01", b"", first_address=150)  # a handshake that stops
        srv.assert_normal()
        for answer, ended in stalled.answers(timeout=6):
            assert b"HTTP" not in answer  # no plaintext answer to a TLS client
            assert ended <= 5.0  # header_timeout bounds the handshake too
        srv.assert_normal()
        assert "Traceback" not in srv.stop()


def test_a_large_upload_waits_on_disk_and_a_large_answer_follows_the_reader(server: tuple[Served, str]) -> None:
    """A Filematch file over http.spool_threshold (1 MiB) reaches the face whole through the front's temporary
    file; its multi-MB answer is written as the client reads it (the front's flow control)."""
    import requests

    srv, _ = server
    rows = 60_000
    lines = ["ref;number;given;family;birth"] + [f"R{i:05d};{srv.pop.ordinary};;;" for i in range(rows)]
    upload = ("\n".join(lines) + "\n").encode()
    assert len(upload) > 1024 * 1024
    base = f"http://127.0.0.1:{srv.port}/filematch/v1/jobs"
    auth = (USER, PASSWORD)
    submitted = requests.post(base, auth=auth, files={"file": ("big.csv", upload)}, data={"format": "csv"},
                              timeout=60)
    assert submitted.status_code in (200, 201, 202), submitted.text[:300]
    job = submitted.json()
    assert job["records"] == rows
    deadline = time.monotonic() + 120
    while requests.get(f"{base}/{job['job']}", auth=auth, timeout=10).json()["status"] != "done":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    with requests.get(f"{base}/{job['job']}/result", auth=auth, timeout=60, stream=True) as answer:
        assert answer.status_code == 200
        received = b""
        for chunk in answer.iter_content(16384):  # a slow-ish reader: the server must wait, not buffer
            received += chunk
    washed = received.decode().splitlines()
    assert len(washed) == rows + 1 and all(line.split(";")[1] == "UNCHANGED" for line in washed[1:])
    srv.assert_normal()


def test_chunked_bodies_and_expect_100_continue_reach_the_face_whole(server: tuple[Served, str]) -> None:
    srv, _ = server
    body = envelope("1.1", f"<p:getPerson><p:personnummer>{srv.pop.ordinary}</p:personnummer></p:getPerson>")
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode())
    head = (f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n").encode() + \
        b"Authorization: Basic " + auth + b"\r\nConnection: close\r\n"
    half = len(body) // 2
    chunked = (head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % half + body[:half] + b"\r\n"
               + b"%x\r\n" % (len(body) - half) + body[half:] + b"\r\n0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(chunked)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    raw = _parse(data)
    assert raw.status == 200 and b"getPersonResponse" in raw.body, data[:300]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(head + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert _parse(data).status == 200 and b"getPersonResponse" in data


def test_keep_alive_pipelining_and_no_traceback(server: tuple[Served, str]) -> None:
    """Last of the module: it stops the served process."""
    srv, url = server
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
        data = b""
        while data.count(b'"status": "ok"') < 3:
            data += sock.recv(65536)
    assert len(re.findall(rb"HTTP/1.1 200 OK\r\n", data)) == 3
    time.sleep(1.0)  # the batched audit writer commits within 50 ms: the earlier cases' records are in
    calls_before = _audited(url)
    for _ in range(3):
        srv.assert_normal()
    log = srv.stop()  # SIGTERM: gunicorn's worker exit flushes the batched audit records
    assert srv.proc.returncode == 0, log[-2000:]
    assert "Traceback" not in log, log[-4000:]
    assert _audited(url) == calls_before + 3


def _audited(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(s.audit_event)
                             .where(s.audit_event.c.operation == "getPerson")).scalar_one()
        return int(n)
    finally:
        engine.dispose()
