"""Legacy original-mode query: QRY^A19 → ADR^A19 (patient query by id), as v2.3/2.4 systems send it.

Request ``MSH, QRD, [QRF]``: QRD-8 "who subject filter" is the patient id (XCN component 1; any known
number, ceased ones included), QRD-9 "what" (``DEM``) is echoed, QRD-7 quantity is ignored (one person
at most). Response ``MSH, MSA, [ERR], QRD, [QRF], PID, PV1``: the query echoed, one PID with the full
demographics the profile allows, and ``PV1|1|N`` because PV1 is required in each ADR_A19 result
group and old receivers insist on it. An unknown id is ``MSA|AE`` with ERR ``QRD^1^8`` / 204 (vendors
differ here; this is the standard reading), a missing one AE/101.
"""

from __future__ import annotations

from adapters.hl7 import pid_segment
from server.access import apply_profile
from server.hl7.ack import Reply, Request
from server.hl7.handlers import Context, ensure_numbers, error_reply, field
from store.errors import InvalidInput, NotFound, PregbridgeError
from store.repository import PersonRepository

__all__ = ["query_by_id"]


def query_by_id(req: Request, ctx: Context) -> Reply:
    number = field(req, "QRD", 8).comp(1, 1).strip()
    echo = ("QRD", "QRF")
    try:
        if not number:
            raise InvalidInput("QRD-8 must name the patient id")
        req.asked.append(number)
        ensure_numbers(ctx, [number])
        with ctx.reader.connection() as conn:
            found = PersonRepository(conn).find(number)
        if found is None:
            raise NotFound("identifier not known")
    except PregbridgeError as exc:
        return error_reply(req, Reply("ADR", "A19", "ADR_A19"), exc, location="QRD^1^8", query=False, echo=echo)
    view = apply_profile(found.person, req.profile)
    if view.current_identifier:
        req.returned.append(view.current_identifier.number)
    body = [s for s in (req.raw_segment(n) for n in echo) if s]
    body += [pid_segment(view, 1), "PV1|1|N"]
    return Reply("ADR", "A19", "ADR_A19", body=body)
