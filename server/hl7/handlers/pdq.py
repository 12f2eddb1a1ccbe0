"""IHE PDQ (ITI-21): QBP^Q22 → RSP^K22, with the Continuation Option (DSC) and QCN^J01 cancel.

Request ``MSH, QPD, RCP, [DSC]``. QPD-3 parameters (repeating QIP, adapters/hl7.py): ``@PID.3.1``
(any known number, ceased ones included: the person is returned with its current number first),
``@PID.5.1`` family, ``@PID.5.2`` given, ``@PID.7`` birth date (YYYYMMDD or YYYY), ``@PID.8`` sex,
``@PID.11.1`` street, ``@PID.11.5`` postnummer, ``@PID.11.9`` kommune. The minimum-criteria rule is the
store's (store/search.py). In read-through mode the number is made answerable first (``ensure_numbers``) and
a search's candidates are asked of the register first (``ensure_search``: upstream/readthrough_search.py); a
search the register cannot list within its 100-hit cap is AE TooManyHits (207), where a replica would list it
with continuation; continuation pages are served from this process's state and ask nothing.
QPD-8 (what domains returned) filters PID-3; an unknown domain is AE/204.
RCP-2 is the quantity limit (``10^RD``; only RD is supported; empty: ``hl7.page_size``).

Response ``MSH, MSA, [ERR], QAK, QPD, {PID, QRI}, [DSC]``: QAK-2 OK/NF/AE/AR, QAK-4/5/6 hits total /
in this payload / remaining; QRI-1 the match score (0–100). When hits exceed the limit, ``DSC-1`` is a
pointer and ``DSC-2`` ``I``; the same QBP sent again with that DSC gets the next page. Continuation
state (the ranked person ids) lives in this process, keyed by connection and QPD-2 query tag, bounded
in number and age (``continuation_max``, ``continuation_ttl``): a pointer is only good on the
connection that got it, and an unknown or expired one is AE/204 at DSC-1. QCN^J01 (QID-1 query tag)
drops the state and is answered ``ACK^J01^ACK`` AA.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from adapters.hl7 import ParameterError, domain_of, query_parameters, segment
from server.hl7.ack import Reply, Request, qak_segment, qak_status
from server.hl7.handlers import Context, ensure_numbers, error_reply, field, query_parameters_of
from server.hl7.pid import pid_from_current, pid_release
from server.metrics import current_request_id
from store.current import views
from store.errors import InvalidInput, NotFound, PregbridgeError
from store.identity import is_valid
from store.repository import PersonRepository
from store.search import check, search

__all__ = ["Continuations", "cancel", "find_candidates"]

log = logging.getLogger(__name__)


@dataclass
class _State:
    pointer: str
    query: str
    hits: list[tuple[int, float]]
    total: int
    expires: float


class Continuations:
    """Bounded, expiring map (connection, query tag) → the rest of a result list. Thread-safe."""

    def __init__(self, max_entries: int = 1000, ttl: float = 600) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._states: OrderedDict[tuple[int, str], _State] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, connection: int, tag: str, query: str, hits: list[tuple[int, float]], total: int) -> str:
        pointer = secrets.token_hex(8)
        with self._lock:
            self._states[(connection, tag)] = _State(pointer, query, hits, total, time.monotonic() + self.ttl)
            self._states.move_to_end((connection, tag))
            while len(self._states) > self.max_entries:
                self._states.popitem(last=False)
        return pointer

    def take(self, connection: int, tag: str, pointer: str, query: str) -> _State | None:
        with self._lock:
            state = self._states.pop((connection, tag), None)
        if state is None or state.pointer != pointer or state.query != query or state.expires < time.monotonic():
            return None
        return state

    def cancel(self, connection: int, tag: str | None = None) -> int:
        with self._lock:
            keys = [k for k in self._states if k[0] == connection and (tag is None or k[1] == tag)]
            for k in keys:
                del self._states[k]
        return len(keys)

    def __len__(self) -> int:
        return len(self._states)


def _limit(req: Request, ctx: Context) -> int:
    f = field(req, "RCP", 2)
    quantity, unit = f.comp(1, 1).strip(), f.comp(1, 2).strip().upper()
    if not quantity:
        return ctx.settings.page_size
    if not quantity.isdigit() or int(quantity) < 1 or unit not in ("", "RD"):
        raise ParameterError("RCP-2 must be a positive quantity in RD (records)", repetition=1)
    return int(quantity)


def domains_wanted(req: Request, index: int) -> list[str] | None:
    """Identifier kinds asked for in QPD-``index`` (what domains returned), None for all; unknown → NotFound."""
    f = field(req, "QPD", index)
    kinds = []
    for n, rep in enumerate(f.reps(), start=1):
        comps = f.components(rep)
        authority = "&".join(f.subs(comps[3])) if len(comps) > 3 else ""
        if not authority.strip("&"):
            continue
        d = domain_of(authority)
        if d is None:
            raise _DomainError(n, index)
        kinds.append(d.kind)
    return kinds or None


class _DomainError(NotFound):
    def __init__(self, repetition: int, index: int) -> None:
        super().__init__("unknown assigning authority in what domains returned")
        self.location = f"QPD^1^{index}^{repetition}^4"


def _reply() -> Reply:
    return Reply("RSP", "K22", "RSP_K21")


def find_candidates(req: Request, ctx: Context) -> Reply:
    try:
        return _find(req, ctx)
    except _DomainError as exc:
        return error_reply(req, _reply(), exc, location=exc.location)
    except ParameterError as exc:
        where = "RCP^1^2" if "RCP" in exc.message else f"QPD^1^3^{exc.repetition}"
        return error_reply(req, _reply(), exc, location=where)
    except InvalidInput as exc:
        return error_reply(req, _reply(), exc, location="QPD^1^3")
    except PregbridgeError as exc:
        return error_reply(req, _reply(), exc)


def _find(req: Request, ctx: Context) -> Reply:
    tag = field(req, "QPD", 2).comp()
    query_text = req.raw_segment("QPD")
    limit = _limit(req, ctx)
    kinds = domains_wanted(req, 8)
    pointer = field(req, "DSC", 1).comp()
    release = pid_release(req.profile)  # the profile's masking, and what it may search by (release.scope)
    if pointer:
        state = ctx.continuations.take(req.peer.connection, tag, pointer, query_text)
        if state is None:
            exc = NotFound("continuation pointer unknown or expired")
            return error_reply(req, _reply(), exc, location="DSC^1^1")
        hits, total = state.hits, state.total
        page, rest = hits[:limit], hits[limit:]
        with ctx.reader.connection() as conn:
            stored = views(conn, [pid for pid, _ in page]) if page else {}
    else:
        params = query_parameters(query_parameters_of(req))
        if params.identifier:
            req.asked.append(params.identifier)
            if ctx.source is not None and is_valid(params.identifier):
                ensure_numbers(ctx, [params.identifier])
        elif ctx.source is not None:  # read-through: the register's candidates into the store first
            check(params.criteria, release.scope)  # a refused query asks nothing
            ctx.source.ensure_search(params.criteria, request_id=current_request_id())
        with ctx.reader.connection() as conn:  # one use of the reader for the search and the page's views
            if params.identifier:
                found = PersonRepository(conn).find(params.identifier)
                hits = [(found.person_id, 100.0)] if found else []
            else:
                hits = [(h.person_id, h.score) for h in search(conn, params.criteria, scope=release.scope)]
            page, rest = hits[:limit], hits[limit:]
            stored = views(conn, [pid for pid, _ in page]) if page else {}
        total = len(hits)
    body = []
    if page:
        missing = len({pid for pid, _ in page}) - len(stored)
        if missing:  # deleted since the search (a person stored without its view is answered from its document)
            log.warning("hl7 PDQ: %d person(s) of a page deleted since the search", missing)
        n = 0
        for pid, score in page:
            view = stored.get(pid)
            if view is None:
                continue
            n += 1
            pid_text, number = pid_from_current(view, release, n, kinds)
            body.append(pid_text)
            body.append(segment("QRI", f"{score:g}"))
            if number:
                req.returned.append(number)
    reply = _reply()
    qpd1 = field(req, "QPD", 1).raw
    found_any = bool(body)
    sent = len(body) // 2  # a PID and a QRI per person: QAK-5 counts what this payload holds
    reply.body = [qak_segment(tag, qak_status("AA", found_any), qpd1, total, sent, len(rest)), query_text, *body]
    if rest:
        new_pointer = ctx.continuations.put(req.peer.connection, tag, query_text, rest, total)
        reply.body.append(segment("DSC", new_pointer, "I"))
    return reply


def cancel(req: Request, ctx: Context) -> Reply:
    """QCN^J01: forget the continuation state of QID-1 on this connection; always AA."""
    tag = field(req, "QID", 1).comp()
    ctx.continuations.cancel(req.peer.connection, tag)
    return Reply("ACK", "J01", "ACK")
