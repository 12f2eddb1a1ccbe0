"""Request ids of calls that bring none (server.metrics): drawn only when something asks for one, unique, shown
by the log as they are, and a forked process does not repeat its parent's."""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.access import AuditRecord
from server.logsafe import loggable
from server.metrics import _CALL, Call, CallMetrics, _RequestIds, current_request_id, timed_handler

ID = re.compile(r"[0-9a-f]{16}")


def test_ids_are_unique_sixteen_hex_characters_the_log_shows_as_they_are() -> None:
    ids = _RequestIds()
    drawn = [ids() for _ in range(50_000)]
    assert len(set(drawn)) == len(drawn)
    assert all(ID.fullmatch(i) and loggable(i) == i for i in drawn)
    # the worst case for masking: a prefix of seven digits and a counter of eight
    ids._state = ("1234567a", itertools.count(0x12345678))
    worst = ids()
    assert worst == "1234567a12345678" and loggable(worst) == worst


def test_a_prefix_is_drawn_again_after_two_to_the_32_ids() -> None:
    ids = _RequestIds()
    prefix = ids._state[0]
    ids._state = (prefix, itertools.count(0xFFFFFFFF))
    last, after = ids(), ids()
    assert last == prefix + "ffffffff"
    assert after[:8] != prefix and after[8:] == "00000000" and ids() == after[:8] + "00000001"


def test_prefixes_end_in_a_letter_so_no_id_holds_eleven_digits() -> None:
    assert all(_RequestIds()._state[0][-1] in "abcdef" for _ in range(200))


_FORKING = """
import os
from server.metrics import _new_id
parent = _new_id()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, _new_id().encode())
    os._exit(0)
os.close(write)
child = os.read(read, 64).decode()
os.waitpid(pid, 0)
print(parent, child)
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_process_draws_its_own_prefix() -> None:
    # in a process of its own: forking pytest's, which may run threads, would warn (3.12+)
    out = subprocess.run([sys.executable, "-c", _FORKING], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2]).stdout.split()
    parent, child = out
    assert ID.fullmatch(parent) and ID.fullmatch(child) and child[:8] != parent[:8]


def test_a_call_draws_its_id_only_when_asked_and_keeps_it() -> None:
    seen: list[object] = []

    def quiet(frame: bytes, peer: object) -> bytes:
        seen.append(_CALL.get())
        return b"ok"

    def asking(frame: bytes, peer: object) -> bytes:
        seen.append((current_request_id(), current_request_id()))
        return b"ok"

    assert timed_handler(quiet)(b"", None) == b"ok"
    call = seen.pop()
    assert call is not None and call._request_id is None  # type: ignore[attr-defined]
    assert timed_handler(asking)(b"", None) == b"ok"
    first, second = seen.pop()  # type: ignore[misc]
    assert first == second and ID.fullmatch(str(first))
    assert _CALL.get() is None and current_request_id() is None  # reset after the call


def test_the_request_line_and_an_upstream_call_see_one_id(caplog: pytest.LogCaptureFixture) -> None:
    metrics = CallMetrics(count=False)
    caplog.set_level(logging.INFO, logger="pregbridge.request")
    asked: list[str | None] = []

    def handler(frame: bytes, peer: object) -> bytes:
        asked.append(current_request_id())  # as a read-through lookup asks before the audit record
        metrics.call(AuditRecord.now(account="a", face="hl7", operation="QBP^Q23", outcome="AA"))
        return b""

    timed_handler(handler)(b"", None)
    lines = [r for r in caplog.records if r.name == "pregbridge.request"]
    assert [r.request_id for r in lines] == asked and ID.fullmatch(str(asked[0]))  # type: ignore[attr-defined]


def test_nothing_is_measured_with_metrics_and_the_request_line_off() -> None:
    metrics = CallMetrics(count=False)
    logger = logging.getLogger("pregbridge.request")
    level = logger.level
    logger.setLevel(logging.WARNING)
    calls: list[object] = []

    def handler(frame: bytes, peer: object) -> bytes:
        metrics.call(AuditRecord.now(account="a", face="hl7", operation="QBP^Q23", outcome="AA"))
        calls.append(_CALL.get())
        return b""

    try:
        timed_handler(handler)(b"", None)
    finally:
        logger.setLevel(level)
    assert calls[0]._request_id is None  # type: ignore[attr-defined]  # no id drawn for a line not written


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_request_line_reads_as_logger_info_would_write_it(fmt: str) -> None:
    """The request line is made with makeRecord + handle (no look up the stack): in either format it is the line
    ``request_log.info`` gives for the same values, and carries the same structured fields."""
    from server.logs import formatter
    from server.metrics import _LINE, request_log

    keep = _Keep()
    request_log.addHandler(keep)
    level = request_log.level
    request_log.setLevel(logging.INFO)
    metrics = CallMetrics(count=False)
    try:
        calls = ((AuditRecord.now(account="epj\n1", face="hl7", operation="QBP^Q23", outcome="AA"), None),
                 (AuditRecord.now(account=None, face="soap-preg", operation="x01018012345", outcome="Client"),
                  "01018012345"))
        for record, rid in calls:
            token = _CALL.set(Call(0.0, rid))
            try:
                metrics.call(record)
                fast = keep.records[-1]
                f = fast.__dict__
                request_log.info(_LINE, *fast.args, extra={k: f[k] for k in  # type: ignore[misc]
                                 ("face", "operation", "account", "outcome", "duration_ms", "request_id")})
                reference = keep.records[-1]
            finally:
                _CALL.reset(token)
            reference.created, reference.msecs = fast.created, fast.msecs
            shown = formatter(fmt)
            assert shown.format(fast) == shown.format(reference)
            assert "01018012345" not in shown.format(fast) and "\n" not in shown.format(fast)
    finally:
        request_log.removeHandler(keep)
        request_log.setLevel(level)
