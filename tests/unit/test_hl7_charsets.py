"""MSH-18 → codec, the configured default, separator normalisation and æøå both ways."""

from __future__ import annotations

import pytest

from server.hl7.charsets import UndecodableText, UnsupportedCharset, codec_of, decode, encode, peek_charset

NAME = "Ærøe^Åse"


def msg(charset: str, sep: str = "\r") -> str:
    return sep.join([f"MSH|^~\\&|A|B|C|D|20240101||QBP^Q22^QBP_Q21|1|P|2.5|||||NOR|{charset}",
                     f"QPD|IHE PDQ Query|t|@PID.5.1^{NAME}", ""])


@pytest.mark.parametrize(("charset", "codec"), [("8859/1", "latin-1"), ("UNICODE UTF-8", "utf-8"),
                                                ("8859/15", "iso8859-15")])
def test_declared_charset_round_trips_aeoeaa(charset: str, codec: str) -> None:
    raw = msg(charset).encode(codec)
    d = decode(raw, default="ASCII")
    assert d.error is None and d.codec == codec and d.charset == charset
    assert NAME in d.text
    assert encode(d.text, d.codec) == raw


@pytest.mark.parametrize(("default", "codec"), [("8859/1", "latin-1"), ("UNICODE UTF-8", "utf-8")])
def test_empty_msh18_uses_the_configured_default(default: str, codec: str) -> None:
    raw = msg("").encode(codec)
    d = decode(raw, default=default)
    assert d.error is None and d.charset == "" and d.codec == codec and NAME in d.text


def test_ascii_sender_gets_question_marks_not_an_error() -> None:
    d = decode(msg("ASCII").replace(NAME, "Hansen").encode("ascii"))
    assert d.error is None and encode("Ærøe", d.codec) == b"?r?e"


def test_unsupported_charset_still_decodes_for_a_nak() -> None:
    d = decode(msg("ISO IR87").encode("latin-1"), default="UNICODE UTF-8")
    assert isinstance(d.error, UnsupportedCharset) and d.error.hl7_error_code == "103"
    assert d.charset == "UNICODE UTF-8" and "MSH|" in d.text


def test_bytes_not_in_the_declared_charset() -> None:
    d = decode(msg("UNICODE UTF-8").encode("latin-1"))
    assert isinstance(d.error, UndecodableText) and d.error.hl7_error_code == "102"
    assert NAME in d.text  # read as ISO-8859-1, so MSH-10 is readable


def test_default_that_does_not_decode() -> None:
    d = decode(msg("").encode("latin-1"), default="UNICODE UTF-8")
    assert isinstance(d.error, UndecodableText)


@pytest.mark.parametrize("sep", ["\r", "\n", "\r\n"])
def test_segment_separators_normalised_to_cr(sep: str) -> None:
    d = decode(msg("UNICODE UTF-8", sep).encode("utf-8"))
    assert "\n" not in d.text and d.text.count("\r") == 2


def test_peek_charset_edge_cases() -> None:
    assert peek_charset(b"") == "" and peek_charset(b"PID|1") == ""
    assert peek_charset(b"MSH|^~\\&|A") == ""
    assert peek_charset(msg("8859/1~UNICODE UTF-8").encode()) == "8859/1"
    assert peek_charset(b"MSH#^~\\&#A#B#C#D#T##QBP^Q22#1#P#2.5#####NOR#8859/1\r") == "8859/1"
    with pytest.raises(UnsupportedCharset):
        codec_of("UNICODE")
    assert codec_of(" unicode utf-8 ") == "utf-8"
