"""Message handlers: one module per exchange, each a function ``(Request, Context) → Reply``.

- :mod:`~server.hl7.handlers.pdq`: QBP^Q22 → RSP^K22 (IHE PDQ find candidates), DSC continuation, QCN^J01.
- :mod:`~server.hl7.handlers.pix`: QBP^Q23 → RSP^K23 (IHE PIX get corresponding identifiers).
- :mod:`~server.hl7.handlers.a19`: QRY^A19 → ADR^A19 (legacy original-mode query by id).
- :mod:`~server.hl7.handlers.fh`: QBP^Q24 → RSP^K24 (allocate identifiers: felles hjelpenummer).

This module holds what they share: the :class:`Context` (store engine, settings, continuation state)
and field access on a message of :mod:`server.hl7.reader`: fields are read as their wire text and
split here with the message's own delimiters, then unescaped with python-hl7's ``unescape``.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from sqlalchemy import Engine

from server.hl7.ack import Hl7Error, Reply, Request, qak_segment
from server.hl7.reader import Message, Segment
from server.hl7.settings import MllpSettings
from server.metrics import current_request_id
from store.engine import Reader
from store.errors import PregbridgeError
from store.source import PersonSource

__all__ = ["Context", "Field", "ensure_numbers", "error_reply", "field", "query_parameters_of"]


@dataclass
class Context:
    engine: Engine
    settings: MllpSettings
    continuations: Any  # server.hl7.handlers.pdq.Continuations
    source: PersonSource | None = None  # read-through mode: where persons the store lacks come from
    reader: Reader = dataclass_field(init=False)

    def __post_init__(self) -> None:
        self.reader = Reader(self.engine)  # one read connection for the listener's thread (store.engine)


class Field:
    """One field of a segment: ``rep(n)`` → components, ``comp(r, c)`` → unescaped text (1-based)."""

    def __init__(self, message: Message, seg: Segment | None, index: int) -> None:
        self.message = message
        self.raw = seg.field(index) if seg is not None and index < len(seg) else ""
        seps = message.separators  # '\r|~^&'
        self._rep, self._comp, self._sub = seps[2], seps[3], seps[4]

    def reps(self) -> list[str]:
        return self.raw.split(self._rep) if self.raw else []

    def components(self, rep: str) -> list[str]:
        return rep.split(self._comp)

    def comp(self, r: int = 1, c: int = 1) -> str:
        reps = self.reps()
        if r > len(reps):
            return ""
        comps = reps[r - 1].split(self._comp)
        return self.unescape(comps[c - 1]) if c <= len(comps) else ""

    def unescape(self, text: str) -> str:
        return self.message.unescape(text) if "\\" in text else text

    def subs(self, component: str) -> list[str]:
        return [self.unescape(s) for s in component.split(self._sub)]


def ensure_numbers(ctx: Context, numbers: list[str]) -> None:
    """Read-through mode: make the numbers answerable from the store before a handler reads it (a no-op in
    replica mode); raises :class:`store.source.SourceUnavailable` (AE, 207) when the register cannot say."""
    if ctx.source is not None:
        ctx.source.ensure_numbers(numbers, request_id=current_request_id())


def field(req: Request, segment: str, index: int) -> Field:
    return Field(req.message, req.segment(segment), index)


def query_parameters_of(req: Request) -> list[tuple[str, str]]:
    """QPD-3 as (parameter name, value) per repetition; a value keeps its own components (``^`` joined)."""
    f = field(req, "QPD", 3)
    out = []
    for rep in f.reps():
        comps = f.components(rep)
        out.append((f.unescape(comps[0]), "^".join(f.unescape(c) for c in comps[1:])))
    return out


def error_reply(req: Request, base: Reply, exc: PregbridgeError, *, location: str = "", query: bool = True,
                echo: tuple[str, ...] = ("QPD",)) -> Reply:
    """``base`` turned into an AE/AR reply for ``exc``: ERR with its table 0357 code, QAK AE/AR and the echo."""
    code = exc.hl7_ack_code
    base.ack_code = code
    base.errors = [Hl7Error(exc.hl7_error_code, exc.message, location)]
    body = []
    if query:
        qpd = field(req, "QPD", 1)
        body.append(qak_segment(field(req, "QPD", 2).comp(), "AE" if code == "AE" else "AR", qpd.raw))
    body += [s for s in (req.raw_segment(name) for name in echo) if s]
    base.body = body
    return base
