"""CSV: ``;``-separated, one header row, UTF-8 (with or without BOM) or ISO-8859-1, CRLF or LF.

Input columns (header names, any order, case-insensitive): ``ref`` (the client's own reference,
required), ``number`` (fødselsnummer or D-nummer), ``given``, ``family``, ``birth`` — these five must
be present (values may be empty) — and optionally ``gender``, ``street``, ``postnummer``, ``poststed``,
``kommune``. An unknown or repeated column name refuses the file (a misspelt column would otherwise be
silently ignored); the refusal names the column's position, never its text (a file without a header
row has a record there). Fields may be quoted with ``"`` as RFC 4180 allows.

Broken lines are refused one by one, and every other line is washed: each non-blank line after the
header is exactly one record in the answer, so *records in = records washed + lines refused*, always. A
refused line is answered ``INVALID`` with a reason naming its line and column (``line 12: an unbalanced
quote in column 3 (given)``), never its content:

- **wrong number of fields** (``line 7 has 3 fields, expected 5``);
- **an unbalanced quote**: a quoted field may hold line breaks, but only as a record that then reads as
  RFC 4180 says — the quote closed (within :attr:`~filematch.formats.text.TextOptions.max_line`
  characters), followed by ``;`` or the line end, and the header's number of fields. Anything else is
  a quote left open by mistake: that one line is refused and reading goes on at the next line (before,
  one stray quote merged the rest of a file into one record);
- **a field longer than** ``max_field`` characters (``[filematch] max_field``);
- **a line longer than** ``max_line`` characters: refused unread (read in pieces of that size, so a
  hostile file of one long line costs no memory).

The ``ref`` of a refused line is answered when the fields before the problem hold it. NUL bytes and
bytes that are not of the file's encoding refuse the whole file (filematch.formats.text, with line and
column).

Output: the columns of :data:`filematch.records.RESULT_FIELDS` with a header row, in the input's
encoding, BOM and line ending. A value that a spreadsheet would take as a formula — one that starts
with ``=``, ``+``, ``-``, ``@``, a tab or a CR (OWASP, "CSV Injection") — is written with a leading
apostrophe (``'=1+2``, ``'-5``), and so is a value that starts with an apostrophe itself, so the rule
can be undone exactly: a value that starts with ``'`` has one apostrophe too many. A negative-looking
value stays readable (``'-5``) and no formula is ever run. Reading and writing stream through the
``csv`` module: memory is flat.

Speed: detection (filematch.formats.text) notes whether the file holds a quote and how long its longest
line is. A *plain* file — no quote, no line longer than ``max_field``: what registers export — cannot
have a broken line but by its number of fields, and is read by the ``csv`` module straight from the file,
as before. Any other file goes through :func:`_units`, which hands lines on as they are and takes the
slow path (Python) only for a line holding a quote or longer than ``max_field`` (a quoted line the csv
module reads strictly is passed at C speed: :func:`_closes`). Measured on 100k lines against the code
before, same input and run, medians of 5 (a loaded machine, load 8–26: ±20 %): a plain file's blocks and
reading 0.8–1.0× the old time, encoding 1.1–1.3×; a file with a quote in a quarter of its lines, blocks
(the local wash's path) 1.15×, reading whole (a job's submit) 1.8×.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

from filematch.formats.text import MAX_FIELD, TextOptions, detect
from filematch.records import INPUT_FIELDS, RESULT_FIELDS, FileFormatError, InputRecord, Result

__all__ = ["REQUIRED", "CsvBlock", "CsvFormat", "Layout", "neutralise"]

REQUIRED = ("ref", "number", "given", "family", "birth")
_MAX_REF = 200
_DIALECT: dict[str, Any] = {"delimiter": ";", "quotechar": '"'}
# A value a spreadsheet runs as a formula (OWASP "CSV Injection"), or one that starts with the apostrophe
# the rule adds; in rows joined without quoting (no CR or LF in a value): after a ; or a line's LF (a
# character class, not an alternation with ^: 4× faster), or at the text's start.
_FORMULA_START = "=+-@\t\r'"
_FORMULA_IN_ROWS = re.compile(r"[;\n][=+\-@\t']")
_RARE_FORMULA = "=+@\t'"  # the formula characters but -, which every date has


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each input field is in a row, from the header."""

    width: int
    ref_index: int
    pick: Callable[[list[str]], tuple[str, ...]]
    names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CsvBlock:
    layout: Layout  # the file's header, as every block is parsed by it
    first_line: int  # line number (1-based) of the line before the block's first: the block's offset
    lines: int
    text: str
    max_field: int = MAX_FIELD
    checked: bool = True  # read through _units (the file is not plain: TextOptions.plain)


