"""How the command line prints rows: a table for people, JSON or CSV for scripts, and help that shows defaults.

Every listing command (``audit``, ``users list``, ``rejects``, ``hl7 peers list``, ``usage-report``,
``filematch status``) builds its rows as dicts with the same keys in the same order and hands them to
:func:`emit`, which prints them per the command's ``--json`` / ``--csv`` switch (:func:`add_format_options`):

- a table (rich) on a terminal, wrapped to its width;
- the same table unwrapped when standard output is not a terminal (a pipe or a file): no cell is cut or
  folded, however wide, so ``pregbridge audit | grep …`` sees whole values;
- ``--json``: one JSON document on one line, ``{"rows": [...], ...}`` with any summary fields beside the
  rows (numbers stay numbers, times are ISO 8601 UTC);
- ``--csv``: a header line and one line per row (RFC 4180 quoting); lists are space-separated. A text value
  that a spreadsheet would take as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a CR;
  OWASP "CSV Injection") gets a leading apostrophe, and so does one that starts with an apostrophe, as
  Filematch's CSV does (filematch/formats/csv_format.py): a client's text in an audit record never runs
  as a formula on the operator's machine.

Values are client text in places (an audit record's purpose, a reject's reason): the table prints them as
text, never as rich markup, with control characters (terminal escapes) removed; JSON escapes them.

:func:`show_defaults` adds ``(default: …)`` to the help of every option whose default is not None/False,
unless its help already names the default, in every parser of the tree.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["add_format_options", "console", "emit", "show_defaults"]

_WIDE = 1 << 20  # "no width limit" for a console that does not write to a terminal


def add_format_options(parser: argparse.ArgumentParser, *, csv: bool = True) -> None:
    """``--json`` (and ``--csv`` where the output is a table) as mutually exclusive switches."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--json", dest="output_format", action="store_const", const="json",
                       help="print one JSON document (for scripts)")
    if csv:
        group.add_argument("--csv", dest="output_format", action="store_const", const="csv",
                           help="print CSV with a header line (for spreadsheets and scripts)")
    parser.set_defaults(output_format="table")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return " ".join(_cell(v) for v in value)
    return str(value)


_FORMULA = ("=", "+", "-", "@", "\t", "\r", "'")


def _csv_cell(value: Any) -> str:
    text = _cell(value)
    if isinstance(value, str) and text.startswith(_FORMULA):
        return "'" + text
    return text


def _printable(text: str) -> str:
    """``text`` with every character that is not printable (control characters: terminal escapes, NUL, line
    breaks) shown as ``?``."""
    return text if text.isprintable() else "".join(ch if ch.isprintable() else "?" for ch in text)


def console(stream: TextIO | None = None) -> Console:
    """A console on ``stream`` (stdout) that never cuts a line when it is not a terminal."""
    stream = stream or sys.stdout
    con = Console(file=stream, highlight=False, soft_wrap=True)
    if not con.is_terminal:
        con = Console(file=stream, highlight=False, soft_wrap=True, width=_WIDE)
    return con


def emit(args: argparse.Namespace, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], *,
         summary: str | None = None, extra: Mapping[str, Any] | None = None, stream: TextIO | None = None) -> None:
    """Print ``rows`` (dicts keyed by ``columns``) in the format ``args.output_format`` asks for. ``summary`` is a
    line under the table (not printed for JSON or CSV); ``extra`` goes beside the rows in JSON."""
    stream = stream or sys.stdout
    fmt = getattr(args, "output_format", "table")
    if fmt == "json":
        doc = {"rows": [{c: _plain(r.get(c)) for c in columns} for r in rows], **_plain(dict(extra or {}))}
        stream.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_cell(r.get(c)) for c in columns])
        return
    con = console(stream)
    table = Table(*columns, show_lines=False)
    if not con.is_terminal:
        for column in table.columns:
            column.no_wrap = True
            column.overflow = "ignore"
    for r in rows:
        table.add_row(*(Text(_printable(_cell(r.get(c)))) for c in columns))
    con.print(table)
    if summary:
        con.print(summary)


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Name the default in the help of every option of ``parser`` and of every subcommand parser below it whose
    default is not None/False and whose help does not name it already."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                show_defaults(child)
            continue
        default = action.default
        if (not action.option_strings or isinstance(action, argparse._StoreConstAction)
                or default is None or default is False or default is argparse.SUPPRESS
                or action.help is argparse.SUPPRESS or "default" in (action.help or "")):
            continue
        action.help = f"{action.help or ''} (default: %(default)s)".strip()
