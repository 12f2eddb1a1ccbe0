"""Character sets of HL7 v2 messages: MSH-18 (table 0211) → Python codec, decoding, segment separators.

HL7 v2 text is bytes in the character set MSH-18 names; the field itself is ASCII, so it can be read
from the raw bytes before decoding. Norwegian senders use ISO-8859-1 (often with MSH-18 *empty*) or
UTF-8, so an empty MSH-18 means the configured default, per listener.

Supported (table 0211 → codec): ``ASCII`` → ascii, ``8859/1`` → latin-1, ``8859/15`` → iso8859-15,
``UNICODE UTF-8`` → utf-8. Anything else (UCS-2 ``UNICODE``, ISO-2022 sets, vendor names) is
:class:`UnsupportedCharset`; bytes that do not decode in the declared set are :class:`UndecodableText`.
Both still give a text (decoded with the default, else ISO-8859-1, which never fails) so that the
receiver can read MSH-10 and answer with a NAK instead of dropping the message.

Replies are encoded in the sender's character set (:func:`encode`); a character that set cannot hold
(an ``ø`` to an ASCII sender) becomes ``?`` — HL7's ``\\Cxxyy\\``/``\\Mxxyyzz\\`` escapes for
ISO-2022 switching are not supported by the brokers we serve. Segment separators CR LF and LF are
normalised to CR (:func:`normalise_segments`): python-hl7 and hl7apy both silently mis-parse LF.

Hand-written instead of python-hl7's ``encoding=`` argument because that takes one fixed codec per
server and fails the whole connection on a decode error.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CHARSETS", "CharsetError", "Decoded", "UndecodableText", "UnsupportedCharset", "codec_of", "decode",
           "encode", "normalise_segments", "peek_charset"]

CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
}


class CharsetError(Exception):
    """MSH-18 could not be honoured; HL7 table 0357 code and where (``MSH^1^18``)."""

    hl7_error_code = "103"


class UnsupportedCharset(CharsetError):
    """MSH-18 names a character set this receiver does not support (table value not found)."""


class UndecodableText(CharsetError):
    """The bytes are not valid in the declared (or default) character set."""

    hl7_error_code = "102"


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: ``text`` with CR separators, the MSH-18 value to answer with (empty when the
    sender sent none), the codec used and the error, if MSH-18 could not be honoured."""

    text: str
    charset: str
    codec: str
    error: CharsetError | None = None


def codec_of(name: str) -> str:
    """The Python codec of an MSH-18 value; raises :class:`UnsupportedCharset`."""
    try:
        return CHARSETS[name.strip().upper()]
    except KeyError:
        raise UnsupportedCharset("character set in MSH-18 is not supported") from None


def peek_charset(raw: bytes) -> str:
    """MSH-18 (first repetition) read from the raw bytes of a message, or ''."""
    end = len(raw)
    for sep in (b"\r", b"\n"):
        i = raw.find(sep)
        if 0 <= i < end:
            end = i
    msh = raw[:end]
    if not msh.startswith(b"MSH") or len(msh) < 8:
        return ""
    fields = msh.split(msh[3:4])
    if len(fields) <= 17:
        return ""
    rep = msh[5:6] or b"~"
    return fields[17].split(rep)[0].decode("ascii", "replace").strip()


def normalise_segments(text: str) -> str:
    """CR LF and LF segment separators → CR; trailing separators trimmed to one."""
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text


def decode(raw: bytes, default: str = "UNICODE UTF-8") -> Decoded:
    """Decode a message per its MSH-18, else ``default`` (an MSH-18 value); never raises for bad input."""
    declared = peek_charset(raw)
    default_codec = codec_of(default)
    if not declared:
        try:
            return Decoded(normalise_segments(raw.decode(default_codec)), "", default_codec)
        except UnicodeDecodeError:
            return Decoded(normalise_segments(raw.decode("latin-1")), "", default_codec,
                           UndecodableText("message bytes are not valid in the default character set"))
    try:
        codec = codec_of(declared)
    except UnsupportedCharset as exc:
        return Decoded(normalise_segments(raw.decode("latin-1")), default, default_codec, exc)
    try:
        return Decoded(normalise_segments(raw.decode(codec)), declared, codec)
    except UnicodeDecodeError:
        return Decoded(normalise_segments(raw.decode("latin-1")), declared, codec,
                       UndecodableText("message bytes are not valid in the character set of MSH-18"))


def encode(text: str, codec: str) -> bytes:
    """``text`` in ``codec``; characters it cannot hold become ``?``."""
    return text.encode(codec, "replace")
