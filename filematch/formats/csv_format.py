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
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path

from filematch.formats.text import TextOptions, detect
from filematch.records import INPUT_FIELDS, RESULT_FIELDS, FileFormatError, InputRecord, Result

__all__ = ["REQUIRED", "CsvFormat"]

REQUIRED = ("ref", "number", "given", "family", "birth")
_MAX_FIELD = 200


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
            pick = itemgetter(*[names.index(n) if n in names else width for n in INPUT_FIELDS])
            seq = 0
            for row in reader:
                if len(row) == width:
                    seq += 1
                    row.append("")
                    yield InputRecord(seq, *pick(row))
                elif not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                else:
                    seq += 1
                    ref = row[names.index("ref")] if names.index("ref") < len(row) else ""
                    yield InputRecord(seq, ref=ref[:_MAX_FIELD],
                                      error=f"line {reader.line_num} has {len(row)} fields, expected {width}")

    def header(self, options: TextOptions) -> bytes:
        text = ";".join(RESULT_FIELDS) + options.newline
        return text.encode(options.read_encoding if options.bom else options.encoding, "replace")

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", quotechar='"', lineterminator=options.newline)
        w.writerows(r.values() for r in results)
        return buf.getvalue().encode(options.encoding, "replace")

    def footer(self, options: TextOptions) -> bytes:
        return b""
