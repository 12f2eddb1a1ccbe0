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

PID-3 needs only the identifiers, so the person document is not read: :func:`store.current.view_by_number`
finds the person's stored current view (every identifier with kind, status, current flag and end date) by the
number (one indexed join: ``person_identifier`` → ``person_current``), and
:func:`server.hl7.pid.identifiers_pid` masks and encodes PID-3 under the profile's release, so the answer is
the one the whole document gives through ``apply_profile`` and ``pid_segment``
(tests/integration/test_hl7_pix_identifiers.py).
"""

from __future__ import annotations

from adapters.hl7 import domain_of
from server.hl7.ack import Reply, Request, qak_segment, qak_status
from server.hl7.handlers import Context, Field, ensure_numbers, error_reply
from server.hl7.handlers.pdq import _DomainError, domains_wanted
from server.hl7.pid import identifiers_pid, pid_release
from store.current import view_by_number
from store.errors import NotFound, PregbridgeError

__all__ = ["corresponding_identifiers"]

def _reply() -> Reply:
    return Reply("RSP", "K23", "RSP_K23")


def corresponding_identifiers(req: Request, ctx: Context) -> Reply:
    qpd = req.segment("QPD")
    f = Field(req.message, qpd, 3)
    reps = f.reps()
    comps = f.components(reps[0]) if reps else []
    number = f.unescape(comps[0]).strip() if comps else ""  # QPD-3.1 (Field.comp(1, 1), its splits done once)
    authority = "&".join(f.subs(comps[3])) if len(comps) > 3 else ""
    try:
        if authority.strip("&") and domain_of(authority) is None:
            return error_reply(req, _reply(), NotFound("unknown assigning authority"), location="QPD^1^3^1^4")
        kinds = domains_wanted(req, 4)
        if not number:
            raise NotFound("no identifier in QPD-3")
        req.asked.append(number)
        if ctx.source is not None:  # read-through mode
            ensure_numbers(ctx, [number])
        with ctx.reader.connection() as conn:
            found = view_by_number(conn, number)
        if found is None:
            return error_reply(req, _reply(), NotFound("identifier not known"), location="QPD^1^3^1^1")
    except _DomainError as exc:
        return error_reply(req, _reply(), exc, location=exc.location)
    except PregbridgeError as exc:
        return error_reply(req, _reply(), exc, location="QPD^1^3^1^1")
    pid, numbers = identifiers_pid(found, pid_release(req.profile), kinds)
    tag = Field(req.message, qpd, 2).comp()
    reply = _reply()
    reply.body = [qak_segment(tag, qak_status("AA", pid is not None), Field(req.message, qpd, 1).raw),
                  req.raw_segment("QPD")]
    if pid is not None:
        reply.body.append(pid)
        req.returned.extend(numbers)
    return reply
