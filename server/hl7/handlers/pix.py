"""IHE PIX query (ITI-9): QBP^Q23 → RSP^K23, any known number → every identifier of the person.

Request ``MSH, QPD, RCP``: QPD-3 the number as CX (``12345678901^^^FNR&2.16.578.1.12.4.1.4.1&ISO``;
the assigning authority may be empty), QPD-4 the domains to return (repeating CX, authority in
component 4; empty: all). A number is found whether it is in use or ceased (an old D-nummer, a
replaced fødselsnummer, a linked felles hjelpenummer).

Response ``MSH, MSA, [ERR], QAK, QPD, [PID]``: one PID whose PID-3 lists the person's identifiers in
the requested domains — the current number first, then others in use, then ceased ones with their end
date in CX-8 — each with assigning authority and OID (adapters/hl7.py). PID-5 is empty, as ITI-9 says.
Deviation from ITI-9, on purpose: the number asked for is listed too, so a broker can see it is ceased.

| case | MSA-1 | QAK-2 | ERR |
|---|---|---|---|
| found, identifiers in the domains asked for | AA | OK | — |
| found, none in those domains (or the profile withholds identifiers) | AA | NF | — |
| number unknown | AE | AE | ``QPD^1^3^1^1`` 204 |
| assigning authority of QPD-3 unknown | AE | AE | ``QPD^1^3^1^4`` 204 |
| domain in QPD-4 unknown | AE | AE | ``QPD^1^4^n^4`` 204 |

PID-3 needs only the identifiers, so the person document is not read: :func:`identifiers_of` takes them
from ``person_identifier`` (one indexed query), the profile's masking is
:func:`server.access.visible_identifiers` (what :func:`~server.access.apply_profile` keeps) and the order
and encoding are adapters/hl7.py's, so the answer is the one the whole document gives
(tests/integration/test_hl7_pix_identifiers.py). Should one number belong to two persons, the first
``person_identifier`` row that has it decides, as in ``PersonRepository.find``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, text

from adapters.hl7 import domain_of, identifiers_pid_segment, sorted_identifiers
from server.access import visible_identifiers
from server.hl7.ack import Reply, Request, qak_segment, qak_status
from server.hl7.handlers import Context, error_reply, field, sqlite_driver
from server.hl7.handlers.pdq import _DomainError, domains_wanted
from store.engine import driver_sql
from store.errors import NotFound, PregbridgeError
from store.model import Identifier, Meta

__all__ = ["corresponding_identifiers", "identifiers_of"]

# Every identifier of the person who has (or had) ``number``, in the person's own order: one indexed query
# over person_identifier, which the repository writes from the person's identifiers (store/repository.py
# person_rows) and which holds what PID-3 needs (number, kind, status, current, end date). Reading and
# decoding the whole person document for this cost more than the rest of the answer (docs/hl7.md).
_IDENTIFIERS = text(
    "SELECT o.number, o.kind, o.status, o.is_current, o.valid_to FROM person_identifier o"
    " WHERE o.person_id = (SELECT i.person_id FROM person_identifier i WHERE i.number = :number LIMIT 1)"
    " ORDER BY o.id")


def identifiers_of(conn: Connection, number: str) -> tuple[Identifier, ...] | None:
    """Every identifier of the person known by ``number`` (ceased numbers included), or None if unknown."""
    sql, positional = driver_sql(_IDENTIFIERS, conn.dialect)
    driver = sqlite_driver(conn)
    if driver is not None:  # a quarter of the cost of exec_driver_sql
        rows = driver.execute(sql, (number,)).fetchall()
    else:
        rows = conn.exec_driver_sql(sql, (number,) if positional else {"number": number}).fetchall()
    if not rows:
        return None
    return tuple(Identifier(n, kind, status, Meta(bool(current), valid_to=_date(valid_to)))
                 for n, kind, status, current, valid_to in rows)


def _date(value: Any) -> dt.date | None:
    # driver-level rows: SQLite gives the ISO text SQLAlchemy stored, PostgreSQL a date
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def _reply() -> Reply:
    return Reply("RSP", "K23", "RSP_K23")


def corresponding_identifiers(req: Request, ctx: Context) -> Reply:
    f = field(req, "QPD", 3)
    number = f.comp(1, 1).strip()
    reps = f.reps()
    comps = f.components(reps[0]) if reps else []
    authority = "&".join(f.subs(comps[3])) if len(comps) > 3 else ""
    try:
        if authority.strip("&") and domain_of(authority) is None:
            return error_reply(req, _reply(), NotFound("unknown assigning authority"), location="QPD^1^3^1^4")
        kinds = domains_wanted(req, 4)
        if not number:
            raise NotFound("no identifier in QPD-3")
        req.asked.append(number)
        with ctx.reader.connection() as conn:
            found = identifiers_of(conn, number)
        if found is None:
            return error_reply(req, _reply(), NotFound("identifier not known"), location="QPD^1^3^1^1")
    except _DomainError as exc:
        return error_reply(req, _reply(), exc, location=exc.location)
    except PregbridgeError as exc:
        return error_reply(req, _reply(), exc, location="QPD^1^3^1^1")
    ids = sorted_identifiers(visible_identifiers(found, req.profile), kinds)
    tag = field(req, "QPD", 2).comp()
    reply = _reply()
    reply.body = [qak_segment(tag, qak_status("AA", bool(ids)), field(req, "QPD", 1).raw),
                  req.raw_segment("QPD")]
    if ids:
        reply.body.append(identifiers_pid_segment(ids))
        req.returned.extend(i.number for i in ids)
    return reply
