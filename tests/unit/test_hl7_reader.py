"""server.hl7.reader gives what python-hl7's parse tree gives: fixtures, generated messages, odd delimiters."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.hl7.charsets import decode
from server.hl7.reader import _Er7Message, _reencode, _TreeMessage, read_message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hl7"
OLD_DELIMITERS = ("|^~\\&", "#$*@!", "|^~\\&", "!@#$%")


def _name(seg: Any) -> str:
    return str(seg[0][0]) if isinstance(seg[0], list) else str(seg[0])


def assert_same_as_python_hl7(text: str) -> None:
    """Every value the reader offers equals python-hl7's reading of ``text``."""
    tree = hl7.parse(text)
    message = read_message(text)
    assert message.separators == tree.separators
    assert message.esc == tree.esc
    firsts: dict[str, Any] = {}
    for seg in tree:
        firsts.setdefault(_name(seg), seg)
    for name, expected in firsts.items():
        got = message.segment(name)
        assert got is not None and got.name == name
        assert str(got) == str(expected)
        assert len(got) == len(expected)
        assert [got.field(i) for i in range(len(got))] == [str(x) for x in expected]
        for old in OLD_DELIMITERS:
            assert got.reencoded(old) == _reencode(expected, old)
    assert message.segment("ZZZ") is None or "ZZZ" in firsts
    for value in ("a\\F\\b", "\\S\\x\\T\\\\R\\\\E\\", "plain", "\\X41\\", ""):
        assert message.unescape(value) == tree.unescape(value)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.hl7")), ids=lambda p: p.name)
def test_fixtures_read_as_python_hl7_reads_them(path: Path) -> None:
    text = decode(path.read_bytes()).text
    assert isinstance(read_message(text), _Er7Message)
    assert_same_as_python_hl7(text)


def _message(delims: str, segments: list[list[str]]) -> str:
    f = delims[0]
    msh = f"MSH{delims}{f}MIRTH{f}AHUS{f}{f}{f}20260101{f}{f}QBP{delims[1]}Q23{f}C1{f}P{f}2.5"
    return "\r".join([msh, *(f.join(s) for s in segments)]) + "\r"


_DELIMS = st.sampled_from(["|^~\\&", "|^~\\&#", "#$*@!", "|&^\\~", ";:,/."])
_CHARS = st.sampled_from(list("ab1 \\|^~&#$*@!;:,/.EFSTRX") + ["Ø", "\t"])
_VALUE = st.text(_CHARS, max_size=12)
_SEGMENTS = st.lists(st.tuples(st.sampled_from(["QPD", "RCP", "DSC", "QPD", "PID", "ZX", ""]),
                               st.lists(_VALUE, max_size=6)), max_size=5)


@settings(max_examples=300, deadline=None)
@given(delims=_DELIMS, segments=_SEGMENTS, tail=st.sampled_from(["", "\r", "\r\r", " \r\n", "\t"]))
def test_generated_messages_read_as_python_hl7_reads_them(delims: str, segments: list[tuple[str, list[str]]],
                                                           tail: str) -> None:
    text = _message(delims, [[name, *values] for name, values in segments]) + tail
    assert_same_as_python_hl7(text)


@pytest.mark.parametrize("text", [
    "MSH|^~\\&\rQPD|x^y|t\r",  # MSH-2 not closed in the MSH segment
    "MSH|^~|A|B\rQPD|x\r",  # fewer than four encoding characters
    "MSH|^^\\&|A|B\rQPD|x^y~z|t\r",  # repeated delimiter
    "MSH|^~\\&|A|B\rQPD|x\rMSH|^~\\&|C|D\r",  # a second header segment
])
def test_odd_delimiters_fall_back_to_python_hl7(text: str) -> None:
    try:
        tree = hl7.parse(text)
    except Exception as exc:  # noqa: BLE001 - python-hl7's own error must come through unchanged
        with pytest.raises(type(exc)):
            read_message(text)
        return
    message = read_message(text)
    assert isinstance(message, _TreeMessage)
    msh = message.segment("MSH")
    assert msh is not None and str(msh) == str(tree.segment("MSH"))
    assert [msh.field(i) for i in range(len(msh))] == [str(x) for x in tree.segment("MSH")]


def test_a_bad_escape_is_not_logged_with_the_field_it_is_in(caplog: pytest.LogCaptureFixture) -> None:
    """python-hl7 logs the field it cannot unescape; names and numbers must not reach the log."""
    caplog.set_level(logging.DEBUG)
    for text in ("MSH|^~\\&|A|B|C|D|20260101||QBP^Q22^QBP_Q21|1|P|2.5\rQPD|Q22|t|@PID.5.1^NORDMANN\\XZZ\\\r",
                 "MSH#^~\\&#A#B#C#D#20260101##QBP^Q22^QBP_Q21#1#P#2.5\rQPD#Q22#t#@PID.5.1^NORDMANN\\XZZ\\\r"):
        message = read_message(text)
        qpd = message.segment("QPD")
        assert qpd is not None
        message.unescape(qpd.field(3))  # a bad hex escape: python-hl7 complains, and keeps going
    assert not [r for r in caplog.records if "NORDMANN" in r.getMessage()]
