"""server.front.answers: refusals in the form the request's head indicates (pure)."""

from __future__ import annotations

import pytest
from lxml import etree

from server.front.answers import Refusal, answer, busy_answer, soap_version_of_head

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


@pytest.mark.parametrize(("head", "version"), [
    (b"POST /p HTTP/1.1\r\nContent-Type: text/xml; charset=utf-8\r\n", "1.1"),
    (b"POST /p HTTP/1.1\r\ncontent-type:application/soap+xml\r\nX-A: b", "1.2"),
    (b"POST /p HTTP/1.1\r\nSOAPAction: \"urn:x\"\r\n", "1.1"),
    (b'POST /p HTTP/1.1\r\nContent-Type: multipart/related; type="application/soap+xml"; boundary=b\r\n', "1.2"),
    (b"POST /p HTTP/1.1\r\nContent-Type: application/json\r\n", None),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n", None),
    (b"GET /" + b"a" * 100, None),
    (b"", None),
])
def test_the_soap_version_a_head_indicates(head: bytes, version: str | None) -> None:
    assert soap_version_of_head(head) == version


def _split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body)
    assert headers["connection"] == "close"
    return lines[0], headers, body


@pytest.mark.parametrize("refusal", list(Refusal))
def test_plain_answers_carry_the_status_and_one_line(refusal: Refusal) -> None:
    status, headers, body = _split(answer(refusal, b"GET / HTTP/1.1\r\n"))
    assert status == f"HTTP/1.1 {refusal.status}"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body == (refusal.message + "\n").encode() and b"<" not in body


@pytest.mark.parametrize(("head", "envelope", "code"), [
    (b"POST /p HTTP/1.1\r\nContent-Type: text/xml\r\n", SOAP11, "soap11env:Client.RequestTimeout"),
    (b"POST /p HTTP/1.1\r\nContent-Type: application/soap+xml\r\n", SOAP12, "soap12env:Sender"),
])
def test_soap_answers_are_faults_of_the_version(head: bytes, envelope: str, code: str) -> None:
    status, headers, body = _split(answer(Refusal.BODY_TIMEOUT, head + b"Secret: 17858093864\r\n"))
    assert status == "HTTP/1.1 500 Internal Server Error"
    root = etree.fromstring(body)
    assert root.tag == f"{{{envelope}}}Envelope"
    assert code in body.decode() and b"RequestTimeout" in body
    assert b"17858093864" not in body  # nothing of the request is echoed


def test_busy_answer() -> None:
    status, headers, body = _split(busy_answer("too many"))
    assert (status, headers["retry-after"], body) == ("HTTP/1.1 503 Service Unavailable", "1", b"too many\n")
