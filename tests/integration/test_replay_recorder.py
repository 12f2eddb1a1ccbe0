"""The recording proxies over loopback: requests pass through unchanged, upstream failures are recorded as such,
MLLP pairs are recorded, and redaction is consistent (tests/integration, no pregbridge server needed)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import random
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from server.hl7.framing import MllpFramer, frame
from server.hl7.listener import MllpListener, Peer
from server.replay.corpus import Corpus
from server.replay.recorder import HttpRecorder, MllpRecorder, Redactor
from store import identity

FNR, OTHER = "17858026105", "02837594254"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
REQUEST = (f'<?xml version="1.0" encoding="ISO-8859-1"?>\r\n<s:Envelope xmlns:s="{SOAP11}" xmlns:p="urn:p">'
           f"<s:Body><p:getPerson>  <p:personnummer>{FNR}</p:personnummer>\t</p:getPerson></s:Body></s:Envelope>"
           ).encode("latin-1")
ANSWER = (f'<s:Envelope xmlns:s="{SOAP11}" xmlns:p="urn:p"><s:Body><p:getPersonResponse><p:personnummer>{FNR}'
          "</p:personnummer><p:navn><p:fornavn>Kari Åse</p:fornavn><p:etternavn>Ærøe</p:etternavn></p:navn>"
          "</p:getPersonResponse></s:Body></s:Envelope>").encode()
FAULT = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><s:Fault><faultcode>s:Client.NotFound</faultcode>'
         "<faultstring>no</faultstring></s:Fault></s:Body></s:Envelope>").encode()


class Upstream(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: Upstream
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
        status, ctype, answer = {
            "/fault": (500, "text/xml; charset=utf-8", FAULT),
            "/down": (503, "text/html", b"<html><body>maintenance</body></html>"),
        }.get(self.path.split("?")[0], (200, "text/xml; charset=utf-8", ANSWER))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture()
def upstream() -> Iterator[Upstream]:
    srv = Upstream(("127.0.0.1", 0), _Handler)
    srv.seen = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers.items()), r.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers.items()), exc.read()


def manifest(directory: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    return doc


def test_request_and_answer_pass_through_byte_for_byte(upstream: Upstream, tmp_path: Path) -> None:
    corpus = Corpus(tmp_path / "c")
    rec = HttpRecorder(f"http://127.0.0.1:{upstream.server_address[1]}", corpus)
    _, port = rec.start()
    try:
        auth = "Basic " + base64.b64encode(b"epj-dips:secret password 1").decode()
        headers = {"Content-Type": "text/xml; charset=ISO-8859-1", "SOAPAction": '"getPerson"', "Authorization": auth,
                   "X-Request-Id": "abc-1"}
        status, got_headers, answer = post(f"http://127.0.0.1:{port}/preg/v1/Personregister?x=1", REQUEST, headers)
    finally:
        rec.stop()
    seen = upstream.seen[0]
    assert seen["body"] == REQUEST and seen["path"] == "/preg/v1/Personregister?x=1"
    upstream_headers = {k.lower(): v for k, v in seen["headers"].items()}
    for key, value in headers.items():
        assert upstream_headers[key.lower()] == value
    assert status == 200 and answer == ANSWER and got_headers["X-Upstream"] == "yes"
    case = manifest(corpus.directory)["cases"][0]
    assert case["endpoint"] == "/preg/v1/Personregister" and case["soapVersion"] == "1.1"
    assert case["soapAction"] == '"getPerson"' and case["account"] == "epj-dips"
    assert case["expected"] == {"outcome": "answer", "status": 200}
    assert (corpus.directory / case["request"]).read_bytes() == REQUEST
    assert (corpus.directory / case["response"]).read_bytes() == ANSWER
    everything = b"".join(p.read_bytes() for p in corpus.directory.iterdir())
    assert b"secret password" not in everything and auth.encode() not in everything


def test_upstream_failures_are_recorded_as_such(upstream: Upstream, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    corpus = Corpus(tmp_path / "c")
    refused = HttpRecorder(f"http://127.0.0.1:{closed}", corpus, account="epj")
    _, port = refused.start()
    try:
        status, _, body = post(f"http://127.0.0.1:{port}/preg", REQUEST, {"Content-Type": "text/xml"})
    finally:
        refused.stop()
    assert status == 502 and b"connection refused" in body
    live = HttpRecorder(f"http://127.0.0.1:{upstream.server_address[1]}", corpus, account="epj")
    _, port = live.start()
    try:
        assert post(f"http://127.0.0.1:{port}/down", REQUEST, {"Content-Type": "text/xml"})[0] == 503
        assert post(f"http://127.0.0.1:{port}/fault", REQUEST, {"Content-Type": "application/soap+xml"})[0] == 500
    finally:
        live.stop()
    cases = manifest(corpus.directory)["cases"]
    assert cases[0]["expected"] == {"outcome": "upstreamError", "error": "connection refused"}
    assert "response" not in cases[0]
    assert cases[1]["expected"] == {"outcome": "upstreamError", "status": 503,
                                    "error": "HTTP 503 without a SOAP envelope"}
    assert cases[2]["expected"] == {"outcome": "fault", "status": 500} and cases[2]["soapVersion"] == "1.2"
    assert [c.id for c in Corpus.load(corpus.directory).cases] == [c["id"] for c in cases]


def ack(message: bytes, code: str) -> bytes:
    control = message.split(b"\r")[0].split(b"|")[9]
    return b"MSH|^~\\&|UP|X|||20260101||ACK^Q23^ACK|R" + control + b"|P|2.5\rMSA|" + code.encode() + b"|" + control


def test_mllp_pairs_are_recorded_in_order(tmp_path: Path) -> None:
    def handler(message: bytes, peer: Peer) -> bytes:
        if b"|AL|AL" in message:  # enhanced mode: commit ACK, then the application response
            return frame(ack(message, "CA")) + frame(ack(message, "AA"))
        return frame(ack(message, "AA"))

    loop = asyncio.new_event_loop()
    listener = MllpListener(handler, idle_timeout=5)
    loop.run_until_complete(listener.start("127.0.0.1", 0))
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    corpus = Corpus(tmp_path / "c")
    rec = MllpRecorder(f"127.0.0.1:{listener.port}", corpus, account="broker", commit_wait=2)
    port = rec.run_in_thread()
    first = b"MSH|^~\\&|EPJ|X|PB|NHN|20260101||QBP^Q23^QBP_Q21|C1|P|2.5\rQPD|IHE PIX Query|t1|" + FNR.encode() + b"\r"
    second = first.replace(b"|C1|P|2.5", b"|C2|P|2.5|||AL|AL")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            framer, got = MllpFramer(), list[bytes]()
            s.sendall(frame(first) + frame(second))
            while len(got) < 3:
                got += framer.feed(s.recv(65536))
    finally:
        rec.stop()

        async def close() -> None:
            listener.close_connections()
            assert listener.server is not None
            listener.server.close()
            await asyncio.sleep(0.05)
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        t.join(5)
        loop.close()
    assert got == [ack(first, "AA"), ack(second, "CA"), ack(second, "AA")]
    cases = manifest(corpus.directory)["cases"]
    assert [c["face"] for c in cases] == ["hl7", "hl7"] and cases[0]["account"] == "broker"
    assert (corpus.directory / cases[0]["request"]).read_bytes() == first
    assert (corpus.directory / cases[0]["response"]).read_bytes() == ack(first, "AA") + b"\r"
    both = ack(second, "CA") + b"\r" + ack(second, "AA") + b"\r"
    assert (corpus.directory / cases[1]["response"]).read_bytes() == both


def test_mllp_upstream_refused_is_recorded(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    corpus = Corpus(tmp_path / "c")
    rec = MllpRecorder(f"127.0.0.1:{closed}", corpus)
    port = rec.run_in_thread()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(frame(b"MSH|^~\\&|A|B|||1||QRY^A19|Q1|P|2.3\r"))
            assert s.recv(100) == b""  # closed: MLLP cannot say that the upstream failed
    finally:
        rec.stop()
    case = manifest(corpus.directory)["cases"][0]
    assert case["expected"] == {"outcome": "upstreamError", "error": "connection refused"}


def test_redaction_is_consistent_valid_and_of_the_same_kind() -> None:
    r = Redactor(key=b"test-key")
    dnr = identity.generate(identity.IdKind.DNR, datetime.date(1980, 5, 17), random.Random(1))
    for number in (FNR, OTHER, dnr):
        fake = r.number(number)
        assert fake != number and r.number(number) == fake
        parsed, original = identity.parse(fake), identity.parse(number)
        assert parsed.kind == original.kind and int(fake[8]) % 2 == int(number[8]) % 2
    assert Redactor(key=b"test-key").number(FNR) == r.number(FNR)  # same key, same pseudonym
    assert r.number("12345678901") == "12345678901"  # not an identity number: unchanged
    xml = r.xml(ANSWER).decode()
    assert FNR not in xml and r.number(FNR) in xml
    assert "Kari" not in xml and "Ærøe" not in xml and "<p:fornavn>" in xml
    hl7 = r.hl7(("MSH|^~\\&|A|B|||1||RSP^K22|1|P|2.5||||||UNICODE UTF-8\rQPD|Q|t|@PID.5.1^Ærøe~@PID.7^1975\r"
                 f"PID|1||{FNR}^^^FNR||Ærøe^Kari^^^^^L||19750302|F\r").encode()).decode()
    assert FNR not in hl7 and "Ærøe" not in hl7 and "Kari" not in hl7
    family = r.name("Ærøe", family=True)
    assert f"@PID.5.1^{family}~" in hl7 and f"|{family}^{r.name('Kari', family=False)}^^^^^L|" in hl7


def test_recorder_redacts_what_it_records_not_what_it_forwards(upstream: Upstream, tmp_path: Path) -> None:
    corpus = Corpus(tmp_path / "c")
    redactor = Redactor(key=b"k")
    rec = HttpRecorder(f"http://127.0.0.1:{upstream.server_address[1]}", corpus, redactor=redactor)
    _, port = rec.start()
    try:
        _, _, answer = post(f"http://127.0.0.1:{port}/preg", REQUEST, {"Content-Type": "text/xml; charset=ISO-8859-1"})
    finally:
        rec.stop()
    assert upstream.seen[0]["body"] == REQUEST and answer == ANSWER
    case = manifest(corpus.directory)["cases"][0]
    request = (corpus.directory / case["request"]).read_bytes()
    response = (corpus.directory / case["response"]).read_bytes()
    fake = redactor.number(FNR).encode()
    assert FNR.encode() not in request + response and fake in request and fake in response
    assert request.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>\r\n')
