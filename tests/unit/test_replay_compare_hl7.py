"""server.replay.compare_hl7: field-by-field HL7 v2 comparison with the message's own delimiters, escapes decoded,
repetitions, components and subcomponents, ignorable fields and readable names for each difference."""

from __future__ import annotations

import pytest

from server.replay.compare_hl7 import compare_hl7, parse_hl7, parse_ignore
from server.replay.result import Outcome

MSH = "MSH|^~\\&|PREGBRIDGE|NHN|EPJ|X|{ts}||RSP^K23^RSP_K23|{ctl}|P|2.5||||||UNICODE UTF-8"
PID = "PID|1||17858026105^^^FNR&2.16.578.1.12.4.1.4.1&ISO^NNNOR~57858036757^^^DNR||{name}^Kari^^^^^L||19750302|F"


def msg(name: str = "Åse", ts: str = "20261120120000", ctl: str = "1", sep: str = "\r",
        extra: str = "") -> bytes:
    segs = [MSH.format(ts=ts, ctl=ctl), "MSA|AA|PIX-1", PID.format(name=name)] + ([extra] if extra else [])
    return (sep.join(segs) + sep).encode("utf-8")


def test_same_message_is_identical() -> None:
    assert compare_hl7(msg(), msg()).outcome is Outcome.IDENTICAL


@pytest.mark.parametrize("sep", ["\n", "\r\n"])
def test_segment_separators_are_normalised(sep: str) -> None:
    assert compare_hl7(msg(), msg(sep=sep)).outcome is Outcome.IDENTICAL


def test_msh7_and_msh10_are_ignored_by_default() -> None:
    result = compare_hl7(msg(), msg(ts="20270101000000", ctl="99"))
    assert result.outcome is Outcome.EQUAL_AFTER_IGNORES and result.ignored == 2
    strict = compare_hl7(msg(), msg(ctl="99"), ignore=[])
    assert [str(d) for d in strict.differences] == ["MSH[1]-10[1]: expected '1' got '99'"]


def test_a_component_difference_is_named() -> None:
    result = compare_hl7(msg(), msg(name="Aase"))
    assert result.outcome is Outcome.DIFFERS
    assert [str(d) for d in result.differences] == ["PID[1]-5[1].1: expected 'Åse' got 'Aase'"]


def test_repetitions_and_subcomponents() -> None:
    other = msg().replace(b"~57858036757^^^DNR", b"~57858036757^^^HNR")
    assert [str(d) for d in compare_hl7(msg(), other).differences] == ["PID[1]-3[2].4: expected 'DNR' got 'HNR'"]
    sub = msg().replace(b"FNR&2.16.578.1.12.4.1.4.1&ISO", b"FNR&2.16.578.1.12.4.1.4.9&ISO")
    assert [str(d) for d in compare_hl7(msg(), sub).differences] == [
        "PID[1]-3[1].4.2: expected '2.16.578.1.12.4.1.4.1' got '2.16.578.1.12.4.1.4.9'"]
    missing = msg().replace(b"~57858036757^^^DNR", b"")
    assert "PID[1]-3[2]: missing repetition" in compare_hl7(msg(), missing).diff_text()


def test_escapes_are_decoded_before_comparing() -> None:
    escaped = msg(name="A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\")
    plain_text = MSH.format(ts="1", ctl="1") + "\rMSA|AA|PIX-1\r" + PID.format(name="x") + "\r"
    parsed = parse_hl7(escaped)[0]
    assert parsed.segments[2][1][5][0][0] == ["A|B^C&D~E\\"]
    assert compare_hl7(escaped, plain_text.encode()).outcome is Outcome.DIFFERS


def test_hex_escape_is_decoded_in_the_message_charset() -> None:
    assert compare_hl7(msg(name="\\XC385\\se"), msg(name="Åse")).outcome is Outcome.IDENTICAL
    latin = msg(name="\\XC5\\se").replace(b"UNICODE UTF-8", b"8859/1")
    same = msg(name="Åse").replace(b"UNICODE UTF-8", b"8859/1").decode("utf-8").encode("latin-1")
    assert compare_hl7(latin, same).outcome is Outcome.IDENTICAL


def test_custom_encoding_characters_are_honoured() -> None:
    custom = msg().decode().replace("|", "#").replace("^", "*").replace("~", "@").replace("&", "%")
    assert compare_hl7(msg(), custom.encode()).outcome is Outcome.IDENTICAL
    escaped = msg(name="A\\F\\B").decode().replace("|", "#").replace("^", "*").replace("~", "@").replace("&", "%")
    # \F\ is *this* message's field separator: '#' here, a plain character for the standard sender
    assert compare_hl7(msg(name="A#B"), escaped.encode()).outcome is Outcome.IDENTICAL
    assert compare_hl7(msg(name="A\\F\\B"), escaped.encode()).outcome is Outcome.DIFFERS
    assert parse_hl7(escaped.encode())[0].segments[2][1][5][0][0] == ["A#B"]


def test_trailing_empty_fields_do_not_matter() -> None:
    assert compare_hl7(msg(), msg().replace(b"|F\r", b"|F|||\r")).outcome is Outcome.IDENTICAL


def test_missing_and_extra_segments_and_order() -> None:
    result = compare_hl7(msg(extra="QRI|88"), msg())
    assert [str(d) for d in result.differences] == ["QRI[1]: missing segment"]
    swapped = b"\r".join([msg().split(b"\r")[i] for i in (0, 2, 1)]) + b"\r"
    assert "segment order differs: expected MSH,MSA,PID got MSH,PID,MSA" in compare_hl7(msg(), swapped).diff_text()


def test_several_messages_are_paired_in_order() -> None:
    commit = b"MSH|^~\\&|A|B|||1||ACK^Q23^ACK|9|P|2.5\rMSA|CA|PIX-1\r"
    assert compare_hl7(commit + msg(), commit + msg()).outcome is Outcome.IDENTICAL
    result = compare_hl7(commit + msg(), commit + msg(name="Aase"))
    assert [str(d) for d in result.differences] == ["message 2: PID[1]-5[1].1: expected 'Åse' got 'Aase'"]
    assert "message count differs" in compare_hl7(commit + msg(), msg()).diff_text()


def test_ignore_specs() -> None:
    assert str(parse_ignore("pid-5.2")) == "PID-5.2"
    with pytest.raises(ValueError):
        parse_ignore("PID.5")
    assert compare_hl7(msg(), msg(name="Aase"), ignore=["PID-5.1"]).outcome is Outcome.EQUAL_AFTER_IGNORES
    assert compare_hl7(msg(), msg(name="Aase"), ignore=["PID-5.2"]).outcome is Outcome.DIFFERS
