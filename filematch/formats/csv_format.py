"""CSV: ``;``-separated, one header row, UTF-8 (with or without BOM) or ISO-8859-1, CRLF or LF.

Input columns (header names, any order, case-insensitive): ``ref`` (the client's own reference,
required), ``number`` (fødselsnummer or D-nummer), ``given``, ``family``, ``birth`` — these five must
be present (values may be empty) — and optionally ``gender``, ``street``, ``postnummer``, ``poststed``,
``kommune``. An unknown or repeated column name refuses the file (a misspelt column would otherwise be
silently ignored). A line with the wrong number of fields is answered ``INVALID`` and the others are
washed. Fields may be quoted with ``"`` as RFC 4180 allows.

Output: the columns of :data:`filematch.records.RESULT_FIELDS` with a header row, in the input's
encoding, BOM and line ending. Reading and writing stream through the ``csv`` module: memory is flat.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from filematch.formats.text import TextOptions, detect
from filematch.records import INPUT_FIELDS, RESULT_FIELDS, FileFormatError, InputRecord, Result

__all__ = ["REQUIRED", "CsvBlock", "CsvFormat", "Layout"]

REQUIRED = ("ref", "number", "given", "family", "birth")
_MAX_FIELD = 200


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each input field is in a row, from the header."""

    width: int
    ref_index: int
    pick: Callable[[list[str]], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class CsvBlock:
    layout: Layout  # the file's header, as every block is parsed by it
    first_line: int  # line number (1-based) of the line before the block's first: the block's offset
    lines: int
    text: str


def _layout(reader: Any) -> Layout:
    """Read and check the header row (FileFormatError names what is wrong)."""
    header = next((row for row in reader if any(c.strip() for c in row)), None)
    if header is None:
        raise FileFormatError("the file has no header row")
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n not in INPUT_FIELDS]
    if unknown:
        raise FileFormatError(f"unknown column(s) in the header: {', '.join(n[:30] for n in unknown[:5])}; "
                              f"known: {', '.join(INPUT_FIELDS)}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileFormatError(f"repeated column(s) in the header: {', '.join(dupes)}")
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise FileFormatError(f"missing column(s) in the header: {', '.join(missing)}")
    width = len(names)
    return Layout(width, names.index("ref"),
                  itemgetter(*[names.index(n) if n in names else width for n in INPUT_FIELDS]))


def _records(reader: Any, layout: Layout, seq: int, line0: int, *, by_line: bool = False) -> Iterator[InputRecord]:
    """The records of the rows ``reader`` yields; a row of the wrong width is a record with ``error``.
    ``seq`` counts records from the given start, or is the line number when ``by_line``."""
    width, pick = layout.width, layout.pick
    for row in reader:
        n = line0 + reader.line_num
        if len(row) == width:
            seq = n if by_line else seq + 1
            row.append("")
            yield InputRecord(seq, *pick(row))
        elif not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        else:
            seq = n if by_line else seq + 1
            ref = row[layout.ref_index] if layout.ref_index < len(row) else ""
            yield InputRecord(seq, ref=ref[:_MAX_FIELD], error=f"line {n} has {len(row)} fields, expected {width}")


def _ends_quoted(line: str, quoted: bool) -> bool:
    """Whether a line of text (with its line end) leaves the csv reader inside a quoted field, given whether
    it began inside one: the csv module's states for this dialect (``;``, ``"`` doubled inside quotes,
    ``strict=False``). A quote opens a field only at the field's start; elsewhere in an unquoted field
    (``O"Neil``) it is a character, so counting quotes is not enough. Lines without a quote are the
    common case and cost one ``in``."""
    if '"' not in line:
        return quoted
    state = _IN_QUOTED if quoted else _START
    for c in line:
        if state == _IN_QUOTED:
            if c == '"':
                state = _QUOTE_IN_QUOTED
        elif state == _QUOTE_IN_QUOTED:  # a doubled quote, or the field's closing quote
            state = _IN_QUOTED if c == '"' else _START if c in ";\r\n" else _IN_FIELD
        elif c in ";\r\n":
            state = _START
        elif state == _START:
            state = _IN_QUOTED if c == '"' else _IN_FIELD
    return state == _IN_QUOTED


_START, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED = range(4)


class CsvFormat:
    name = "csv"
    media_type = "text/csv"
    suffix = ".csv"

    def detect(self, path: Path, encoding: str | None = None) -> TextOptions:
        return detect(path, encoding)

    def read(self, path: Path, options: TextOptions) -> Iterator[InputRecord]:
        """The records of the file (after the header); FileFormatError for a bad header."""
        with path.open(encoding=options.read_encoding, newline="") as f:
            reader = csv.reader(f, delimiter=";", quotechar='"', strict=False)
            layout = _layout(reader)
            yield from _records(reader, layout, 0, 0)

    def blocks(self, path: Path, options: TextOptions, lines: int) -> Iterator[CsvBlock]:
        """The file after its header as blocks of about ``lines`` lines of text, for :meth:`parse_block`
        in another process (the reading process then only splits lines). A block never ends inside a
        quoted field (:func:`_ends_quoted`), so each block parses as the whole file does."""
        with path.open(encoding=options.read_encoding, newline="") as f:
            reader = csv.reader(f, delimiter=";", quotechar='"', strict=False)
            layout = _layout(reader)
            line_no = reader.line_num
            while True:
                chunk = list(islice(f, lines))
                if not chunk:
                    return
                quoted = False
                for line in chunk:
                    quoted = _ends_quoted(line, quoted)
                while quoted:
                    more = f.readline()
                    if not more:
                        break
                    chunk.append(more)
                    quoted = _ends_quoted(more, quoted)
                yield CsvBlock(layout, line_no, len(chunk), "".join(chunk))
                line_no += len(chunk)

    def parse_block(self, block: CsvBlock) -> list[InputRecord]:
        """The records of one block of :meth:`blocks`; ``seq`` is each record's line number in the file."""
        reader = csv.reader(io.StringIO(block.text, newline=""), delimiter=";", quotechar='"', strict=False)
        return list(_records(reader, block.layout, block.first_line, block.first_line, by_line=True))

    def header(self, options: TextOptions) -> bytes:
        text = ";".join(RESULT_FIELDS) + options.newline
        return text.encode(options.read_encoding if options.bom else options.encoding, "replace")

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes:
        """The rows as the csv module writes them. A row none of whose fields holds ``;``, ``"``, CR or LF
        needs no quoting, so it is joined directly (the common case, at a fifth of the csv module's cost);
        any other row goes through the csv module."""
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", quotechar='"', lineterminator=options.newline)
        newline, seps = options.newline, len(RESULT_FIELDS) - 1
        lines = []
        for r in results:
            line = ";".join(r.values())
            if line.count(";") == seps and '"' not in line and "\n" not in line and "\r" not in line:
                lines.append(line)
            else:
                if lines:
                    buf.write(newline.join(lines) + newline)
                    lines = []
                w.writerow(r.values())
        if lines:
            buf.write(newline.join(lines) + newline)
        return buf.getvalue().encode(options.encoding, "replace")

    def footer(self, options: TextOptions) -> bytes:
        return b""
