"""The HL7 face over a real MLLP listener on loopback, on SQLite and PostgreSQL.

One listener per backend and module (a thread running the asyncio server), driven by python-hl7's
``hl7.client.MLLPClient`` and by raw sockets: every message type, persistent and concurrent
connections, both acknowledgement modes, charsets, masking per profile, audit, and hostile input.
Replies are checked with python-hl7 and parsed by hl7apy (well-formed HL7).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import hl7
import pytest
from hl7.client import MLLPClient
from hl7apy.parser import parse_message
from sqlalchemy import Engine

from server.access import BUILTIN_PROFILES, AccessProfile, AccountStore, AuditWriter, query_audit
from server.hl7.app import Hl7App, serve
from server.hl7.framing import MllpFramer, frame
from server.hl7.listener import MllpListener
from server.hl7.settings import MllpSettings
from store.document import from_document
from store.engine import make_engine, migrate
from store.repository import PersonRepository
from tests.conftest import pg_schema_url
from tests.factories import meta, number, person_doc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7"
PASSWORD = "broker-password-123"
OLA_FNR, OLA_DNR, KARI_FNR = "17858026105", "57858036757", "02837594254"
FNR_OID, DNR_OID, FH_OID = "2.16.578.1.12.4.1.4.1", "2.16.578.1.12.4.1.4.2", "2.16.578.1.12.4.1.4.3"
PROFILES: dict[str, AccessProfile] = {
    **BUILTIN_PROFILES,
    "nobirth": AccessProfile("nobirth", "*", frozenset({"identifiers", "name", "gender", "addresses"}), "fortrolig"),
    "pixonly": AccessProfile("pixonly", frozenset({"QBP^Q23"}), BUILTIN_PROFILES["basis"].elements, "fortrolig"),
}
ACCOUNTS = {"mirth": "full", "dips": "utenHjemmel", "basis": "basis", "nobirth": "nobirth", "pixonly": "pixonly",
            "gone": "full"}
PEERS = {"MIRTH^AHUS": "mirth", "DIPS": "dips", "BASIS": "basis", "NOBIRTH": "nobirth", "PIXONLY": "pixonly",
         "GONE": "gone", "GHOST": "no-such-account"}


def population() -> list[dict[str, Any]]:
    ola = person_doc("ola", identifiers=[
        {"number": OLA_FNR, "kind": "fnr", "status": "iBruk", **meta(True, "2001-01-01")},
        {"number": OLA_DNR, "kind": "dnr", "status": "opphoert", **meta(False, "1999-01-01", "2001-01-01")}])
    kari = person_doc("kari", given="Kari", family="Ærøe", born="1975-03-02", gender="kvinne", protection="fortrolig",
                      street="Løkkeveien", identifiers=[{"number": KARI_FNR, "kind": "fnr", "status": "iBruk",
                                                         **meta()}])
    hansens = []
    for i, (given, gender, born) in enumerate([("Åse", "kvinne", "1990-01-09"), ("Eva", "kvinne", "1990-04-01"),
                                               ("Liv", "kvinne", "1990-07-30"), ("Per", "mann", "1990-02-02"),
                                               ("Pål", "mann", "1990-03-03")]):
        doc = person_doc(f"hansen-{i}", given=given, family="Hansen", born=born, gender=gender, kommune="4601",
                         postnummer="5003", street="Bryggen", identifiers=[{
                             "number": number("fnr", dt.date.fromisoformat(born), female=gender == "kvinne"),
                             "kind": "fnr", "status": "iBruk", **meta()}])
        if given == "Pål":
            doc["status"] = [{"value": "doed", **meta()}]
            doc["death"] = [{"date": "2020-02-02", **meta()}]
        hansens.append(doc)
    return [ola, kari, *hansens]


def populate(engine: Engine) -> None:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for doc in population():
            repo.save(from_document(doc))
    accounts = AccountStore(engine)
    for name, profile in ACCOUNTS.items():
        accounts.add(name, PASSWORD, profile)
    accounts.disable("gone")


def make_app(engine: Engine, **overrides: Any) -> tuple[Hl7App, AuditWriter, MllpSettings]:
    settings = MllpSettings(**{"port": 0, "peers": PEERS, "peer_match": "sender", "threads": 2,
                               "continuation_ttl": 60, **overrides})
    audit = AuditWriter(engine, mode="sync")
    return Hl7App(engine, AccountStore(engine), PROFILES, audit, settings), audit, settings


class Running:
    """serve() in a thread with its own event loop; ``port`` once started."""

    def __init__(self, settings: MllpSettings, app: Any, on_close: Any = None) -> None:
        self.settings = settings
        self.ready = threading.Event()
        self.listener: MllpListener | None = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main(app, on_close)), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "listener did not start"

    async def _main(self, app: Any, on_close: Any) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()

        def started(listener: MllpListener) -> None:
            self.listener = listener
            self.ready.set()

        await serve(self.settings, app, on_close=on_close, started=started, stop=self._stop)

    @property
    def port(self) -> int:
        assert self.listener is not None
        return self.listener.port

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)


@dataclass
class Server:
    engine: Engine
    app: Hl7App
    running: Running

    @property
    def port(self) -> int:
        return self.running.port

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@contextlib.contextmanager
def serving(url: str, *, statement_timeout: float | None = None,
            more: Callable[[Engine], None] | None = None) -> Iterator[Server]:
    """A listener on a migrated store at ``url`` holding :func:`population` (and what ``more`` adds)."""
    engine = make_engine(url, statement_timeout=statement_timeout)
    migrate(engine)
    populate(engine)
    if more is not None:
        more(engine)
    app, audit, settings = make_app(engine)
    running = Running(settings, app, app.closed)
    try:
        yield Server(engine, app, running)
    finally:
        running.stop()
        audit.close()
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(pg_schema_url())
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('hl7') / 'store.sqlite'}"
        yield stack.enter_context(serving(url))


# -- client helpers -------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def message(mtype: str, *segments: str, control: str = "C1", version: str = "2.5", charset: str = "UNICODE UTF-8",
            sender: str = "MIRTH|AHUS", msh15: str = "", msh16: str = "") -> bytes:
    msh = (f"MSH|^~\\&|{sender}|PREGBRIDGE|NHN|20261121120000||{mtype}|{control}|P|{version}|||{msh15}|{msh16}|NOR|"
           f"{charset}")
    codec = "latin-1" if charset == "8859/1" else "utf-8"
    return ("\r".join([msh, *segments]) + "\r").encode(codec)


def exchange(sock: socket.socket, payload: bytes, replies: int = 1) -> list[bytes]:
    """Send one framed message (or raw bytes if ``payload`` starts with 0x0B) and read ``replies`` frames."""
    sock.sendall(payload if payload[:1] == b"\x0b" else frame(payload))
    framer = MllpFramer()
    got: list[bytes] = []
    while len(got) < replies:
        data = sock.recv(65536)
        assert data, "connection closed before the reply"
        got += framer.feed(data)
    return got


def ask(srv: Server, payload: bytes, replies: int = 1) -> list[bytes]:
    with srv.connect() as sock:
        return exchange(sock, payload, replies)


def parsed(reply: bytes, codec: str = "utf-8") -> Any:
    text_ = reply.decode(codec)
    parse_message(text_, find_groups=False)  # hl7apy: well-formed ER7 of a known version
    return hl7.parse(text_)


def seg(msg: Any, name: str, n: int = 0) -> Any:
    return [s for s in msg if str(s[0]) == name][n]


def segs(msg: Any, name: str) -> list[Any]:
    return [s for s in msg if str(s[0]) == name]


def f(s: Any, i: int) -> str:
    return str(s[i]) if i < len(s) else ""


def err_code(msg: Any) -> str:
    return f(seg(msg, "ERR"), 3).split("^")[0]


# -- the exchanges ---------------------------------------------------------------------------------


def test_pdq_by_name_and_year_with_python_hl7_client(server: Server) -> None:
    with MLLPClient("127.0.0.1", server.port) as client:
        raw = client.send_message(fixture("pdq_q22_name_year.hl7"))
    m = parsed(raw[1:-2])
    assert f(seg(m, "MSH"), 9) == "RSP^K22^RSP_K21" and f(seg(m, "MSH"), 12) == "2.5"
    assert f(seg(m, "MSH"), 5) == "MIRTH" and f(seg(m, "MSH"), 6) == "AHUS"
    assert f(seg(m, "MSA"), 1) == "AA" and f(seg(m, "MSA"), 2) == "PDQ-1"
    qak = seg(m, "QAK")
    assert [f(qak, i) for i in (1, 2, 4, 5, 6)] == ["pdq-tag-1", "OK", "5", "5", "0"]
    assert f(seg(m, "QPD"), 3) == "@PID.5.1^Hansen~@PID.7^1990"
    pids = segs(m, "PID")
    assert len(pids) == 5 and len(segs(m, "QRI")) == 5
    assert {f(p, 5).split("^")[0] for p in pids} == {"Hansen"}
    assert all(f"^^^FNR&{FNR_OID}&ISO^NNNOR" in f(p, 3) for p in pids)
    dead = next(p for p in pids if f(p, 5).startswith("Hansen^Pål"))
    assert f(dead, 29) == "20200202" and f(dead, 30) == "Y"
    assert all(f(p, 30) == "N" for p in pids if p is not dead)
    assert not segs(m, "DSC")


def test_pdq_by_ceased_number_returns_the_current_number_first(server: Server) -> None:
    (raw,) = ask(server, fixture("pdq_q22_by_id.hl7"))
    m = parsed(raw)
    pid = seg(m, "PID")
    ids = f(pid, 3).split("~")
    assert ids[0] == f"{OLA_FNR}^^^FNR&{FNR_OID}&ISO^NNNOR"
    assert ids[1] == f"{OLA_DNR}^^^DNR&{DNR_OID}&ISO^NNNOR^^^20010101"
    assert f(pid, 5) == "Nordmann^Ola^^^^^L" and f(pid, 7) == "19800517" and f(pid, 8) == "M"
    assert f(pid, 11) == "Storgata 1^^OSLO^^0150^NOR^H^030101^0301"
    assert f(seg(m, "MSH"), 18) == ""  # the sender sent no MSH-18: answered in the default, unnamed


def test_pdq_continuation_and_cancel(server: Server) -> None:
    with server.connect() as sock:
        (first,) = exchange(sock, fixture("pdq_q22_page.hl7"))
        m = parsed(first)
        assert [f(seg(m, "QAK"), i) for i in (2, 4, 5, 6)] == ["OK", "3", "2", "1"]
        assert len(segs(m, "PID")) == 2
        pointer, mode = f(seg(m, "DSC"), 1), f(seg(m, "DSC"), 2)
        assert pointer and mode == "I"
        again = fixture("pdq_q22_page.hl7") + f"DSC|{pointer}|I\r".encode()
        (second,) = exchange(sock, again)
        m2 = parsed(second)
        assert [f(seg(m2, "QAK"), i) for i in (2, 4, 5, 6)] == ["OK", "3", "1", "0"]
        assert len(segs(m2, "PID")) == 1 and not segs(m2, "DSC")
        assert f(seg(m2, "PID"), 1) == "1"
        # a used pointer is gone
        (stale,) = exchange(sock, again)
        ms = parsed(stale)
        assert f(seg(ms, "MSA"), 1) == "AE" and f(seg(ms, "QAK"), 2) == "AE" and err_code(ms) == "204"
        assert f(seg(ms, "ERR"), 2) == "DSC^1^1"
        # a new pointer, then QCN^J01 cancels it
        (third,) = exchange(sock, fixture("pdq_q22_page.hl7"))
        pointer = f(seg(parsed(third), "DSC"), 1)
        (ack,) = exchange(sock, message("QCN^J01^QCN_J01", "QID|pdq-tag-2|IHE PDQ Query", control="QCN-1"))
        ma = parsed(ack)
        assert f(seg(ma, "MSH"), 9) == "ACK^J01^ACK" and f(seg(ma, "MSA"), 1) == "AA"
        (cancelled,) = exchange(sock, fixture("pdq_q22_page.hl7") + f"DSC|{pointer}|I\r".encode())
        assert f(seg(parsed(cancelled), "MSA"), 1) == "AE"


def test_pdq_no_match_too_broad_and_bad_parameters(server: Server) -> None:
    qbp = "QBP^Q22^QBP_Q21"
    (nf,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.5.1^Zzyzx~@PID.7^1990", "RCP|I"))
    m = parsed(nf)
    assert f(seg(m, "MSA"), 1) == "AA" and f(seg(m, "QAK"), 2) == "NF" and not segs(m, "PID")
    (broad,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.5.1^Hansen", "RCP|I"))
    m = parsed(broad)
    assert f(seg(m, "MSA"), 1) == "AE" and f(seg(m, "QAK"), 2) == "AE" and err_code(m) == "101"
    (unknown,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.5.1^Hansen~@PID.99^x", "RCP|I"))
    m = parsed(unknown)
    assert err_code(m) == "103" and f(seg(m, "ERR"), 2) == "QPD^1^3^2"
    (date,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.5.1^Hansen~@PID.7^19901399", "RCP|I"))
    assert err_code(parsed(date)) == "102"
    (rcp,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.5.1^Hansen~@PID.7^1990", "RCP|I|x^RD"))
    m = parsed(rcp)
    assert err_code(m) == "102" and f(seg(m, "ERR"), 2) == "RCP^1^2"
    (dom,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.5.1^Hansen~@PID.7^1990|||||^^^NOWHERE", "RCP|I"))
    m = parsed(dom)
    assert err_code(m) == "204" and f(seg(m, "ERR"), 2) == "QPD^1^8^1^4"
    (only,) = ask(server, message(qbp, "QPD|IHE PDQ Query|t|@PID.3.1^" + OLA_FNR + f"|||||^^^DNR&{DNR_OID}&ISO",
                                  "RCP|I"))
    assert f(seg(parsed(only), "PID"), 3).split("^")[0] == OLA_DNR


def test_pix_ceased_d_number_gives_every_identifier(server: Server) -> None:
    (raw,) = ask(server, fixture("pix_q23_ceased_dnr.hl7"))
    m = parsed(raw)
    assert f(seg(m, "MSH"), 9) == "RSP^K23^RSP_K23" and f(seg(m, "MSA"), 1) == "AA"
    assert f(seg(m, "QAK"), 1) == "pix-tag-1" and f(seg(m, "QAK"), 2) == "OK"
    pid = seg(m, "PID")
    assert f(pid, 3).split("~") == [f"{OLA_FNR}^^^FNR&{FNR_OID}&ISO^NNNOR",
                                    f"{OLA_DNR}^^^DNR&{DNR_OID}&ISO^NNNOR^^^20010101"]
    assert f(pid, 5) == ""
    (only,) = ask(server, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_DNR}^^^DNR|^^^FNR", "RCP|I"))
    assert f(seg(parsed(only), "PID"), 3) == f"{OLA_FNR}^^^FNR&{FNR_OID}&ISO^NNNOR"
    (none,) = ask(server, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_DNR}^^^DNR|^^^FHN", "RCP|I"))
    m = parsed(none)
    assert f(seg(m, "MSA"), 1) == "AA" and f(seg(m, "QAK"), 2) == "NF" and not segs(m, "PID")


def test_pix_unknown_number_and_domains(server: Server) -> None:
    (raw,) = ask(server, fixture("pix_q23_unknown.hl7"))
    m = parsed(raw)
    assert f(seg(m, "MSA"), 1) == "AE" and f(seg(m, "QAK"), 2) == "AE"
    err = seg(m, "ERR")
    assert f(err, 2) == "QPD^1^3^1^1" and f(err, 3) == "204^Unknown key identifier^HL70357" and f(err, 4) == "E"
    (auth,) = ask(server, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_FNR}^^^NOWHERE", "RCP|I"))
    assert f(seg(parsed(auth), "ERR"), 2) == "QPD^1^3^1^4"
    (dom,) = ask(server, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_FNR}|^^^FNR~^^^NOWHERE", "RCP|I"))
    assert f(seg(parsed(dom), "ERR"), 2) == "QPD^1^4^2^4"


def test_legacy_a19_query_by_id(server: Server) -> None:
    (raw,) = ask(server, fixture("a19_qry.hl7"))
    m = parsed(raw)
    msh = seg(m, "MSH")
    assert f(msh, 9) == "ADR^A19" and f(msh, 12) == "2.3" and f(msh, 5) == "DIPS" and f(msh, 6) == "OUS"
    assert f(seg(m, "MSA"), 1) == "AA" and f(seg(m, "MSA"), 2) == "A19-1"
    assert f(seg(m, "QRD"), 8) == OLA_FNR
    assert f(seg(m, "PID"), 3).split("~")[0].startswith(OLA_FNR) and str(seg(m, "PV1")) == "PV1|1|N"
    (nf,) = ask(server, message("QRY^A19", "QRD|20261121|R|I|q2|||1^RD|09819025549|DEM", version="2.3",
                                sender="DIPS|OUS"))
    m = parsed(nf)
    assert f(seg(m, "MSA"), 1) == "AE" and str(seg(m, "ERR")) == "ERR|QRD^1^8^204&Unknown key identifier&HL70357"
    assert f(seg(m, "QRD"), 4) == "q2" and not segs(m, "PID")


def test_felles_hjelpenummer_allocation_is_idempotent(server: Server) -> None:
    (first,) = ask(server, fixture("fh_q24_allocate.hl7"))
    m = parsed(first)
    assert f(seg(m, "MSH"), 9) == "RSP^K24^RSP_K24" and f(seg(m, "MSA"), 1) == "AA"
    assert f(seg(m, "QAK"), 2) == "OK"
    cx = f(seg(m, "PID"), 3)
    number_, rest = cx.split("^", 1)
    assert number_[0] in "89" and len(number_) == 11 and rest == f"^^FHN&{FH_OID}&ISO^NI"
    (second,) = ask(server, fixture("fh_q24_allocate.hl7"))
    assert f(seg(parsed(second), "PID"), 3) == cx
    # the new person is found by PIX and PDQ at once
    (pix,) = ask(server, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{number_}", "RCP|I"))
    assert f(seg(parsed(pix), "PID"), 3) == cx
    (missing,) = ask(server, message("QBP^Q24^QBP_Q21", "QPD|Q24|t|@PID.5.1^Ukjent~@PID.7^20260101~@PID.8^M",
                                     "RCP|I"))
    m = parsed(missing)
    assert f(seg(m, "MSA"), 1) == "AE" and err_code(m) == "101"


def test_latin1_sender_is_answered_in_latin1(server: Server) -> None:
    raw = fixture("pdq_q22_latin1.hl7")
    assert "Ærøe".encode("latin-1") in raw
    (reply,) = ask(server, raw)
    m = parsed(reply, "latin-1")
    assert f(seg(m, "MSH"), 18) == "8859/1"
    assert "Ærøe".encode("latin-1") in reply and "Ærøe".encode() not in reply
    assert f(seg(m, "PID"), 5) == "Ærøe^Kari^^^^^L"


def test_utf8_and_lf_separators(server: Server) -> None:
    lf = message("QBP^Q22^QBP_Q21", "QPD|IHE PDQ Query|t|@PID.5.1^Ærøe~@PID.7^1975", "RCP|I").replace(b"\r", b"\n")
    (reply,) = ask(server, lf)
    m = parsed(reply)
    assert f(seg(m, "MSA"), 1) == "AA" and f(seg(m, "PID"), 5).startswith("Ærøe^Kari")
    assert "Ærøe".encode() in reply


def test_masking_per_profile(server: Server) -> None:
    q = ("QBP^Q22^QBP_Q21", f"QPD|IHE PDQ Query|t|@PID.3.1^{KARI_FNR}", "RCP|I")
    (full,) = ask(server, message(*q))
    assert f(seg(parsed(full), "PID"), 11).startswith("Løkkeveien 1^^OSLO^^0150")
    (basis,) = ask(server, message(*q, sender="BASIS|X"))
    assert f(seg(parsed(basis), "PID"), 11).startswith("Løkkeveien 1")  # basis sees fortrolig
    (uten,) = ask(server, message(*q, sender="DIPS|OUS"))
    pid = seg(parsed(uten), "PID")
    assert f(pid, 11) == "Sperret adr. fortrolig^^^^^^H^^0301"  # placeholder, blank components, kommune kept
    assert f(pid, 5) == "Ærøe^Kari^^^^^L"
    (nobirth,) = ask(server, message(*q, sender="NOBIRTH|X"))
    pid = seg(parsed(nobirth), "PID")
    assert f(pid, 7) == "" and f(pid, 5) == "Ærøe^Kari^^^^^L" and f(pid, 29) == "" and f(pid, 30) == ""


def test_audit_record_per_query(server: Server) -> None:
    before = len(query_audit(server.engine, account="dips"))
    ask(server, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_DNR}", "RCP|I", sender="DIPS|OUS",
                        control="AUD-1"))
    records = query_audit(server.engine, account="dips")
    assert len(records) == before + 1
    (r,) = [r for r in records if r.operation == "QBP^Q23"]
    assert r.face == "hl7" and r.operation == "QBP^Q23" and r.outcome == "AA" and r.source == "127.0.0.1"
    assert r.asked == (OLA_DNR,) and r.returned == (OLA_FNR,)  # no history in the profile: ceased DNR withheld


# -- acknowledgement modes -----------------------------------------------------------------------


@pytest.mark.parametrize(("msh15", "msh16", "expect"), [
    ("AL", "NE", ["CA"]), ("AL", "AL", ["CA", "AA"]), ("NE", "AL", ["AA"]), ("ER", "SU", ["AA"]),
    ("SU", "ER", ["CA"]), ("", "AL", ["CA", "AA"]),
])
def test_enhanced_mode(server: Server, msh15: str, msh16: str, expect: list[str]) -> None:
    q = message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_FNR}", "RCP|I", msh15=msh15, msh16=msh16)
    replies = ask(server, q, len(expect))
    codes = [f(seg(parsed(r), "MSA"), 1) for r in replies]
    assert codes == expect
    if expect[0] == "CA":
        assert f(seg(parsed(replies[0]), "MSH"), 9) == "ACK^Q23^ACK"


def test_enhanced_mode_errors_and_bad_values(server: Server) -> None:
    bad = message("QBP^Q23^QBP_Q21", "QPD|IHE PIX Query|t|09819025549", "RCP|I", msh15="ER", msh16="ER")
    replies = ask(server, bad, 1)  # accepted (no CE/CR), application error → only the AE
    assert [f(seg(parsed(r), "MSA"), 1) for r in replies] == ["AE"]
    rejected = message("XYZ^Z99", "ZZZ|1", msh15="AL", msh16="AL")
    replies = ask(server, rejected, 2)
    assert [f(seg(parsed(r), "MSA"), 1) for r in replies] == ["CR", "AR"]
    assert err_code(parsed(replies[0])) == "200"
    (wrong,) = ask(server, message("QBP^Q23^QBP_Q21", "QPD|x|t|1", msh15="XX"))
    m = parsed(wrong)
    assert f(seg(m, "MSA"), 1) == "AR" and f(seg(m, "ERR"), 2) == "MSH^1^15" and err_code(m) == "103"


# -- access ------------------------------------------------------------------------------------


def test_unknown_disabled_and_unauthorised_senders_are_refused_with_ar(server: Server) -> None:
    q = ("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_FNR}", "RCP|I")
    for sender in ("STRANGER|X", "GONE|X", "GHOST|X"):
        (raw,) = ask(server, message(*q, sender=sender))
        m = parsed(raw)
        assert f(seg(m, "MSA"), 1) == "AR" and err_code(m) == "207" and not segs(m, "PID"), sender
    (ok,) = ask(server, message(*q, sender="PIXONLY|X"))
    assert f(seg(parsed(ok), "MSA"), 1) == "AA"
    (no,) = ask(server, message("QBP^Q22^QBP_Q21", f"QPD|IHE PDQ Query|t|@PID.3.1^{OLA_FNR}", "RCP|I",
                                sender="PIXONLY|X"))
    assert f(seg(parsed(no), "MSA"), 1) == "AR"


def test_sender_by_peer_address(server: Server) -> None:
    from server.hl7.listener import Peer

    app, audit, _ = make_app(server.engine, peers={"127.0.0.0/8": "dips", "10.0.0.0/8": "mirth"},
                             peer_match="address")
    q = message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t|{OLA_FNR}", "RCP|I", sender="ANYONE|X")
    assert b"MSA|AA" in app(q, Peer("127.0.0.1", 5000, 1))
    assert b"MSA|AR" in app(q, Peer("192.0.2.1", 5000, 2))
    both, audit2, _ = make_app(server.engine, peers={"127.0.0.1": "mirth", "MIRTH^AHUS": "mirth", "DIPS": "dips"},
                               peer_match="both")
    assert b"MSA|AA" in both(q.replace(b"ANYONE|X", b"MIRTH|AHUS"), Peer("127.0.0.1", 1, 3))
    assert b"MSA|AR" in both(q.replace(b"ANYONE|X", b"MIRTH|AHUS"), Peer("192.0.2.1", 1, 5))
    assert b"MSA|AR" in both(q.replace(b"ANYONE|X", b"DIPS|X"), Peer("127.0.0.1", 1, 4))
    audit.close()
    audit2.close()


# -- transport: persistent, concurrent, hostile -----------------------------------------------------


def test_persistent_connection_many_messages_in_one_write(server: Server) -> None:
    q = fixture("pix_q23_ceased_dnr.hl7")
    with server.connect() as sock:
        for _ in range(20):
            assert b"MSA|AA" in exchange(sock, q)[0]
        replies = exchange(sock, frame(q) * 30, 30)  # thirty frames in one write
        assert all(b"MSA|AA|PIX-1" in r for r in replies)


def test_eight_concurrent_connections(server: Server) -> None:
    def client(i: int) -> int:
        ok = 0
        with server.connect() as sock:
            for j in range(15):
                q = message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t{i}|{OLA_DNR}", "RCP|I", control=f"C{i}-{j}")
                (r,) = exchange(sock, q)
                ok += f"MSA|AA|C{i}-{j}".encode() in r
        return ok

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(client, range(8))) == [15] * 8


@pytest.mark.parametrize(("payload", "code", "location"), [
    (b"PID|1||123\r", "100", "MSH^1"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QBP^Q23^QBP_Q21|V1|P|2.9\rQPD|x|t|1\r", "203", "MSH^1^12"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QBP^Q23^QBP_Q21|V1|P|2.5|||||NOR|ISO IR87\rQPD|x|t|1\r", "103", "MSH^1^18"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QBP^Q23^QBP_Q21|V1|P|2.5|||||NOR|UNICODE UTF-8\rQPD|x|\xe6\r", "102",
     "MSH^1^18"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||ADT^A01^ADT_A01|V1|P|2.5\rEVN|A01\r", "200", "MSH^1^9^1^1"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QBP^Q99^QBP_Q21|V1|P|2.5\rQPD|x|t\r", "201", "MSH^1^9^1^2"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QRY^A19|V1|P|2.2\rQRD|x\r", "203", "MSH^1^12"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QBP^Q23^QBP_Q21||P|2.5\rQPD|x|t\r", "101", "MSH^1^10"),
    (b"MSH|^~\\&|MIRTH|AHUS|P|N|2026||QBP^Q23^QBP_Q21|V1|X|2.5\rQPD|x|t\r", "202", "MSH^1^11"),
])
def test_malformed_messages_get_an_ar_nak_and_the_connection_stays(server: Server, payload: bytes, code: str,
                                                                   location: str) -> None:
    with server.connect() as sock:
        (raw,) = exchange(sock, payload)
        m = parsed(raw.decode("utf-8", "replace").encode())
        assert f(seg(m, "MSA"), 1) == "AR" and err_code(m) == code and f(seg(m, "ERR"), 2) == location
        if code != "100":
            assert f(seg(m, "MSA"), 2) in ("V1", "")
        # the same connection goes on serving
        assert b"MSA|AA" in exchange(sock, fixture("pix_q23_ceased_dnr.hl7"))[0]


def test_unsupported_type_fixture_gets_ar_200(server: Server) -> None:
    (raw,) = ask(server, fixture("adt_a01_unsupported.hl7"))
    m = parsed(raw)
    assert f(seg(m, "MSH"), 9) == "ACK^A01^ACK" and f(seg(m, "MSA"), 1) == "AR" and err_code(m) == "200"


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_garbage_is_skipped_and_oversize_closes_only_that_connection(server: Server,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pregbridge.hl7")
    with server.connect() as other:
        assert b"MSA|AA" in exchange(other, fixture("pix_q23_ceased_dnr.hl7"))[0]
        with server.connect() as junk:  # junk before a start block: skipped, the next frame answered
            junk.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"MSA|AA|PIX-1" in exchange(junk, fixture("pix_q23_ceased_dnr.hl7"))[0]
        big = b"\x0bMSH|" + b"x" * (server.app.settings.max_frame + 10)
        with server.connect() as bad:
            try:
                bad.sendall(big)
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert _closed(bad)
        with server.connect() as bad:  # end block without CR: answered, then closed
            (raw,) = exchange(bad, b"\x0b" + fixture("pix_q23_ceased_dnr.hl7") + b"\x1cX")
            assert b"MSA|AA|PIX-1" in raw and _closed(bad)
        assert b"MSA|AA" in exchange(other, fixture("pix_q23_ceased_dnr.hl7"))[0]
    text_ = caplog.text
    assert "junk before a start block skipped (1 run(s), 27 byte(s)" in text_
    assert "FrameTooLarge" in text_ and "MissingTrailingCR" in text_
    assert "HTTP" not in text_ and OLA_DNR not in text_  # no content in logs


def test_idle_connections_are_closed(server: Server) -> None:
    app, audit, settings = make_app(server.engine, idle_timeout=1)
    running = Running(replace(settings, threads=0), app)
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            assert b"MSA|AA" in exchange(sock, fixture("pix_q23_ceased_dnr.hl7"))[0]
            assert _closed(sock)
    finally:
        running.stop()
        audit.close()


def test_tls_listener(server: Server, tmp_path: Path) -> None:
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    app, audit, settings = make_app(server.engine, tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem")
    running = Running(settings, app)
    client = ssl.create_default_context(cafile=tmp_path / "cert.pem")
    client.check_hostname = False
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw_sock, \
                client.wrap_socket(raw_sock) as sock:
            assert b"MSA|AA" in exchange(sock, fixture("pix_q23_ceased_dnr.hl7"))[0]
    finally:
        running.stop()
        audit.close()


def test_two_listeners_share_a_port_with_reuse_port(server: Server) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app, audit, settings = make_app(server.engine, port=port, reuse_port=True)
    first, second = Running(settings, app), Running(settings, app)
    try:
        assert first.port == second.port == port
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                assert b"MSA|AA" in exchange(sock, fixture("pix_q23_ceased_dnr.hl7"))[0]
    finally:
        first.stop()
        second.stop()
        audit.close()
