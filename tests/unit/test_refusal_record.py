"""What the audit record of a refused SOAP request holds (server/soap/refusals.py), from hostile input too."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from server.access import AuditRecord
from server.soap.refusals import AUDITED_KEY, BODY_KEY, RefusalAudit, mark_audited, operation_of


class Writer:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def write(self, record: AuditRecord) -> None:
        self.records.append(record)


def refused(environ: dict[str, Any], outcome: str = "Client.InvalidRequest (charset)") -> AuditRecord | None:
    writer = Writer()
    RefusalAudit(writer, "soap-preg")(environ, outcome)  # type: ignore[arg-type]
    return writer.records[0] if writer.records else None


@pytest.mark.parametrize(("environ", "body", "operation"), [
    ({"HTTP_SOAPACTION": '"urn:x/getPerson"'}, b"", "getPerson"),
    ({"CONTENT_TYPE": 'application/soap+xml; charset=utf-8; action="urn:x/Svc/Search"'}, b"", "Search"),
    ({}, b'<s:Envelope xmlns:s="x"><s:Header/><s:Body>\n  <p:searchPerson xmlns:p="y"/></s:Body>', "searchPerson"),
    ({}, b"<Envelope><Body><!-- a comment --><getPersons/></Body></Envelope>", "getPersons"),
    ({}, b"no xml at all", "?"),
    ({}, b"<Body>" + b" " * 100_000 + b"<late/>", "?"),  # past the scanned part
])
def test_the_operation_is_named_from_the_action_or_the_first_body_element(environ: dict[str, Any], body: bytes,
                                                                          operation: str) -> None:
    assert operation_of(environ, body) == operation


def test_the_account_tried_comes_from_basic_or_ws_security_never_the_password() -> None:
    basic = "Basic " + base64.b64encode(b"epj-dips:the-secret-password").decode()
    record = refused({"HTTP_AUTHORIZATION": basic, "REMOTE_ADDR": "192.0.2.1", BODY_KEY: b"<x/>"})
    assert record is not None and (record.account, record.source, record.face) == ("epj-dips", "192.0.2.1",
                                                                                   "soap-preg")
    assert "the-secret-password" not in repr(record)
    body = (b'<e:Envelope><e:Header><w:Security><w:UsernameToken><w:Username> wcf-client </w:Username>'
            b'<w:Password>another-secret</w:Password></w:UsernameToken></w:Security></e:Header><e:Body><p:ping/>')
    record = refused({BODY_KEY: body, "REMOTE_ADDR": "::ffff:192.0.2.2"})
    assert record is not None and (record.account, record.operation, record.source) == ("wcf-client", "ping",
                                                                                        "192.0.2.2")
    assert "another-secret" not in repr(record)


def test_a_name_outside_the_username_rules_is_kept_as_a_hash() -> None:
    record = refused({BODY_KEY: b"<Username>Nordmann, Ola 01018012345</Username>"})
    assert record is not None and record.account is not None
    assert record.account.startswith("#") and "Nordmann" not in record.account


def test_a_request_its_face_recorded_is_not_recorded_twice() -> None:
    environ: dict[str, Any] = {}
    mark_audited(environ)
    assert refused(environ) is None
    fresh: dict[str, Any] = {}
    assert refused(fresh) is not None and fresh[AUDITED_KEY] is True
    assert refused(fresh) is None


def test_hostile_bodies_are_scanned_in_bounded_time() -> None:
    bodies = [b"<" * 2_000_000, b"<a:Username " + b"x" * 2_000_000, b"<Body>" + b"<!--" * 500_000]
    for body in bodies:
        start = time.perf_counter()
        refused({BODY_KEY: body})
        assert time.perf_counter() - start < 1.0
