"""Fixed width: the legacy batch layout, one record per line, positions in characters (1-based).

Input layout (``INPUT_LAYOUT``; 169 characters; trailing blanks may be left out)::

    pos  len  field
      1   20  ref          the client's own reference
     21   11  number       fødselsnummer / D-nummer, blank if none
     32   30  family
     62   30  given        given name(s), middle name included
     92    8  birth        DDMMYYYY (00 for an unknown day or month), blank if unknown
    100    1  gender       K (kvinne) / M (mann) / blank
    101   40  street       street name, house number and letter
    141    4  postnummer
    145   25  poststed

Output layout (``OUTPUT_LAYOUT``; 320 characters): ref 1–20, code 21–32, number 33–43, input_number
44–54, family 55–84, given 85–114, middle 115–134, birth 135–142 (DDMMYYYY), gender 143 (K/M),
status 144–155, death 156–163 (DDMMYYYY), street 164–203, postnummer 204–207, poststed 208–232,
kommune 233–236, protection 237 (DSF code), changed 238–249, score 250–255, candidates 256–290 (up to
three numbers), reason 291–320. Values longer than their field are cut; numbers and codes always fit.

Encoding and line ending are detected as for CSV (usually ISO-8859-1 and CRLF in legacy files). A line
shorter than 31 characters (no room for ref and number) or longer than 169 is refused: answered
``INVALID`` with its line number, and the others are washed, so records in = records washed + lines
refused. A line is read at most 171 characters at a time (the rest of a longer one is skipped unread):
one hostile line costs no memory. NUL bytes and bytes not of the file's encoding refuse the file (with
line and column), as for CSV; there are no quotes and no header.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path

from filematch.formats.text import TextOptions, detect
from filematch.records import FileFormatError, InputRecord, Result

__all__ = ["INPUT_LAYOUT", "OUTPUT_LAYOUT", "FixedWidthFormat"]

INPUT_LAYOUT: tuple[tuple[str, int, int], ...] = (  # (field, 1-based start, length)
    ("ref", 1, 20), ("number", 21, 11), ("family", 32, 30), ("given", 62, 30), ("birth", 92, 8),
    ("gender", 100, 1), ("street", 101, 40), ("postnummer", 141, 4), ("poststed", 145, 25),
)
INPUT_WIDTH = 169
_MIN_WIDTH = 31
OUTPUT_LAYOUT: tuple[tuple[str, int], ...] = (  # (field, length), consecutive from position 1
    ("ref", 20), ("code", 12), ("number", 11), ("input_number", 11), ("family", 30), ("given", 30), ("middle", 20),
    ("birth", 8), ("gender", 1), ("status", 12), ("death", 8), ("street", 40), ("postnummer", 4),
    ("poststed", 25), ("kommune", 4), ("protection", 1), ("changed", 12), ("score", 6), ("candidates", 35),
    ("reason", 30),
)
OUTPUT_WIDTH = sum(n for _, n in OUTPUT_LAYOUT)
_SLICES = tuple((name, slice(start - 1, start - 1 + n)) for name, start, n in INPUT_LAYOUT)
_GENDER = {"kvinne": "K", "mann": "M"}


def _legacy_date(iso: str) -> str:
    if not iso:
        return ""
    d = dt.date.fromisoformat(iso)
    return f"{d.day:02d}{d.month:02d}{d.year:04d}"


class FixedWidthFormat:
    name = "fixed"
    media_type = "text/plain"
    suffix = ".txt"

    def detect(self, path: Path, encoding: str | None = None) -> TextOptions:
        return detect(path, encoding or None)

    def read(self, path: Path, options: TextOptions) -> Iterator[InputRecord]:
        limit = INPUT_WIDTH + 2  # a full line and its CRLF
        with path.open(encoding=options.read_encoding, newline="") as f:
            seq = n = 0
            while line := f.readline(limit):
                n += 1
                long = len(line) >= limit and line[-1] not in "\r\n"
                if long:
                    while (rest := f.readline(limit)) and rest[-1] not in "\r\n":
                        pass
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                seq += 1
                if long or len(line) < _MIN_WIDTH or len(line) > INPUT_WIDTH:
                    size = f"longer than {INPUT_WIDTH} characters" if long else f"{len(line)} characters long"
                    yield InputRecord(seq, ref=line[:20].strip(),
                                      error=f"line {n} is {size}, expected {_MIN_WIDTH}-{INPUT_WIDTH}")
                    continue
                rec = InputRecord(seq)
                for name, sl in _SLICES:
                    setattr(rec, name, line[sl].strip())
                yield rec
            if seq == 0:
                raise FileFormatError("the file has no records", n or 1)

    def header(self, options: TextOptions) -> bytes:
        return b"\xef\xbb\xbf" if options.bom else b""

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes:
        lines = []
        for r in results:
            values = {"ref": r.ref, "code": r.code.value, "number": r.number, "input_number": r.input_number,
                      "family": r.family, "given": r.given, "middle": r.middle, "birth": _legacy_date(r.birth),
                      "gender": _GENDER.get(r.gender, ""), "status": r.status, "death": _legacy_date(r.death),
                      "street": r.street, "postnummer": r.postnummer, "poststed": r.poststed, "kommune": r.kommune,
                      "protection": r.protection, "changed": r.changed, "score": r.score,
                      "candidates": " ".join(r.candidates.split()[:3]), "reason": r.reason}
            lines.append("".join(values[name][:n].ljust(n) for name, n in OUTPUT_LAYOUT))
        text = options.newline.join(lines) + (options.newline if lines else "")
        return text.encode(options.encoding, "replace")

    def footer(self, options: TextOptions) -> bytes:
        return b""
