"""Make the shipped example corpus (docs/replay-corpus/) from the demo store: ``pregbridge replay-make-corpus``.

Steps, all deterministic: generate the synthetic population (``generate_population(dir, 300, seed=11)``),
load it into a fresh SQLite store, add an account with the ``full`` profile, start pregbridge as real
processes on free loopback ports (``serve`` and ``listen-hl7`` with ``[hl7] peers`` mapping 127.0.0.1 to
the account), put the recorders of :mod:`server.replay.recorder` in front of them, and send the
cases of :func:`soap_requests` and :func:`hl7_requests` through the recorders: PREG over SOAP 1.1 and
1.2 (ping, getPerson, getPersons, searchPerson, getAdresses, a NotFound and an InvalidIdentifier
fault), AR (Ping, GetCommunicationPartyDetails for an organisation and for a service, SOAP 1.1 and
1.2), and MLLP (QBP^Q23 PIX, QBP^Q22 PDQ, QRY^A19). The persons and parties asked for are picked from
the generated files by fixed rules, request ids are fixed, and the values the default ignore rules name
(ping's ``tidspunkt``, reply MSH-7 and MSH-10) are pinned to fixed placeholders after recording, so
running this again writes the same bytes: CI regenerates the corpus and compares.

:func:`demo_servers` (the same store and processes without the recording) is what the end-to-end test
and .ci/replay.sh replay against; the account's name in the corpus is ``epj`` and its credentials are
passed to the runner through ``PREGBRIDGE_REPLAY_ACCOUNT_EPJ_USERNAME``/``…_PASSWORD``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lxml import etree

from server.hl7.framing import MllpFramer, frame
from server.replay.compare_hl7 import DEFAULT_HL7_IGNORES, parse_ignore
from server.replay.compare_xml import DEFAULT_XML_IGNORES, NAMESPACES, parse_xml
from server.replay.corpus import Case, Corpus
from server.replay.recorder import HttpRecorder, MllpRecorder
from store import identity

__all__ = ["ACCOUNT", "PERSONS", "SEED", "DemoServers", "demo_servers", "hl7_requests", "make_corpus",
           "soap_requests"]

PERSONS, SEED = 300, 11
ACCOUNT = "epj"  # the account's name in the corpus; its credentials come from secrets
USERNAME = "replay-epj"
ROOT = Path(__file__).resolve().parents[2]
PREG_PATH = "/preg/v1/Personregister"
PREG_NS = NAMESPACES["preg"]
CP = NAMESPACES["cp"]
SOAP = {"1.1": NAMESPACES["soap11"], "1.2": NAMESPACES["soap12"]}
CTYPE = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}
PINNED_XML = {"tidspunkt": "2026-11-20T12:00:00+00:00", "ServerTime": "2026-11-20T12:00:00Z"}
PINNED_HL7 = {"MSH-7": "20261120120000", "MSH-10": "PINNED"}
_CORPUS_FILES = ("*.request.xml", "*.response.xml", "*.request.hl7", "*.response.hl7", "manifest.json")


@dataclass(frozen=True, slots=True)
class DemoServers:
    url: str  # http://127.0.0.1:PORT
    hl7: str  # 127.0.0.1:PORT
    username: str
    password: str
    population: Path

    def env(self) -> dict[str, str]:
        """The environment that gives the runner the ``epj`` account's credentials."""
        return {"PREGBRIDGE_REPLAY_ACCOUNT_EPJ_USERNAME": self.username,
                "PREGBRIDGE_REPLAY_ACCOUNT_EPJ_PASSWORD": self.password}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Any, proc: subprocess.Popen[bytes], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            check()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode} before it answered") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer within {seconds:g} s") from None
            time.sleep(0.1)


def build_demo_store(data_dir: Path, password: str) -> Path:
    """Population (300 persons, seed 11) → fresh SQLite store in ``data_dir`` with the account; its config file."""
    from server.bootstrap import accounts_of, build_engine
    from server.config import Settings, StoreSettings
    from store.loading import load_population
    from store.synthetic import generate_population

    data_dir.mkdir(parents=True, exist_ok=True)
    pop = data_dir / "population"
    generate_population(pop, PERSONS, SEED)
    settings = Settings(store=StoreSettings(data_dir=data_dir))
    engine = build_engine(settings)
    try:
        load_population(engine, pop)
        accounts_of(settings, engine).add(USERNAME, password, "full")
    finally:
        engine.dispose()
    config = data_dir / "pregbridge.toml"
    config.write_text(f'[hl7]\npeer_match = "address"\n[hl7.peers]\n"127.0.0.1" = "{USERNAME}"\n', encoding="utf-8")
    return config


