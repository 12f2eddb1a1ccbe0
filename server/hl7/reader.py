"""Reading a decoded HL7 v2 message (ER7 text): a lazy reader of our own, python-hl7 for odd delimiters.

What the handlers need of a message is small: its separators, the first segment of a name, a field of
that segment as wire text (they split repetitions and components themselves, see
:mod:`server.hl7.handlers`), python-hl7's unescaping, and the segment re-encoded for an echo.
:func:`read_message` gives exactly that.

Why own code rather than ``hl7.parse`` on every message: python-hl7 builds the whole tree up front, a
container object per field, repetition, component and sub-component (~90 objects for a three-segment
PIX query), which cost ~60 µs of a PIX answer that has to stay near 100 µs in all (issue #5,
docs/hl7.md "Performance"). This reader splits the text into segments on CR, and a segment into
fields on the MSH-declared field separator only when a handler asks for it; unescaping is
python-hl7's own :func:`hl7.util.unescape`, called only when the text holds a backslash (as before).

Equivalence with python-hl7. The reader is used only when the delimiters are *regular*: the first
segment is ``MSH``, MSH-2 has at least four encoding characters and ends with the field separator
inside the MSH segment, the field separator and the component, repetition, escape and sub-component
characters are five different characters, none of them CR, and no later segment starts with
``MSH``/``BHS``/``FHS`` (python-hl7 splits those as headers). For such a message every value it
offers is the one python-hl7's tree gives (``str(segment[n])``, the segment name, the separators,
the segment re-encoded with the standard delimiters); tests/unit/test_hl7_reader.py checks this on
every .hl7 fixture and on generated messages. Any other message is parsed by python-hl7 as before
and served through the same interface, so its readings, and its parse errors (a NAK with code 102),
stay exactly what they were.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import hl7
import hl7.containers
import hl7.util
from hl7.util import unescape as _hl7_unescape

__all__ = ["Message", "Segment", "read_message"]

_HEADERS = ("MSH", "BHS", "FHS")


def _drop(record: logging.LogRecord) -> bool:
    return False


# python-hl7 logs the text it cannot unescape or parse (``Error decoding hex value [ZZ], field
# [@PID.5.1^NORDMANN\XZZ\]``): a name or a number in the log. Its loggers are named after its files; they
# are silenced here, where python-hl7 is put to use, and the caller's NAK or error says what went wrong.
for _module in (hl7.util, hl7.containers):
    _logger = logging.getLogger(_module.__file__)
    _logger.setLevel(logging.CRITICAL + 1)
    _logger.addFilter(_drop)
_STANDARD = "|^~\\&"


class Segment(Protocol):
    """One segment: ``field(n)`` is python-hl7's ``str(segment[n])`` (for MSH: MSH-n, MSH-1 at index 1)."""

    name: str

    def __len__(self) -> int: ...

    def field(self, index: int) -> str: ...

    def reencoded(self, old: str) -> str:
        """The segment with the delimiters ``old`` (field separator + encoding characters) made the standard
        ``|^~\\&``; escape sequences and data are left as they are."""
        ...


class Message(Protocol):
    """A message as the handlers read it. ``separators`` is python-hl7's: CR, field, repetition, component,
    sub-component."""

    separators: str
    esc: str

    def segment(self, name: str) -> Segment | None:
        """The first segment called ``name``, or None."""
        ...

    def unescape(self, text: str) -> str: ...


def read_message(text: str) -> Message:
    """The message in ``text`` (segments separated by CR); raises what python-hl7 raises for an
    unparseable message with odd delimiters."""
    stripped = text.strip()  # as hl7.parse does
    segments = stripped.split("\r")
    seps = _regular(segments)
    if seps is None:
        return _TreeMessage(hl7.parse(text))
    return _Er7Message(segments, seps)


def _regular(segments: list[str]) -> tuple[str, str, str, str, str, str] | None:
    """(field, repetition, component, sub-component, escape, MSH-2) when the delimiters are regular, else None."""
    msh = segments[0]
    if msh[:3] != "MSH" or len(msh) < 9:
        return None
    f = msh[3]
    end = msh.find(f, 4)
    if end < 8:  # MSH-2 must end inside the MSH segment, with four characters at least
        return None
    enc = msh[4:end]
    comp, rep, esc, sub = enc[0], enc[1], enc[2], enc[3]
    if len({f, comp, rep, esc, sub, "\r"}) != 6:
        return None
    for seg in segments[1:]:
        if seg[:3] in _HEADERS:
            return None
    return f, rep, comp, sub, esc, enc


