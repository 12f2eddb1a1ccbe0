"""Which format a Filematch file is in, from its first bytes: for a file sent without ``--format``.

- **xml**: the first character after a byte-order mark and white space is ``<`` (a declaration, a comment or
  the root element);
- **csv**: the first line, split at ``;``, has a column named ``ref`` (the one column every CSV file must
  have, filematch/formats/csv_format.py), quoted or not, in any case;
- **fixed** (fixed width) otherwise: a legacy batch file has no header and no separators.

Only :data:`SNIFF_BYTES` are read. A file that is none of these is then refused by the format chosen,
with the reason that format gives (a CSV without its header reads as fixed width and is refused line by
line, never silently washed as something else).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SNIFF_BYTES", "sniff_file", "sniff_format"]

SNIFF_BYTES = 4096
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
    if len(columns) > 1 and b"ref" in columns:
        return "csv"
    return "fixed"


def sniff_file(path: Path) -> str:
    with path.open("rb") as f:
        return sniff_format(f.read(SNIFF_BYTES))