@contextlib.contextmanager
def demo_servers(workdir: Path | None = None) -> Iterator[DemoServers]:
    """The demo store served by ``pregbridge serve`` and ``pregbridge listen-hl7`` (real processes, loopback)."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pregbridge-replay-")))
        password = secrets.token_urlsafe(18)
        config = build_demo_store(workdir, password)
        http_port, hl7_port = _free_port(), _free_port()
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        base = [sys.executable, "-m", "server", "--config", str(config), "--data-dir", str(workdir)]
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for args in (["serve", "--host", "127.0.0.1", "--port", str(http_port), "--workers", "1"],
                         ["listen-hl7", "--host", "127.0.0.1", "--port", str(hl7_port)]):
                log = (workdir / f"{args[0]}.log").open("wb")
                stack.callback(log.close)
                procs.append(subprocess.Popen([*base, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))

            def health() -> None:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=2) as r:
                    r.read()

            _wait(health, procs[0], "pregbridge serve")
            _wait(lambda: socket.create_connection(("127.0.0.1", hl7_port), timeout=2).close(), procs[1],
                  "pregbridge listen-hl7")
            yield DemoServers(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{hl7_port}", USERNAME, password,
                              workdir / "population")
        finally:
            for p in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)


# --- the cases -------------------------------------------------------------------------------------------


def _persons(pop: Path) -> list[dict[str, Any]]:
    with (pop / "persons.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _current(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((i for i in items if i.get("current")), None)


def _fnr(p: dict[str, Any]) -> str | None:
    ident = next((i for i in p["identifiers"] if i["current"] and i["kind"] == "fnr"), None)
    return str(ident["number"]) if ident else None


@dataclass(frozen=True, slots=True)
class Picks:
    first: dict[str, Any]  # an ordinary resident with a fødselsnummer
    second: dict[str, Any]
    unknown: str  # a valid fødselsnummer nobody has
    organisation: int
    service: int


def pick(pop: Path) -> Picks:
    persons = _persons(pop)
    residents = [p for p in persons if _fnr(p) and (_current(p["status"]) or {}).get("value") == "bosatt"
                 and (_current(p["protection"]) or {}).get("level", "ugradert") == "ugradert"
                 and _current(p["names"]) and _current(p["birth"])]
    known = {i["number"] for p in persons for i in p["identifiers"]}
    rng = random.Random(SEED)
    unknown = identity.generate(identity.IdKind.FNR, dt.date(1971, 5, 17), rng)
    while unknown in known:
        unknown = identity.generate(identity.IdKind.FNR, dt.date(1971, 5, 17), rng)
    parties = [json.loads(line) for line in (pop / "ar.jsonl").read_text(encoding="utf-8").splitlines() if line]
    org = next(p["herId"] for p in parties if p["type"] == "Organization")
    service = next(p["herId"] for p in parties if p["type"] == "Service")
    return Picks(residents[0], residents[1], unknown, int(org), int(service))


@dataclass(frozen=True, slots=True)
class SoapRequest:
    name: str
    path: str
    version: str
    action: str | None
    body: bytes


def _preg(version: str, operation: str, inner: str = "") -> SoapRequest:
    xml = (f'<soap:Envelope xmlns:soap="{SOAP[version]}" xmlns:preg="{PREG_NS}">\n  <soap:Header/>\n  <soap:Body>\n'
           f"    <preg:{operation}>{inner}</preg:{operation}>\n  </soap:Body>\n</soap:Envelope>\n")
    return SoapRequest(operation, PREG_PATH, version, f'"{operation}"' if version == "1.1" else None, xml.encode())


def _ar(version: str, operation: str, inner: str = "") -> SoapRequest:
    action = f"{CP}/ICommunicationPartyService/{operation}"
    header = "<soap:Header/>"
    if version == "1.2":
        message_id = uuid.uuid5(uuid.NAMESPACE_URL, f"pregbridge-replay:{operation}:{inner}")
        header = (f'<soap:Header><a:Action soap:mustUnderstand="1">{action}</a:Action>'
                  f"<a:MessageID>urn:uuid:{message_id}</a:MessageID></soap:Header>")
    xml = (f'<soap:Envelope xmlns:soap="{SOAP[version]}" xmlns:a="{NAMESPACES["wsa"]}">{header}<soap:Body>'
           f'<{operation} xmlns="{CP}">{inner}</{operation}></soap:Body></soap:Envelope>\n')
    return SoapRequest(f"AR-{operation}", "/v1/AR/Basic" if version == "1.1" else "/v1/AR", version,
                       f'"{action}"' if version == "1.1" else None, xml.encode())


def soap_requests(p: Picks) -> list[SoapRequest]:
    def num(n: str) -> str:
        return f"<preg:personnummer>{n}</preg:personnummer>"

    first, second = _fnr(p.first), _fnr(p.second)
    assert first and second
    bad_check = first[:10] + str((int(first[10]) + 1) % 10)  # the last check digit is wrong
    name = _current(p.first["names"]) or {}
    born = (_current(p.first["birth"]) or {}).get("date")
    out: list[SoapRequest] = []
    for v in ("1.1", "1.2"):
        cases = [
            ("preg-ping", _preg(v, "ping")),
            ("preg-getPerson", _preg(v, "getPerson", num(first))),
            ("preg-getPersons", _preg(v, "getPersons", num(first) + num(second) + num(p.unknown) + num(bad_check))),
            ("preg-searchPerson", _preg(v, "searchPerson", f"<preg:etternavn>{name.get('family')}</preg:etternavn>"
                                                           f"<preg:fodselsdato>{born}</preg:fodselsdato>")),
            ("preg-getAdresses", _preg(v, "getAdresses", num(second))),
            ("preg-fault-NotFound", _preg(v, "getPerson", num(p.unknown))),
            ("preg-fault-InvalidIdentifier", _preg(v, "getPerson", num(bad_check))),
            ("ar-Ping", _ar(v, "Ping")),
            ("ar-GetCommunicationPartyDetails-organisation",
             _ar(v, "GetCommunicationPartyDetails", f"<herId>{p.organisation}</herId>")),
            ("ar-GetCommunicationPartyDetails-service",
             _ar(v, "GetCommunicationPartyDetails", f"<herId>{p.service}</herId>")),
        ]
        out += [replace(req, name=f"{label}-soap{v.replace('.', '')}") for label, req in cases]
    return out


HL7_NAMES = ("hl7-pix-QBP_Q23", "hl7-pdq-QBP_Q22", "hl7-QRY_A19", "hl7-pix-unknown-QBP_Q23")


def hl7_requests(p: Picks) -> list[bytes]:
    first = _fnr(p.first)
    name = _current(p.first["names"]) or {}
    born = str((_current(p.first["birth"]) or {}).get("date", "")).replace("-", "")
    msh = "MSH|^~\\&|EPJ|REPLAY|PREGBRIDGE|NHN|20261120120000||{type}|{id}|P|{version}|||||NOR|UNICODE UTF-8"
    messages = [
        [msh.format(type="QBP^Q23^QBP_Q21", id="PIX-1", version="2.5"),
         f"QPD|IHE PIX Query|pix-1|{first}^^^FNR&2.16.578.1.12.4.1.4.1&ISO^NNNOR", "RCP|I"],
        [msh.format(type="QBP^Q22^QBP_Q21", id="PDQ-1", version="2.5"),
         f"QPD|IHE PDQ Query|pdq-1|@PID.5.1^{name.get('family')}~@PID.7^{born}", "RCP|I|10^RD"],
        [msh.format(type="QRY^A19", id="A19-1", version="2.3").rsplit("|NOR|", 1)[0],
         f"QRD|20261120120000|R|I|q-a19-1|||1^RD|{first}|DEM"],
        [msh.format(type="QBP^Q23^QBP_Q21", id="PIX-2", version="2.5"),
         f"QPD|IHE PIX Query|pix-2|{p.unknown}^^^FNR", "RCP|I"],
    ]
    return [("\r".join(m) + "\r").encode("utf-8") for m in messages]


# --- recording -------------------------------------------------------------------------------------------


def _post(url: str, req: SoapRequest, authorization: str) -> None:
    headers = {"Content-Type": CTYPE[req.version], "Authorization": authorization}
    if req.action is not None:
        headers["SOAPAction"] = req.action
    request = urllib.request.Request(url + req.path, data=req.body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            r.read()
    except urllib.error.HTTPError as exc:  # a SOAP fault is HTTP 500
        exc.read()
        exc.close()


def _mllp(port: int, messages: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        framer = MllpFramer()
        for m in messages:
            s.sendall(frame(m))
            got: list[bytes] = []
            while not got:
                data = s.recv(1 << 16)
                if not data:
                    raise RuntimeError("the MLLP recorder closed the connection")
                got += framer.feed(data)


def _pin_xml(data: bytes) -> bytes:
    root = parse_xml(data)
    changed = False
    for xpath in DEFAULT_XML_IGNORES:
        found = root.xpath(xpath, namespaces=NAMESPACES)
        for el in found if isinstance(found, list) else []:
            local = el.tag.rsplit("}", 1)[-1] if isinstance(el, etree._Element) and isinstance(el.tag, str) else ""
            if local in PINNED_XML and len(el) == 0 and el.text:
                el.text = PINNED_XML[local]
                changed = True
    if not changed:
        return data
    return bytes(etree.tostring(root, encoding="utf-8", xml_declaration=data.lstrip().startswith(b"<?xml")))


def _pin_hl7(data: bytes) -> bytes:
    fields = {parse_ignore(k).field: v for k, v in PINNED_HL7.items()}
    out = []
    for seg in data.split(b"\r"):
        if seg.startswith(b"MSH") and len(seg) > 3:
            parts = seg.split(seg[3:4])
            for n, value in fields.items():
                if len(parts) >= n:
                    parts[n - 1] = value.encode("ascii")
            seg = seg[3:4].join(parts)
        out.append(seg)
    return b"\r".join(out)


def _rename(corpus: Corpus, case: Case, new_id: str) -> Case:
    request, response = case.request.replace(case.id, new_id, 1), (case.response or "").replace(case.id, new_id, 1)
    corpus.path(case.request).rename(corpus.path(request))
    if case.response:
        corpus.path(case.response).rename(corpus.path(response))
    return replace(case, id=new_id, request=request, response=response or None)


def make_corpus(out_dir: Path, workdir: Path | None = None) -> Corpus:
    """Record the example corpus into ``out_dir`` (its previous corpus files are replaced)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        for pattern in _CORPUS_FILES:
            for f in out_dir.glob(pattern):
                f.unlink()
    corpus = Corpus(out_dir, description=(
        f"pregbridge example corpus: the demo store (generate_population(dir, {PERSONS}, seed={SEED}), loaded "
        f"without its change feed) recorded by `pregbridge replay-make-corpus`. Account 'epj' has the 'full' "
        f"profile; volatile values named by the ignore rules are pinned."),
        xml_ignores=list(DEFAULT_XML_IGNORES), hl7_ignores=list(DEFAULT_HL7_IGNORES))
    with demo_servers(workdir) as demo:
        picks = pick(demo.population)
        http_rec = HttpRecorder(demo.url, corpus, account=ACCOUNT)
        _, http_port = http_rec.start()
        mllp_rec = MllpRecorder(demo.hl7, corpus, account=ACCOUNT)
        mllp_port = mllp_rec.run_in_thread()
        try:
            auth = "Basic " + base64.b64encode(f"{demo.username}:{demo.password}".encode()).decode()
            for req in soap_requests(picks):
                _post(f"http://127.0.0.1:{http_port}", req, auth)
            _mllp(mllp_port, hl7_requests(picks))
        finally:
            http_rec.stop()
            mllp_rec.stop()
    names = [r.name for r in soap_requests(picks)] + list(HL7_NAMES)
    if len(names) != len(corpus.cases):
        raise RuntimeError(f"expected {len(names)} recorded cases, got {len(corpus.cases)}")
    for i, (case, name) in enumerate(zip(list(corpus.cases), names, strict=True)):
        corpus.cases[i] = case = _rename(corpus, case, f"{i + 1:03d}-{name}")
        if case.response:
            path = corpus.path(case.response)
            pinned = _pin_xml(path.read_bytes()) if case.face == "soap" else _pin_hl7(path.read_bytes())
            path.write_bytes(pinned)
        if case.face == "hl7":  # the recorded upstream's port is random; the runner's --hl7-target decides
            corpus.cases[i] = replace(case, endpoint="127.0.0.1:2575")
    corpus.save()
    return corpus
