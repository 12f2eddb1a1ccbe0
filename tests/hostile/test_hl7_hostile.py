"""Hostile HL7 clients against a real MLLP listener on loopback, on SQLite and PostgreSQL.

Each case sends what a broken or hostile broker sends, asserts the typed answer (a reply to the next
frame, a NAK with ERR), that a normal query is answered right after on the same connection, and that the
log shows neither a traceback nor the bytes sent: no raw NUL, no run of eleven digits.
"""

from __future__ import annotations

import logging
import re
import socket

import pytest

from tests.factories import number
from tests.integration.test_hl7_mllp import OLA_DNR, Server, exchange, fixture, message

FNR = number()  # a synthetic fødselsnummer a client puts where it does not belong
PIX = fixture("pix_q23_ceased_dnr.hl7")
_RUN = re.compile(r"\d(?:[ .\-]?\d){10,}")


@pytest.fixture()
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="pregbridge.hl7")
    return caplog


def assert_clean(log: pytest.LogCaptureFixture) -> str:
    """The log of the test so far: no traceback, no raw NUL, no run of eleven digits (also not one an
    escape's digits would complete)."""
    text = log.text
    assert log.records, "nothing was logged: the case did not reach the code that logs"
    assert "Traceback" not in text and not any(r.exc_info for r in log.records)
    assert "\x00" not in text and FNR not in text and OLA_DNR not in text
    assert not _RUN.search(text.replace("\\x", "")), text
    return text


def _normal_answered(sock: socket.socket) -> None:
    (reply,) = exchange(sock, PIX)
    assert b"MSA|AA|PIX-1" in reply


@pytest.mark.parametrize("junk", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x1c\r\x1c", FNR.encode() + b"\r",
                                  bytes(range(256)).replace(b"\x0b", b""), b"\xff" * 70_000],
                         ids=["http", "end-blocks", "fnr", "every-byte", "70k"])
def test_junk_before_a_start_block_is_skipped_and_the_frame_answered(
        server: Server, log: pytest.LogCaptureFixture, junk: bytes) -> None:
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(junk)
        _normal_answered(sock)  # the frame after the junk, on the same connection
        sock.sendall(junk + b"\x0b" + PIX + b"\x1c\r" + junk)
        framed = exchange(sock, b"\x0b" + PIX + b"\x1c\r", 2)
        assert all(b"MSA|AA|PIX-1" in r for r in framed)
    assert "junk before a start block skipped" in assert_clean(log)


def test_a_start_block_inside_junk_resyncs_on_it(server: Server, log: pytest.LogCaptureFixture) -> None:
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"junk")
        (nak,) = exchange(sock, b"\x0bnot hl7\x1c\r")  # the start block after the junk opens a frame: NAK 100
        assert b"MSA|AR" in nak and b"ERR|" in nak and b"|100^" in nak
        _normal_answered(sock)
    assert_clean(log)


@pytest.mark.parametrize("control", [f"C\x00{FNR}", f"{FNR[:6]} {FNR[6:]}", "\x1b[2J" + FNR, "x" * 5000 + FNR])
def test_a_control_id_reaches_the_log_escaped_masked_and_cut(
        server: Server, log: pytest.LogCaptureFixture, control: str) -> None:
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        query = message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t1|{OLA_DNR}^^^DNR", "RCP|I", control=control)
        (reply,) = exchange(sock, query)
        assert b"MSA|AA|" in reply  # the control id is the client's business; the reply echoes it
        (nak,) = exchange(sock, message(f"QBP^Z{FNR}", "QPD|x", control=control))  # type unsupported: NAK, logged
        assert b"MSA|AR" in nak and b"ERR|" in nak
        _normal_answered(sock)
    text = assert_clean(log)
    assert "control id" in text and "*" * 11 in text


@pytest.mark.parametrize("sender", [f"{FNR}|AHUS", f"MIRTH|{FNR}\x00", "MIRTH\x00|AHUS"])
def test_an_unknown_sender_is_refused_and_not_logged_as_sent(
        server: Server, log: pytest.LogCaptureFixture, sender: str) -> None:
    port = server.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        (nak,) = exchange(sock, message("QBP^Q23^QBP_Q21", f"QPD|IHE PIX Query|t1|{OLA_DNR}^^^DNR", "RCP|I",
                                        sender=sender, control=FNR))
        assert b"MSA|AR" in nak or b"MSA|AE" in nak
        _normal_answered(sock)
    assert_clean(log)
