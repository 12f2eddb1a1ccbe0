"""Text files of the client: encoding and line-ending detection, shared by the CSV and fixed-width formats.

Detection, in this order: an explicit encoding wins (``utf-8``, ``iso-8859-1`` and their aliases);
a UTF-16/32 byte-order mark or a NUL byte refuses the file (it is binary or UTF-16, which no client
register sends as text); a UTF-8 BOM means UTF-8; otherwise the whole file is checked as strict UTF-8 by
an incremental decoder (C speed, flat memory) and, if any byte sequence is not UTF-8, read as ISO-8859-1
(every byte is a character there, so detection never fails). The answer is written back the same way:
same encoding, same BOM, same line ending (CRLF or LF, from the first line). A refusal names the line
and the column (in bytes) of the first NUL or the first byte that is not UTF-8, never the bytes.

``max_field`` (``[filematch] max_field``, default :data:`MAX_FIELD` characters) bounds every field of a
record; the formats refuse a longer one as a broken line and never hold a line longer than
:attr:`TextOptions.max_line` in memory.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from filematch.records import FileFormatError

__all__ = ["ENCODINGS", "MAX_FIELD", "TextOptions", "detect"]

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "iso-8859-1": "iso-8859-1", "latin-1": "iso-8859-1",
             "latin1": "iso-8859-1", "iso8859-1": "iso-8859-1"}
_BLOCK = 1 << 20
MAX_FIELD = 1024  # characters; no register field comes near (names ≤ 100, an address line ≤ 200)
_MAX_COLUMNS = 10  # input columns a file may have (filematch.records.INPUT_FIELDS)


@dataclass(frozen=True, slots=True)
class TextOptions:
    """How a text file is (and its answer will be) encoded."""

    encoding: str = "utf-8"  # utf-8 | iso-8859-1
    bom: bool = False
    newline: str = "\r\n"
    max_field: int = MAX_FIELD  # characters in one field; a longer one refuses its line
    # what detection saw of the file (not kept with a job: its records are read when it is submitted)
    has_quotes: bool = True  # a " anywhere
    longest_line: int = -1  # bytes, line end included; -1: not known

    @property
    def plain(self) -> bool:
        """No quote and no line longer than ``max_field``: no line can be broken but by its number of
        fields, so the CSV reader reads the file as it is, at the csv module's speed."""
        return not self.has_quotes and 0 <= self.longest_line <= self.max_field

    @property
    def read_encoding(self) -> str:
        return "utf-8-sig" if self.bom else self.encoding

    @property
    def max_line(self) -> int:
        """The longest line that can hold valid fields: every column at ``max_field``, each quoted with every
        character a doubled quote, and the separators. A longer line is refused unread."""
        return _MAX_COLUMNS * (2 * self.max_field + 3)

    def to_json(self) -> dict[str, object]:
        return {"encoding": self.encoding, "bom": self.bom, "newline": self.newline, "max_field": self.max_field}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> TextOptions:
        limit = d.get("max_field", MAX_FIELD)
        return cls(str(d.get("encoding", "utf-8")), bool(d.get("bom", False)), str(d.get("newline", "\r\n")),
                   limit if isinstance(limit, int) else MAX_FIELD)


def _canonical(encoding: str) -> str:
    try:
        return ENCODINGS[encoding.strip().lower()]
    except KeyError:
        raise FileFormatError(f"unsupported encoding {encoding[:30]!r}; use utf-8 or iso-8859-1") from None


class _Position:
    """Where in the file a byte is (1-based line, column in bytes), and the longest line so far, counted
    block by block."""

    def __init__(self) -> None:
        self.lines = 0  # line ends before the current block
        self.carry = 0  # bytes of the current line before the current block
        self.longest = 0

    def of(self, block: bytes, i: int) -> tuple[int, int]:
        i = max(i, 0)
        start = block.rfind(b"\n", 0, i) + 1
        line = self.lines + block.count(b"\n", 0, i) + 1
        return line, (i - start + 1) + (self.carry if start == 0 else 0)

    def advance(self, block: bytes) -> None:
        parts = block.split(b"\n")
        self.lines += len(parts) - 1
        if len(parts) == 1:
            self.carry += len(block)
        else:
            inner = max(map(len, parts[1:-1]), default=-1) + 1  # (+ 1: the line end)
            self.longest = max(self.longest, self.carry + len(parts[0]) + 1, inner)
            self.carry = len(parts[-1])


def detect(path: Path, encoding: str | None = None) -> TextOptions:
    """The encoding, BOM and line ending of a text file (FileFormatError if it is no text file)."""
    with path.open("rb") as f:
        head = f.read(_BLOCK)
        if not head.strip():
            raise FileFormatError("the file is empty", 1, 1)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            raise FileFormatError("the file is UTF-16 or UTF-32; send UTF-8 or ISO-8859-1", 1, 1)
        bom = head.startswith(codecs.BOM_UTF8)
        lf = head.find(b"\n")
        newline = "\r\n" if lf > 0 and head[lf - 1 : lf] == b"\r" else "\n"
        enc = _canonical(encoding) if encoding else None
        decoder = codecs.getincrementaldecoder("utf-8")()
        block, utf8, at, quotes = head, True, _Position(), False
        while block:
            quotes = quotes or b'"' in block
            if (nul := block.find(b"\x00")) >= 0:
                raise FileFormatError("a NUL byte: the file is binary or UTF-16, not a text file", *at.of(block, nul))
            if utf8 and enc != "iso-8859-1":
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    utf8 = False
                    if enc == "utf-8":
                        raise FileFormatError("the file is not valid UTF-8 (encoding utf-8 was given) at this byte",
                                              *at.of(block, exc.start - pending)) from None
            at.advance(block)
            block = f.read(_BLOCK)
        if utf8 and enc != "iso-8859-1":
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                utf8 = False
                if enc == "utf-8":
                    raise FileFormatError("the file is not valid UTF-8: it ends inside a character",
                                          at.lines + 1, at.carry) from None
    chosen = enc or ("utf-8" if utf8 else "iso-8859-1")
    return TextOptions(chosen, bom and chosen == "utf-8", newline, has_quotes=quotes,
                       longest_line=max(at.longest, at.carry))