@dataclass(slots=True)
class _Refusal:
    problem: str  # what is wrong and where in the line (``an unbalanced quote in column 3 (given)``)
    ref: str
    raw: str  # what stands for the line in a block: the line, or the head of one too long to hold


class _Reading:
    """What the line scanner (:func:`_units`) tells the record loop: how many lines it has read
    (``line_num``, as the csv reader counts them) and the refusal of the unit it just gave (an empty line
    stands for a refused one in the csv reader)."""

    __slots__ = ("line_num", "refusal", "layout")

    def __init__(self, layout: Layout | None = None) -> None:
        self.line_num = 0
        self.refusal: _Refusal | None = None
        self.layout = layout


def _column(index: int, layout: Layout | None) -> str:
    name = layout.names[index] if layout is not None and index < len(layout.names) else ""
    return f"column {index + 1}" + (f" ({name})" if name else "")


def _ref_before(text: str, field: int, layout: Layout | None) -> str:
    """The ref, when it is among the fields before ``field`` (those parse the same whatever follows)."""
    if layout is None or layout.ref_index >= field:
        return ""
    row = next(csv.reader([text], **_DIALECT), [])
    return row[layout.ref_index][:_MAX_REF] if layout.ref_index < len(row) else ""


def _ends_quoted(line: str, quoted: bool) -> bool:
    """Whether a line of text (with its line end) leaves the csv reader inside a quoted field, given whether
    it began inside one: the csv module's states for this dialect (``;``, ``"`` doubled inside quotes,
    ``strict=False``). A quote opens a field only at the field's start; elsewhere in an unquoted field
    (``O"Neil``) it is a character, so counting quotes is not enough."""
    return _quote_state(line, quoted)[0]


def _quote_state(line: str, quoted: bool) -> tuple[bool, int]:
    """:func:`_ends_quoted`, and the index of the field (0-based) whose quote is open at the end."""
    state = _IN_QUOTED if quoted else _START
    field = opened = 0
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
            opened = field
        if c == ";" and state == _START:
            field += 1
    return state == _IN_QUOTED, opened


_START, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED = range(4)


def _skip_rest(readline: Callable[[int], str], limit: int) -> None:
    while piece := readline(limit):
        if piece[-1] in "\r\n":
            return


def _units(readline: Callable[[int], str], options: TextOptions, at: _Reading) -> Iterator[str]:
    """The file's lines as the csv reader is to read them, one record's text each: a line as it is (the
    common case: no quote, no more than ``max_field`` characters), the lines of a record whose quoted
    field holds line breaks joined, or an empty line for a refused one (``at.refusal`` then says why).
    ``at.line_num`` is the number of lines read for the units given."""
    max_field, max_line = options.max_field, options.max_line
    limit = max_line + 2  # a line of max_line characters and its CRLF is read whole
    back: list[str] = []  # lines read ahead for a record that turned out broken, to be read again (reversed)
    while True:
        line = back.pop() if back else readline(limit)
        if not line:
            return
        at.line_num += 1
        if '"' not in line and len(line) <= max_field:
            yield line
            continue
        if len(line) >= limit and line[-1] not in "\r\n":
            _skip_rest(readline, limit)  # (a piece given back was the last one read: the rest of it follows)
            at.refusal = _Refusal(f"the line is longer than {max_line} characters", "", line + "\n")
            yield "\n"
            continue
        quoted, opened = (_quote_state(line, False) if '"' in line and not _closes(line) else (False, 0))
        if quoted:
            parts, size = [line], len(line)
            while quoted and size <= max_line:
                more = back.pop() if back else readline(limit)
                if not more:
                    break
                parts.append(more)
                size += len(more)
                quoted = _ends_quoted(more, True)
            text = "".join(parts)
            if not quoted and size <= max_line and _one_record(text, max_field, at.layout):
                at.line_num += len(parts) - 1
                yield text
                continue
            back.extend(reversed(parts[1:]))
            at.refusal = _Refusal(f"an unbalanced quote in {_column(opened, at.layout)}",
                                  _ref_before(line, opened, at.layout), line)
            yield "\n"
            continue
        if len(line) > max_field:
            row = next(csv.reader([line], **_DIALECT), [])
            long = next((i for i, v in enumerate(row) if len(v) > max_field), None)
            if long is not None:
                at.refusal = _Refusal(f"{_column(long, at.layout)} is longer than {max_field} characters",
                                      _ref_before(line, long, at.layout), line)
                yield "\n"
                continue
        yield line