class _Er7Segment:
    __slots__ = ("_fields", "_message", "name", "raw")

    def __init__(self, raw: str, name: str, message: _Er7Message) -> None:
        self.raw = raw
        self.name = name
        self._message = message
        self._fields: list[str] | None = None

    def _split(self) -> list[str]:
        fields = self._fields
        if fields is None:
            m = self._message
            if self.name == "MSH":  # MSH-1 and MSH-2 are fields of their own, as in python-hl7
                rest = self.raw[len(m.encoding_characters) + 5:]
                fields = ["MSH", m.field_separator, m.encoding_characters]
                if rest:
                    fields += rest.split(m.field_separator)
            else:
                fields = self.raw.split(m.field_separator)
            self._fields = fields
        return fields

    def __len__(self) -> int:
        return len(self._split())

    def field(self, index: int) -> str:
        return self._split()[index]

    def __str__(self) -> str:
        return self.raw

    def reencoded(self, old: str) -> str:
        m = self._message
        mapping = dict(zip(old, _STANDARD, strict=False))
        # python-hl7's tree keeps no separator inside a value: mapping the four separators is the whole job.
        table = str.maketrans({c: mapping.get(c, c) for c in m.separators[1:]})
        if self.name != "MSH":
            return self.raw.translate(table)
        fields = self._split()  # MSH-1 and MSH-2 are values, kept as they are
        return mapping.get(m.field_separator, m.field_separator).join(
            [*fields[:3], *(x.translate(table) for x in fields[3:])])


class _Er7Message:
    __slots__ = ("_index", "encoding_characters", "esc", "field_separator", "segments", "separators")

    def __init__(self, segments: list[str], seps: tuple[str, str, str, str, str, str]) -> None:
        f, rep, comp, sub, esc, enc = seps
        self.segments = segments
        self.field_separator = f
        self.separators = "\r" + f + rep + comp + sub
        self.esc = esc
        self.encoding_characters = enc
        self._index: dict[str, _Er7Segment] | None = None

    def segment(self, name: str) -> Segment | None:
        index = self._index
        if index is None:
            index = {}
            f, rep = self.field_separator, self.separators[2]
            for n, raw in enumerate(self.segments):
                key = "MSH" if n == 0 else raw.split(f, 1)[0].split(rep, 1)[0]
                if key not in index:
                    index[key] = _Er7Segment(raw, key, self)
            self._index = index
        return index.get(name)

    def unescape(self, text: str) -> str:
        return str(_hl7_unescape(self, text))


class _TreeSegment:
    """A python-hl7 segment behind the :class:`Segment` interface (odd delimiters only)."""

    __slots__ = ("name", "tree")

    def __init__(self, tree: Any, name: str) -> None:
        self.tree = tree
        self.name = name

    def __len__(self) -> int:
        return len(self.tree)

    def field(self, index: int) -> str:
        return str(self.tree[index])

    def __str__(self) -> str:
        return str(self.tree)

    def reencoded(self, old: str) -> str:
        return _reencode(self.tree, old)


def _reencode(container: Any, old: str) -> str:
    mapping = dict(zip(old, _STANDARD, strict=False))
    sep = getattr(container, "separator", None)
    if sep is None:
        return str(container)
    return str(mapping.get(sep, sep)).join(_reencode(c, old) for c in container)


class _TreeMessage:
    """A python-hl7 message behind the :class:`Message` interface."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree
        self.separators: str = tree.separators
        self.esc: str = tree.esc
        self._index: dict[str, _TreeSegment] | None = None

    def segment(self, name: str) -> Segment | None:
        if self._index is None:
            index: dict[str, _TreeSegment] = {}
            for seg in self.tree:
                key = str(seg[0][0]) if isinstance(seg[0], list) else str(seg[0])
                index.setdefault(key, _TreeSegment(seg, key))
            self._index = index
        return self._index.get(name)

    def unescape(self, text: str) -> str:
        return str(self.tree.unescape(text))
