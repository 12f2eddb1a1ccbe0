"""Text files of the client: encoding and line-ending detection, shared by the CSV and fixed-width formats.

Detection, in this order: an explicit encoding wins (``utf-8``, ``iso-8859-1`` and their aliases);
a UTF-16/32 byte-order mark or a NUL byte refuses the file (it is binary or UTF-16, which no client
register sends as text); a UTF-8 BOM means UTF-8; otherwise the whole file is checked as strict UTF-8 by
an incremental decoder (C speed, flat memory) and, if any byte sequence is not UTF-8, read as ISO-8859-1
(every byte is a character there, so detection never fails). The answer is written back the same way:
same encoding, same BOM, same line ending (CRLF or LF, from the first line).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from filematch.records import FileFormatError

__all__ = ["ENCODINGS", "TextOptions", "detect"]

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "iso-8859-1": "iso-8859-1", "latin-1": "iso-8859-1",
             "latin1": "iso-8859-1", "iso8859-1": "iso-8859-1"}
_BLOCK = 1 << 20


@dataclass(frozen=True, slots=True)
class TextOptions:
    """How a text file is (and its answer will be) encoded."""

    encoding: str = "utf-8"  # utf-8 | iso-8859-1
    bom: bool = False
    newline: str = "\r\n"

    @property
    def read_encoding(self) -> str:
        return "utf-8-sig" if self.bom else self.encoding

    def to_json(self) -> dict[str, object]:
        return {"encoding": self.encoding, "bom": self.bom, "newline": self.newline}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> TextOptions:
        return cls(str(d.get("encoding", "utf-8")), bool(d.get("bom", False)), str(d.get("newline", "\r\n")))


def _canonical(encoding: str) -> str:
    try:
        return ENCODINGS[encoding.strip().lower()]
    except KeyError:
        raise FileFormatError(f"unsupported encoding {encoding[:30]!r}; use utf-8 or iso-8859-1") from None


def detect(path: Path, encoding: str | None = None) -> TextOptions:
    """The encoding, BOM and line ending of a text file (FileFormatError if it is no text file)."""
    with path.open("rb") as f:
        head = f.read(_BLOCK)
        if not head.strip():
            raise FileFormatError("the file is empty")
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            raise FileFormatError("the file is UTF-16 or UTF-32; send UTF-8 or ISO-8859-1")
        bom = head.startswith(codecs.BOM_UTF8)
        lf = head.find(b"\n")
        newline = "\r\n" if lf > 0 and head[lf - 1 : lf] == b"\r" else "\n"
        enc = _canonical(encoding) if encoding else None
        decoder = codecs.getincrementaldecoder("utf-8")()
        block, utf8 = head, True
        while block:
            if b"\x00" in block:
                raise FileFormatError("the file contains NUL bytes: it is binary or UTF-16, not a text file")
            if utf8 and enc != "iso-8859-1":
                try:
                    decoder.decode(block)
                except UnicodeDecodeError:
                    utf8 = False
                    if enc == "utf-8":
                        raise FileFormatError("the file is not valid UTF-8 (encoding utf-8 was given)") from None
            block = f.read(_BLOCK)
        if utf8 and enc != "iso-8859-1":
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
                if enc == "utf-8":
                    raise FileFormatError("the file is not valid UTF-8 (it ends inside a character)") from None
    chosen = enc or ("utf-8" if utf8 else "iso-8859-1")
    return TextOptions(chosen, bom and chosen == "utf-8", newline)
