"""The records that flow through the pipeline, whatever the file format.

An :class:`InputRecord` is one record of the client's file as read (text fields, untouched); a
:class:`Result` is what the pipeline answers for it. Formats turn bytes into the one and the other into
bytes; nothing else in filematch knows a file format. ``seq`` is the record's position in the file
(1-based), which keeps the output in input order and lets a job prove every record was answered once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import Any

__all__ = ["INPUT_FIELDS", "RESULT_FIELDS", "Code", "FileFormatError", "InputRecord", "Result"]


class FileFormatError(ValueError):
    """The file as a whole cannot be read (empty, wrong or missing columns, binary, malformed XML).

    The message names the problem and where (``line``, ``column``: 1-based, when known; the message says
    them too), never record content.
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        where = ", ".join(f"{k} {v}" for k, v in (("line", line), ("column", column)) if v is not None)
        super().__init__(f"{where}: {message}" if where else message)
        self.line = line
        self.column = column

    def to_json(self) -> dict[str, object]:
        """The HTTP face's 422 body: ``error`` and, when known, ``line`` and ``column``."""
        out: dict[str, object] = {"error": str(self)}
        if self.line is not None:
            out["line"] = self.line
        if self.column is not None:
            out["column"] = self.column
        return out


class Code(StrEnum):
    """Result codes, in order of precedence (docs/filematch.md, "Result codes")."""

    INVALID = "INVALID"
    DECEASED = "DECEASED"
    EMIGRATED = "EMIGRATED"
    REPLACED = "REPLACED"
    PROTECTED = "PROTECTED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    IDENTIFIED = "IDENTIFIED"
    AMBIGUOUS = "AMBIGUOUS"
    NOT_FOUND = "NOT_FOUND"
    UNAVAILABLE = "UNAVAILABLE"  # read-through mode: the register could not be asked about the number; send again


@dataclass(slots=True)
class InputRecord:
    """One client record. ``error`` is set when the line itself is broken (wrong field count, too long)."""

    seq: int
    ref: str = ""
    number: str = ""
    given: str = ""
    family: str = ""
    birth: str = ""
    gender: str = ""
    street: str = ""
    postnummer: str = ""
    poststed: str = ""
    kommune: str = ""
    error: str = ""

    def to_list(self) -> list[Any]:
        return [getattr(self, f) for f in _INPUT_SLOTS]

    @classmethod
    def from_list(cls, values: list[Any]) -> InputRecord:
        return cls(*values)


_INPUT_SLOTS = tuple(f.name for f in fields(InputRecord))
INPUT_FIELDS = _INPUT_SLOTS[1:-1]  # the data fields a file may carry: ref … kommune


@dataclass(slots=True)
class Result:
    """The answer for one record: its code and the current data the caller's profile releases."""

    seq: int
    ref: str
    code: Code
    number: str = ""  # the current number (the one asked for, the new one, or the one identified)
    input_number: str = ""
    given: str = ""
    middle: str = ""
    family: str = ""
    birth: str = ""  # YYYY-MM-DD
    gender: str = ""  # kvinne | mann
    status: str = ""  # Folkeregister person status: bosatt, doed, utflyttet, …
    death: str = ""  # YYYY-MM-DD
    street: str = ""  # address line, or the placeholder of a protected address
    postnummer: str = ""
    poststed: str = ""
    kommune: str = ""
    protection: str = ""  # DSF code of the address: 0, 4 (klientadresse), 7 (fortrolig), 6 (strengt fortrolig)
    changed: str = ""  # UPDATED: which of name, address differ from the input
    score: str = ""  # IDENTIFIED / AMBIGUOUS: the best candidate's log-odds, bits
    candidates: str = ""  # AMBIGUOUS: candidate numbers, best first, space-separated
    reason: str = ""  # INVALID, and any input problem noted on another code (e.g. number:checksum)
    # the type of the reported address (store.model.ADDRESS_TYPES: bosted, opphold — the present address, a
    # D-nummer holder's primary one — post, postUtland, deltBosted), kept when the address is masked; last, so
    # the columns before it stay where they were (CSV, XML; the legacy fixed-width layout has no place for it)
    address_type: str = ""

    def values(self) -> tuple[str, ...]:
        """The fields of :data:`RESULT_FIELDS`, in order (every one is text; ``code`` is a StrEnum)."""
        return _result_values(self)  # type: ignore[no-any-return]


RESULT_FIELDS = tuple(f.name for f in fields(Result))[1:]  # ref … address_type (seq is the position, not a field)
_result_values = attrgetter(*RESULT_FIELDS)
