"""Client-supplied strings made fit for a log line, and exceptions described without their message.

A log is read by operators and shipped to systems that hold no patient data, so nothing a client sent
goes into it as sent (an HL7 control id, a sending application, an ``X-Request-Id``: a client may put
anything there, a fødselsnummer included). :func:`loggable` is the one way such a string enters a log:

- **escaped**: every character that is not printable (NUL, CR, LF, ESC, other control and format
  characters) is written as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN`` and a backslash as ``\\\\``, so a log
  line stays one line, a terminal escape sequence is inert and the result can be read back unambiguously;
- **masked**: a run of eleven or more digits, also with single spaces, dots or hyphens between them
  (``01018012345``, ``010180 12345``), is replaced by as many ``*``: a fødselsnummer or D-nummer has
  eleven digits, and no log line needs one. Masking runs after escaping, so an escape's own digits
  (``\\x00``) cannot join a run that shows;
- **truncated** to ``limit`` characters (default 64), then ``…(N characters)`` with the value's length;
  cutting after masking cannot bring a masked run back.

:func:`describe` names an exception by type and place only (its message can hold a name, a number or a
query's parameters). Own code rather than a library: this is twenty lines of ``re`` and ``str``, and the
policy (eleven digits, the escapes) is this project's.
"""

from __future__ import annotations

import os
import re
import traceback

__all__ = ["DEFAULT_LIMIT", "describe", "loggable"]

DEFAULT_LIMIT = 64
_DIGIT_RUN = re.compile(r"\d(?:[ .\-]?\d){10,}")


def _escape(c: str) -> str:
    if c == "\\":
        return "\\\\"
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def loggable(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` (text, bytes or anything with ``str``) escaped, masked and truncated for a log line."""
    if not isinstance(value, str | bytes | bytearray):
        value = str(value)
    size = len(value)
    head = value[: limit * 4 + 16]  # escaping at most quadruples a character: this is enough to cut from
    text = bytes(head).decode("latin-1") if isinstance(head, bytes | bytearray) else head
    if not text.isprintable() or "\\" in text:
        text = "".join(c if c.isprintable() and c != "\\" else _escape(c) for c in text)
    text = _DIGIT_RUN.sub(lambda m: "*" * len(m[0]), text)
    if len(text) > limit or size > len(head):
        return f"{text[:limit]}…({size} characters)"
    return text


def describe(exc: BaseException) -> str:
    """An exception for the log without its message (which can hold a name, a number or a query's
    parameters): its type and where it was raised, ``OperationalError at base.py:1965 in _exec_single_context``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {os.path.basename(last.filename)}:{last.lineno} in {last.name}"
