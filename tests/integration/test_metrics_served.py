"""Metrics and logs end to end: a real ``pregbridge serve`` (gunicorn, two workers) and a real ``listen-hl7``
over loopback, with ``[log] format = "json"``; calls on PREG, AR, Filematch and HL7, then ``/metrics`` scraped
and the log read (docs/metrics.md).

What is held: the request counters are the sum over both workers (the calls were answered by two processes,
as the log's ``process`` fields show, and any scrape counts them all); labels carry only face, operation
and outcome, with a client's made-up operation counted as ``other``; no identity number or name of the
store appears in /metrics or in the log, though the calls asked for them and a refused call put one in
its SOAPAction, its user name and its X-Request-Id; every log line is one JSON object, and every call has
its request line (face, operation, account, outcome, duration, request id); /health names the version,
the backend and each face.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import requests

from server.access import AccountStore
from server.hl7.framing import MllpFramer, frame
from store.engine import make_engine, migrate
from tests.hostile.served import PASSWORD, USER, Served
from tests.integration.preg_support import CT11, PATH, REPO, envelope, populate

FILEMATCH = Path(__file__).resolve().parents[1] / "fixtures" / "filematch"
CP = "http://register.nhn.no/CommunicationParty"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NAMES = ("Kari", "Nordmann", "Karimi", "Haugen", "Fjellheim", "Kowalska")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a Prometheus text exposition: (name, labels) → value."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, line
        labels = frozenset(tuple(p.split("=", 1)) for p in re.findall(r'[a-z_]+="[^"]*"', m[2] or ""))
        out[(m[1], frozenset((k, v.strip('"')) for k, v in labels))] = float(m[3])
    return out


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is JSON: a text line would raise here
    assert all(isinstance(p, dict) and {"time", "level", "logger", "message"} <= set(p) for p in parsed)
    return parsed


@contextlib.contextmanager
def serving(db_url: str, work: Path, config: str) -> Iterator[Served]:
    engine = make_engine(db_url)
    migrate(engine)
    pop = populate(engine, work)
    AccountStore(engine).add(USER, PASSWORD, "full")
    engine.dispose()
    (work / "pregbridge.toml").write_text(config, encoding="utf-8")
    port = _free_port()
    log_path = work / "serve.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | {"PYTHONWARNINGS": "ignore"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--config", str(work / "pregbridge.toml"), "--database-url", db_url,
             "--data-dir", str(work), "serve", "--port", str(port), "--workers", "2"],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    server = Served(port, pop, proc, log_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.request("GET", "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("pregbridge serve did not start: " + server.log()[-3000:])
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _request_lines(log: str) -> list[dict[str, object]]:
    return [p for p in json_lines(log) if p["logger"] == "pregbridge.request"]


def _wait_for_lines(server: Served, n: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while len(lines := _request_lines(server.log())) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    return lines


def test_served_metrics_are_summed_over_workers_and_hold_no_patient_data(db_url: str, tmp_path: Path) -> None:
    config = '[log]\nformat = "json"\n[metrics]\ncache_seconds = 0\n'
    with serving(db_url, tmp_path, config) as server:
        pop = server.pop
        # PREG getPerson, each on its own connection, until both workers have answered some (their request
        # lines name their process)
        calls = 0
        while calls < 200:
            status, answer = server.get_person()
            assert status == 200 and b"getPersonResponse" in answer
            calls += 1
            if calls >= 10 and len({p["process"] for p in _wait_for_lines(server, calls)}) >= 2:
                break
        assert len({p["process"] for p in _request_lines(server.log())}) == 2, "one worker answered every call"
        # refused PREG calls: a fødselsnummer as user name and X-Request-Id; as SOAPAction and operation
        body = envelope("1.1", f"<p:getPerson><p:personnummer>{pop.history}</p:personnummer></p:getPerson>")
        status, _, _ = server.request("POST", PATH, body, {
            "Content-Type": CT11, "X-Request-Id": pop.klient, "Authorization": _basic(pop.strengt, "wrong-password")})
        assert status == 500
        made_up = f"p:x{pop.fortrolig}"
        body = envelope("1.1", f"<{made_up}><p:personnummer>{pop.history}</p:personnummer></{made_up}>")
        status, _, _ = server.request("POST", PATH, body, {
            "Content-Type": CT11, "SOAPAction": f'"{pop.fortrolig}"', "Authorization": _basic(USER, PASSWORD)})
        assert status == 500
        # AR Ping
        ping = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><Ping xmlns="{CP}"/></s:Body></s:Envelope>').encode()
        status, _, answer = server.request("POST", "/v1/AR/Basic", ping, {
            "Content-Type": "text/xml; charset=utf-8", "Authorization": _basic(USER, PASSWORD)})
        assert status == 200 and b"Pong" in answer
        # the HTTP front's own refusal: a malformed request, its path a fødselsnummer
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"GET /{pop.dnr} HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 400")
        # Filematch: a job of 15 records, washed by a worker's washer thread
        base = f"http://127.0.0.1:{server.port}/filematch/v1"
        with (FILEMATCH / "wash-lf.csv").open("rb") as f:
            r = requests.post(f"{base}/jobs", auth=(USER, PASSWORD), files={"file": ("register.csv", f)},
                              data={"format": "csv"}, timeout=10)
        assert r.status_code == 202, r.text
        job = r.json()["job"]
        deadline = time.monotonic() + 30
        while requests.get(f"{base}/jobs/{job}", auth=(USER, PASSWORD), timeout=10).json()["status"] != "done":
            assert time.monotonic() < deadline, "the Filematch job was not washed"
            time.sleep(0.1)
        # scrape: whichever worker answers, it counts both workers' calls
        persons = _persons(db_url)
        for _ in range(4):
            status, headers, text = server.request("GET", "/metrics")
            assert status == 200 and headers["content-type"].startswith("text/plain")
            found = samples(text.decode())
            assert value(found, "pregbridge_requests_total", face="soap-preg", operation="getPerson",
                         outcome="ok") == calls
            assert value(found, "pregbridge_request_duration_seconds_count", face="soap-preg",
                         operation="getPerson") == calls + 1
            assert value(found, "pregbridge_requests_total", face="soap-preg", operation="getPerson",
                         outcome="Client.Authentication") == 1
            assert sum(v for (name, ls), v in found.items() if name == "pregbridge_requests_total"
                       and ("operation", "other") in ls and ("face", "soap-preg") in ls) == 1
            assert value(found, "pregbridge_requests_total", face="soap-ar", operation="Ping", outcome="ok") == 1
            assert value(found, "pregbridge_requests_total", face="http-front", operation="other",
                         outcome="400 malformed") == 1
            assert value(found, "pregbridge_requests_total", face="filematch", operation="filematch.submit",
                         outcome="ok") == 1
            assert value(found, "pregbridge_requests_total", face="filematch", operation="filematch.status",
                         outcome="ok") >= 1
            assert value(found, "pregbridge_filematch_jobs", status="done") == 1
            assert value(found, "pregbridge_filematch_records", status="done") == 15
            assert value(found, "pregbridge_filematch_records_washed", status="done") == 15
            assert value(found, "pregbridge_store_persons") == persons
            assert value(found, "pregbridge_feed_position") == 4
            assert value(found, "pregbridge_store_up") == 1
            assert ("pregbridge_audit_queue_depth", frozenset()) in found
        backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
        assert value(found, "pregbridge_info", backend=backend, version=_version()) == 1
        # the labels: faces, operations and outcomes only
        labels = {k for name, ls in found for k, _ in ls if name.startswith("pregbridge_request")}
        assert labels == {"face", "operation", "outcome", "le"}
        # /health
        status, _, health = server.request("GET", "/health")
        info = json.loads(health)
        assert status == 200 and info["status"] == "ok" and info["backend"] == backend
        assert info["version"] == _version() and info["persons"] == persons and info["feedPosition"] == 4
        assert info["faces"]["soap-preg"] == [PATH] and info["faces"]["filematch"] == ["/filematch/v1"]
        assert set(info["faces"]) == {"soap-preg", "soap-ar", "soap-flr", "soap-hpr", "soap-krk", "filematch"}
        lines = _wait_for_lines(server, calls + 3)
        deadline = time.monotonic() + 10  # the washer's own record may follow the job's status by a moment
        while not any(p["operation"] == "filematch.wash" for p in lines) and time.monotonic() < deadline:
            time.sleep(0.1)
            lines = _request_lines(server.log())
    log = server.log()
    # no identity number and no name of the store, in /metrics or in the log
    numbers = [pop.ordinary, pop.history, pop.fortrolig, pop.klient, pop.strengt, pop.dnr, *pop.family]
    for secret in (*numbers, *NAMES):
        assert secret not in text.decode(), secret
        assert secret not in log, secret
    # the request lines: one per call, its fields structured
    preg = [p for p in lines if p["face"] == "soap-preg"]
    assert len([p for p in preg if p["operation"] == "getPerson" and p["outcome"] == "ok"]) == calls
    assert all(p["account"] == USER and isinstance(p["duration_ms"], float) and p["duration_ms"] > 0
               and re.fullmatch(r"[0-9a-f]{16}", str(p["request_id"])) for p in preg if p["outcome"] == "ok")
    refused = next(p for p in preg if p["outcome"] == "Client.Authentication")
    assert refused["request_id"] == "*" * 11 and refused["account"] == "*" * 11
    assert any(p["operation"] == "*" * 11 for p in preg)
    assert any(p["face"] == "soap-ar" and p["operation"] == "Ping" for p in lines)
    assert any(p["face"] == "http-front" and p["operation"] == "/" + "*" * 11 for p in lines)
    assert any(p["face"] == "filematch" and p["operation"] == "filematch.wash" for p in lines)
    # gunicorn's own lines come in the same format
    assert any(p["logger"] == "gunicorn.error" and "Booting worker" in str(p["message"]) for p in json_lines(log))


def _persons(db_url: str) -> int:
    from sqlalchemy import func, select

    from store import schema

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(schema.person)).scalar_one())
    finally:
        engine.dispose()


def _version() -> str:
    from importlib.metadata import version

    return version("pregbridge")


def test_metrics_can_be_turned_off_and_text_logs_stay_text(sqlite_url: str, tmp_path: Path) -> None:
    with serving(sqlite_url, tmp_path, "[metrics]\nenabled = false\n") as server:
        assert server.get_person()[0] == 200
        status, _, _ = server.request("GET", "/metrics")
        assert status == 404
        assert server.request("GET", "/health")[0] == 200
        deadline = time.monotonic() + 10
        while "pregbridge.request: request face=soap-preg operation=getPerson" not in server.log():
            assert time.monotonic() < deadline, server.log()[-2000:]
            time.sleep(0.1)
    assert re.search(r"^\S+ \S+ INFO pregbridge\.request: request face=soap-preg operation=getPerson "
                     rf"account={USER} outcome=ok duration_ms=[0-9.]+ request_id=[0-9a-f]{{16}}$", server.log(), re.M)


# -- the HL7 listener -------------------------------------------------------------------------------------


def _mllp(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(frame(payload))
        framer = MllpFramer()
        got: list[bytes] = []
        while not got:
            data = sock.recv(65536)
            assert data, "connection closed before the reply"
            got += framer.feed(data)
        return got[0]


def _hl7(mtype: str, control: str, *segments: str) -> bytes:
    msh = f"MSH|^~\\&|MIRTH|AHUS|PREGBRIDGE|NHN|20261121120000||{mtype}|{control}|P|2.5|||||NOR|UNICODE UTF-8"
    return ("\r".join([msh, *segments]) + "\r").encode()


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read().decode()


def test_hl7_listener_serves_health_and_metrics(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    pop = populate(engine, tmp_path)
    AccountStore(engine).add("mirth", PASSWORD, "full")
    engine.dispose()
    config = tmp_path / "pregbridge.toml"
    config.write_text('[log]\nformat = "json"\n[hl7]\npeer_match = "address"\n[hl7.peers]\n"127.0.0.1" = "mirth"\n',
                      encoding="utf-8")
    port, metrics_port = _free_port(), _free_port()
    log_path = tmp_path / "hl7.log"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | {"PYTHONWARNINGS": "ignore"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--config", str(config), "--database-url", db_url, "--data-dir",
             str(tmp_path), "listen-hl7", "--port", str(port), "--metrics-port", str(metrics_port)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{metrics_port}/health")
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.2)
        health = json.loads(body)
        assert status == 200 and health["status"] == "ok" and health["faces"] == {"hl7": [f"mllp://127.0.0.1:{port}"]}
        pix = _hl7("QBP^Q23^QBP_Q21", "C1", f"QPD|IHE PIX Query|t1|{pop.ordinary}^^^FNR", "RCP|I")
        for _ in range(3):
            assert b"MSA|AA|C1" in _mllp(port, pix)
        unknown = _mllp(port, _hl7(f"Z{pop.history[:2]}^{pop.history}", pop.history))
        assert b"MSA|AR|" in unknown
        status, text = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        found = samples(text)
        assert value(found, "pregbridge_requests_total", face="hl7", operation="QBP^Q23", outcome="AA") == 3
        assert value(found, "pregbridge_request_duration_seconds_count", face="hl7", operation="QBP^Q23") == 3
        assert value(found, "pregbridge_requests_total", face="hl7", operation="other", outcome="AR:200") == 1
        assert value(found, "pregbridge_store_persons") == _persons(db_url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    log_text = log_path.read_text(encoding="utf-8")
    for secret in (pop.ordinary, pop.history, *NAMES):
        assert secret not in text and secret not in log_text, secret
    lines = [p for p in json_lines(log_text) if p["logger"] == "pregbridge.request"]
    assert [(p["face"], p["operation"], p["account"], p["outcome"]) for p in lines] == [
        ("hl7", "QBP^Q23", "mirth", "AA")] * 3 + [("hl7", f"Z{pop.history[:2]}^" + "*" * 11, "mirth", "AR:200")]
    assert all(isinstance(p["duration_ms"], float) and re.fullmatch(r"[0-9a-f]{16}", str(p["request_id"]))
               for p in lines)