def _closes(line: str) -> bool:
    """Whether a line reads strictly as RFC 4180 (every quoted field closed, then ``;`` or the line end): then
    it does not end inside a quote. The csv module (C) answers this at a tenth of :func:`_quote_state`'s
    cost; a line it refuses (``"x"y``, read leniently) is left to :func:`_quote_state`."""
    try:
        next(csv.reader((line,), strict=True, **_DIALECT), None)
    except csv.Error:
        return False
    return True


def _one_record(text: str, max_field: int, layout: Layout | None) -> bool:
    """Whether the lines of ``text`` read as one RFC 4180 record of the header's width (strictly: after a
    closing quote only ``;`` or the line end), no field longer than ``max_field``."""
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True, **_DIALECT))
    except csv.Error:
        return False
    return (len(rows) == 1 and (layout is None or len(rows[0]) == layout.width)
            and all(len(v) <= max_field for v in rows[0]))


def _layout(reader: Any, at: _Reading) -> Layout:
    """Read and check the header row (FileFormatError names what is wrong, never the text: a file without a
    header has a record there). ``reader.line_num`` counts the lines read."""
    for header in reader:
        if at.refusal is not None:
            raise FileFormatError(f"the header row: {at.refusal.problem}", reader.line_num)
        if any(c.strip() for c in header):
            break
    else:
        raise FileFormatError("the file has no header row", reader.line_num or 1)
    line = reader.line_num
    names = [h.strip().lower() for h in header]
    unknown = [i + 1 for i, n in enumerate(names) if n not in INPUT_FIELDS]
    if unknown:
        raise FileFormatError(f"no header row, or unknown column name(s) in column(s) "
                              f"{', '.join(map(str, unknown[:10]))}; the header names the columns, of: "
                              f"{', '.join(INPUT_FIELDS)}", line, unknown[0])
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileFormatError(f"repeated column(s) in the header: {', '.join(dupes)}", line,
                              names.index(dupes[0]) + 1)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise FileFormatError(f"missing column(s) in the header: {', '.join(missing)}", line)
    width = len(names)
    return Layout(width, names.index("ref"),
                  itemgetter(*[names.index(n) if n in names else width for n in INPUT_FIELDS]), tuple(names))


def _records(reader: Any, layout: Layout, seq: int, line0: int, at: _Reading, counter: Any, *,
             by_line: bool = False) -> Iterator[InputRecord]:
    """The records of the rows ``reader`` yields; a broken line is a record with ``error`` (``at.refusal``
    says why for a line :func:`_units` refused). ``counter.line_num`` counts the lines read: the reader's
    own for a plain file, ``at`` over :func:`_units` (which joins a record's lines into one). ``seq``
    counts records from the given start, or is the line number when ``by_line``."""
    width, pick = layout.width, layout.pick
    while True:
        try:
            for row in reader:
                if len(row) == width:
                    seq = line0 + counter.line_num if by_line else seq + 1
                    row.append("")
                    yield InputRecord(seq, *pick(row))
                    continue
                n = line0 + counter.line_num
                refusal, at.refusal = at.refusal, None
                if refusal is not None:
                    error, ref = f"line {n}: {refusal.problem}", refusal.ref
                elif not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                else:
                    error = f"line {n} has {len(row)} fields, expected {width}"
                    ref = row[layout.ref_index][:_MAX_REF] if layout.ref_index < len(row) else ""
                seq = n if by_line else seq + 1
                yield InputRecord(seq, ref=ref, error=error)
            return
        except csv.Error:  # not expected past _units' checks; if it comes, it is that line's, not the file's
            n = line0 + counter.line_num
            seq = n if by_line else seq + 1
            yield InputRecord(seq, error=f"line {n} cannot be read as CSV")


def neutralise(value: str) -> str:
    """``value`` as the CSV answer writes it: a leading apostrophe before a formula-like start (module doc)."""
    return "'" + value if value and value[0] in _FORMULA_START else value


