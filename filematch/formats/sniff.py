"""Which format a Filematch file is in, from its first bytes: for a file sent without ``--format``.

- **xml**: the first character after a byte-order mark and white space is ``<`` (a declaration, a comment or
  the root element);
- **fixed** (fixed width): the first line is at least 31 characters (a fixed-width record's ``ref`` and
  ``number`` fields, filematch/formats/fixedwidth.py) with no ``;`` among its first 31, and no ``ref``
  column when split at ``;``;
- **csv** otherwise: a header ``ref;number;…`` (in any case, quoted or not), and anything else — an empty
  file, a headerless CSV, bytes that are no text — so that the CSV reader refuses it whole with its own
  reason (``line 1, column 1: …``), as it did when CSV was the default.

Only :data:`SNIFF_BYTES` are read. A file is never washed as a format it is not without a refusal: a CSV
line has its ``;`` early, a fixed-width line has none in its ``ref`` and ``number`` positions.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SNIFF_BYTES", "sniff_file", "sniff_format"]

SNIFF_BYTES = 4096
_FIXED_KEY = 31  # ref (20) + number (11): a fixed-width line is at least this long
_BOMS = (b"\xef\xbb\xbf",)  # UTF-8's; the formats read UTF-8 and ISO-8859-1 only


def sniff_format(head: bytes) -> str:
    """``xml``, ``csv`` or ``fixed`` for a file that starts with ``head`` (module docstring)."""
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    if head.lstrip(b" \t\r\n").startswith(b"<"):
        return "xml"
    first = head.lstrip(b"\r\n").split(b"\n", 1)[0].rstrip(b"\r")
    columns = [c.strip().strip(b'"').strip().lower() for c in first.split(b";")]
    if b"ref" in columns:
        return "csv"
    if len(first) >= _FIXED_KEY and b";" not in first[:_FIXED_KEY]:
        return "fixed"
    return "csv"


def sniff_file(path: Path) -> str:
    with path.open("rb") as f:
        return sniff_format(f.read(SNIFF_BYTES))
