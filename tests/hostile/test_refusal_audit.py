"""Every refusal is audited, before or after parsing, on every face (SQLite and PostgreSQL).

Each hostile request gets its typed answer, leaves exactly one audit record with the account name it tried
(HTTP Basic or WS-Security ``Username``; never a password) and the client's address as the trusted proxy
reported it, and nothing of its body; a normal request is answered right after; no traceback is logged.
The PREG, AR and Filematch faces are served by the composed application on a loopback socket
(tests/integration/preg_support.py); the HL7 face is driven frame by frame.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import select

from server.access import BUILTIN_PROFILES, AccountStore, AuditWriter
from server.hl7.app import Hl7App
from server.hl7.listener import Peer
from server.hl7.settings import MllpSettings
from store import schema as s
from tests.factories import number
from tests.hostile.lockout_support import Answer, basic_auth, http_request
from tests.integration.preg_support import (
    ACCOUNTS,
    CT11,
    CT12,
    ENV,
    NS,
    PASSWORD,
    PregServer,
    envelope,
    fault_of,
    running_preg,
)
from tests.integration.test_filematch_pipeline import FIX

CLIENT = "198.51.100.23"  # the address the trusted proxy (the test client, 127.0.0.1) reports
SECRET = number(born=dt.date(1975, 3, 14))  # a synthetic fødselsnummer put in bodies
FULL = ACCOUNTS["full"]


@pytest.fixture
def srv(db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> Iterator[PregServer]:
    caplog.set_level(logging.INFO)
    with running_preg(db_url, tmp_path, populated=False, access={"trusted_proxies": ("127.0.0.1",)}) as server:
        yield server
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if SECRET in r.getMessage()]


def send(srv: PregServer, method: str, path: str, body: bytes | None = None, *, user: str | None = FULL,
         password: str = PASSWORD, headers: Mapping[str, str] | None = None) -> Answer:
    sent = {"X-Forwarded-For": CLIENT, **(basic_auth(user, password) if user is not None else {}), **(headers or {})}
    return http_request(srv.port, method, path, body, sent)


def audit_rows(srv: PregServer) -> list[Any]:
    e = s.audit_event
    with srv.engine.connect() as conn:
        return list(conn.execute(select(e).order_by(e.c.id)).all())


def only_new_record(srv: PregServer, before: int) -> Any:
    rows = audit_rows(srv)
    assert len(rows) == before + 1, [tuple(r) for r in rows[before:]]
    row = rows[-1]
    assert SECRET not in repr(tuple(row)) and PASSWORD not in repr(tuple(row))
    return row


def answered_normally(srv: PregServer) -> None:
    answer = send(srv, "POST", srv.settings.preg.path, envelope("1.1", "<p:ping/>"), headers={"Content-Type": CT11})
    assert answer.status == 200 and b"pingResponse" in answer.body


WSSE_HEADER = ('<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
               'oasis-200401-wss-wssecurity-secext-1.0.xsd"><wsse:UsernameToken>'
               '<wsse:Username>epj-wsse</wsse:Username><wsse:Password>secret-not-kept-1</wsse:Password>'
               '</wsse:UsernameToken></wsse:Security>')
GET_PERSON = f"<p:getPerson><p:personnummer>{SECRET}</p:personnummer></p:getPerson>"
DTD = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "{SECRET}">]>'
       f'<e:Envelope xmlns:e="{ENV["1.1"]}" xmlns:p="{NS}"><e:Body>{GET_PERSON}</e:Body></e:Envelope>').encode()

# (name, body, Content-Type, fault code the client gets, the audit outcome's start, audit operation)
PREG_REFUSALS = [
    ("dtd", DTD, CT11, "Client.InvalidRequest", "Client.InvalidRequest (DOCTYPE", "getPerson"),
    ("empty", b"", CT11, "Client.InvalidRequest", "Client.InvalidRequest (empty body)", "?"),
    ("not-xml", f"getPerson {SECRET}".encode(), CT11, "Client.InvalidRequest", "Client.InvalidRequest (not xml)", "?"),
    ("charset", envelope("1.1", GET_PERSON).replace(b"<p:getPerson>", "<p:getPerson>\u00e6".encode("latin-1")), CT11,
     "Client.InvalidRequest", "Client.InvalidRequest (charset mismatch)", "getPerson"),
    ("version", envelope("1.2", GET_PERSON), CT11, "VersionMismatch", "VersionMismatch (envelope and Content-Type",
     "getPerson"),
    ("too-large", envelope("1.1", GET_PERSON + "<!--" + "x" * (3 * 1024 * 1024) + "-->"), CT11,
     "Client.RequestTooLarge", "Client.RequestTooLarge (body too large)", "?"),
    ("unknown-operation", envelope("1.2", f"<p:noSuchOperation><p:a>{SECRET}</p:a></p:noSuchOperation>"), CT12,
     "Client.ResourceNotFound", "Client.ResourceNotFound", "noSuchOperation"),
    ("truncated", envelope("1.1", GET_PERSON)[:-30], CT11, "Client.InvalidRequest",
     "Client.InvalidRequest (not well-formed", "getPerson"),
]


@pytest.mark.parametrize(("name", "body", "content_type", "code", "outcome", "operation"), PREG_REFUSALS,
                         ids=[r[0] for r in PREG_REFUSALS])
def test_preg_refusals_before_the_face_are_audited_with_account_and_client_address(
        srv: PregServer, name: str, body: bytes, content_type: str, code: str, outcome: str, operation: str) -> None:
    before = len(audit_rows(srv))
    answer = send(srv, "POST", srv.settings.preg.path, body, headers={"Content-Type": content_type})
    assert answer.status == 500
    assert fault_of(etree.fromstring(answer.body))[1].startswith(code)
    row = only_new_record(srv, before)
    assert (row.account, row.face, row.source, row.asked, row.returned) == (FULL, "soap-preg", CLIENT, [], [])
    assert row.outcome.startswith(outcome) and row.operation == operation, row.outcome
    answered_normally(srv)


def test_a_refusal_names_the_ws_security_username_when_no_basic_header_was_sent(srv: PregServer) -> None:
    before = len(audit_rows(srv))
    body = envelope("1.1", GET_PERSON, WSSE_HEADER).replace(b"<p:getPerson>", b"<p:getPerson>\xe6")
    answer = send(srv, "POST", srv.settings.preg.path, body, user=None, headers={"Content-Type": CT11})
    assert answer.status == 500
    row = only_new_record(srv, before)
    assert (row.account, row.source, row.operation) == ("epj-wsse", CLIENT, "getPerson")
    assert "secret-not-kept-1" not in repr(tuple(row))
    answered_normally(srv)


def test_refused_logins_name_the_account_they_tried(srv: PregServer) -> None:
    before = len(audit_rows(srv))
    body = envelope("1.1", GET_PERSON)
    answer = send(srv, "POST", srv.settings.preg.path, body, password="a wrong password",
                  headers={"Content-Type": CT11})
    assert answer.status == 500 and b"invalid username or password" in answer.body
    row = only_new_record(srv, before)
    assert (row.account, row.outcome, row.source, row.operation) == (FULL, "Client.Authentication", CLIENT,
                                                                     "getPerson")
    assert row.asked == []  # refused before the number was looked at
    answered_normally(srv)


def test_ar_refusals_are_audited(srv: PregServer) -> None:
    before = len(audit_rows(srv))
    ping = (f'<e:Envelope xmlns:e="{ENV["1.1"]}" xmlns:a="http://register.nhn.no/CommunicationParty">'
            "<e:Body><a:Ping/></e:Body></e:Envelope>").encode()
    headers = {"Content-Type": CT11, "SOAPAction": '"http://register.nhn.no/CommunicationParty/'
               'ICommunicationPartyService/Ping"'}
    answer = send(srv, "POST", "/v1/AR/Basic", ping, password="a wrong password", headers=headers)
    assert answer.status == 401 and "basic" in answer.headers["www-authenticate"].lower()
    row = only_new_record(srv, before)
    assert (row.account, row.face, row.operation, row.outcome, row.source) == (
        FULL, "soap-ar", "Ping", "Unauthorized", CLIENT)
    answer = send(srv, "POST", "/v1/AR/Basic", DTD, headers=headers)  # past authentication, refused by the guard
    assert answer.status == 500 and b"DTDs are not allowed" in answer.body
    row = only_new_record(srv, before + 1)
    assert (row.account, row.face, row.operation, row.source) == (FULL, "soap-ar", "Ping", CLIENT)
    assert row.outcome.startswith("Client.InvalidRequest (DOCTYPE")
    answered_normally(srv)


def test_filematch_refusals_and_status_reads_are_audited_with_the_client_address(srv: PregServer) -> None:
    jobs = "/filematch/v1/jobs"
    cases: list[tuple[str, str, bytes | None, dict[str, Any], int, str, str | None]] = [
        ("GET", f"{jobs}/{'0' * 32}", None, {"password": "a wrong password"}, 401, "filematch.status", FULL),
        ("GET", f"{jobs}/{'0' * 32}", None, {"user": None}, 401, "filematch.status", None),
        ("GET", f"{jobs}/{'0' * 32}", None, {}, 404, "filematch.status", FULL),
        ("PUT", jobs, b"x", {}, 405, "filematch.submit", FULL),
        ("POST", f"{jobs}?format=pdf", b"x", {}, 400, "filematch.submit", FULL),
        ("POST", jobs, (FIX / "bad" / "unknown-column.csv").read_bytes(), {"headers": {"Content-Type": "text/csv"}},
         422, "filematch.submit", FULL),
    ]
    for method, path, body, kw, status, operation, account in cases:
        before = len(audit_rows(srv))
        answer = send(srv, method, path, body, **kw)
        assert answer.status == status, (method, path, answer.body)
        assert answer.headers["content-type"] == "application/json"
        row = only_new_record(srv, before)
        assert (row.account, row.face, row.operation, row.source) == (account, "filematch", operation, CLIENT)
        assert row.outcome.startswith(str(status))
    before = len(audit_rows(srv))
    submitted = send(srv, "POST", f"{jobs}?format=csv", (FIX / "wash-lf.csv").read_bytes(),
                     headers={"Content-Type": "text/csv"})
    assert submitted.status == 202, submitted.body
    job = submitted.headers["location"].rsplit("/", 1)[1]
    assert send(srv, "GET", f"{jobs}/{job}").status == 200
    rows = audit_rows(srv)[before:]
    assert [(r.account, r.operation, r.outcome, r.source) for r in rows] == [
        (FULL, "filematch.submit", "ok", CLIENT), (FULL, "filematch.status", "ok", CLIENT)]
    answered_normally(srv)


def test_hl7_naks_without_a_readable_msh_are_audited(srv: PregServer) -> None:
    settings = MllpSettings(port=0, peers={"MIRTH^AHUS": FULL}, peer_match="sender", threads=0)
    audit = AuditWriter(srv.engine, mode="sync")
    app = Hl7App(srv.engine, AccountStore(srv.engine), BUILTIN_PROFILES, audit, settings)
    peer = Peer("192.0.2.9", 5000, 1)
    before = len(audit_rows(srv))
    reply = app(f"PID|||{SECRET}\r".encode(), peer)
    assert b"\rMSA|AR\r" in reply and b"|100^" in reply
    row = only_new_record(srv, before)
    assert (row.account, row.face, row.operation, row.outcome, row.source) == (None, "hl7", "?", "AR:100",
                                                                               "192.0.2.9")
    normal = (b"MSH|^~\\&|MIRTH|AHUS|PREGBRIDGE|NHN|20261121120000||QBP^Q23^QBP_Q21|C1|P|2.5\r"
              b"QPD|IHE PIX Query|t1|" + number(born=dt.date(1990, 1, 2)).encode()
              + b"^^^FNR\rRCP|I\r")
    answer = app(normal, peer)  # a well-formed query right after: answered (the store is empty: AE 204)
    assert b"MSA|AE|C1" in answer and b"identifier not known" in answer
    assert audit_rows(srv)[-1].operation == "QBP^Q23"
    audit.close()