class CsvFormat:
    name = "csv"
    media_type = "text/csv"
    suffix = ".csv"

    def detect(self, path: Path, encoding: str | None = None) -> TextOptions:
        return detect(path, encoding)

    def read(self, path: Path, options: TextOptions) -> Iterator[InputRecord]:
        """The records of the file (after the header); FileFormatError for a bad header. A plain file
        (:attr:`TextOptions.plain`: the common case) is read by the csv module as it is; any other through
        :func:`_units`, which refuses its broken lines one by one."""
        with path.open(encoding=options.read_encoding, newline="") as f:
            at = _Reading()
            if options.plain:
                reader = csv.reader(f, strict=False, **_DIALECT)
                counter: Any = reader
            else:
                reader = csv.reader(_units(f.readline, options, at), strict=False, **_DIALECT)
                counter = at
            at.layout = layout = _layout(reader, at)
            yield from _records(reader, layout, 0, 0, at, counter)

    def blocks(self, path: Path, options: TextOptions, lines: int) -> Iterator[CsvBlock]:
        """The file after its header as blocks of about ``lines`` lines of text, for :meth:`parse_block`
        in another process (the reading process then only splits lines). A block of a plain file is its
        lines as they are. Otherwise a block ends only between records (a record whose quoted field holds
        line breaks is never cut), and a line too long to hold is sent as its head (still too long), so
        each block parses as the whole file does."""
        with path.open(encoding=options.read_encoding, newline="") as f:
            at = _Reading()
            if options.plain:
                reader = csv.reader(f, strict=False, **_DIALECT)
                layout = _layout(reader, at)
                line_no = reader.line_num
                while text := list(islice(f, lines)):
                    yield CsvBlock(layout, line_no, len(text), "".join(text), options.max_field, False)
                    line_no += len(text)
                return
            units = _units(f.readline, options, at)
            at.layout = layout = _layout(csv.reader(units, strict=False, **_DIALECT), at)
            first = at.line_num
            chunk: list[str] = []
            for unit in units:
                if at.refusal is not None:
                    unit, at.refusal = at.refusal.raw, None
                chunk.append(unit)
                if at.line_num - first >= lines:
                    yield CsvBlock(layout, first, at.line_num - first, "".join(chunk), options.max_field)
                    first, chunk = at.line_num, []
            if chunk:
                yield CsvBlock(layout, first, at.line_num - first, "".join(chunk), options.max_field)

    def parse_block(self, block: CsvBlock) -> list[InputRecord]:
        """The records of one block of :meth:`blocks`; ``seq`` is each record's line number in the file."""
        at = _Reading(block.layout)
        text = io.StringIO(block.text, newline="")
        if block.checked:
            reader = csv.reader(_units(text.readline, TextOptions(max_field=block.max_field), at), strict=False,
                                **_DIALECT)
            counter: Any = at
        else:
            reader = counter = csv.reader(text, strict=False, **_DIALECT)
        return list(_records(reader, block.layout, block.first_line, block.first_line, at, counter, by_line=True))

    def header(self, options: TextOptions) -> bytes:
        text = ";".join(RESULT_FIELDS) + options.newline
        return text.encode(options.read_encoding if options.bom else options.encoding, "replace")

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes:
        """The rows as the csv module writes them, formula-like values :func:`neutralise`\\ d. A row none of
        whose fields holds ``;``, ``"``, CR or LF or starts with ``-`` needs neither quoting nor ``-``'s
        apostrophe, so it is joined directly (the common case, at a fifth of the csv module's cost); any other
        row goes through :func:`neutralise` and the csv module. A run of joined rows is then searched for the
        other formula characters at once (``=+@'`` and tab hardly occur in register data: one ``in`` each
        over the run, at memchr speed), and only a run that has one is searched for them at a field's start
        (a regex: per row it cost half again the encoding) and, if so, written through the csv module. A
        date's ``-`` is why ``-`` is looked for per row, after ``;``."""
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", quotechar='"', lineterminator=options.newline)
        newline, seps, start = options.newline, len(RESULT_FIELDS) - 1, _FORMULA_START
        lines: list[str] = []

        def flush() -> None:
            text = newline.join(lines) + newline
            if any(c in text for c in _RARE_FORMULA) and _FORMULA_IN_ROWS.search(text):
                w.writerows([neutralise(v) for v in line.split(";")] for line in lines)  # (no ; in their values)
            else:
                buf.write(text)
            lines.clear()

        for r in results:
            line = ";".join(r.values())
            if (line.count(";") == seps and '"' not in line and "\n" not in line and "\r" not in line
                    and ";-" not in line and line[0] not in start):
                lines.append(line)
            else:
                if lines:
                    flush()
                w.writerow([neutralise(v) for v in r.values()])
        if lines:
            flush()
        return buf.getvalue().encode(options.encoding, "replace")

    def footer(self, options: TextOptions) -> bytes:
        return b""
