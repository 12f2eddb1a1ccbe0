"""Felles hjelpenummer allocation: QBP^Q24 ("allocate identifiers") → RSP^K24.

Why this exchange (docs/hl7.md "Felles hjelpenummer"): HL7 v2.5 has a standard event for exactly this —
Q24/K24 *Allocate identifiers* (table 0003), a query whose response carries the new identifier in PID-3
(RSP_K24: ``MSH, MSA, [ERR], QAK, QPD, [PID]``). ADT^A28 (add person) was the alternative, but its
answer is a bare ACK with nowhere standard to put the number (it would need MSA-3 text or an NTE),
and it reads as a notification that the person was added, not a request for a number. Q24 is a query,
so it is answered synchronously on the same connection, and it takes QPD-3 parameters in the same
QIP form brokers already build for PDQ.

Request ``MSH, QPD, RCP``: QPD-1 ``Q24^Allocate Identifiers^HL70471`` (echoed, not checked), QPD-2
query tag, QPD-3 the person: ``@PID.5.1`` family, ``@PID.5.2`` given, ``@PID.7`` birth date YYYYMMDD,
``@PID.8`` F/M (all four required), ``@PID.5.3`` middle name, ``@PID.11.1`` street (house number
last), ``@PID.11.3`` poststed, ``@PID.11.5`` postnummer, ``@PID.11.6`` country, ``@PID.11.9`` kommune.

Response: QAK OK and one PID with PID-3 = ``<number>^^^FHN&2.16.578.1.12.4.1.4.3&ISO^NI``. The same
request again (a retry, or the same patient registered twice) answers the same number:
:func:`store.hjelpenummer.allocate` is idempotent on the normalised request. A missing or malformed
parameter is AE with ERR ``QPD^1^3^n`` (101 missing, 102 data type, 103 unknown code).
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from adapters.hl7 import ParameterError, cx, hjelpenummer_request, segment
from server.hl7.ack import Reply, Request, qak_segment
from server.hl7.handlers import Context, error_reply, field, query_parameters_of
from store.engine import write_transaction
from store.errors import PregbridgeError
from store.hjelpenummer import allocate
from store.model import Identifier

__all__ = ["allocate_identifier"]


def _reply() -> Reply:
    return Reply("RSP", "K24", "RSP_K24")


def allocate_identifier(req: Request, ctx: Context) -> Reply:
    try:
        request = hjelpenummer_request(query_parameters_of(req))
        try:
            with write_transaction(ctx.engine) as conn:
                number, _new = allocate(conn, request)
        except IntegrityError:  # the same request allocated concurrently: the other one won; read its number
            with write_transaction(ctx.engine) as conn:
                number, _new = allocate(conn, request)
    except ParameterError as exc:
        return error_reply(req, _reply(), exc, location=f"QPD^1^3^{exc.repetition}")
    except PregbridgeError as exc:
        return error_reply(req, _reply(), exc, location="QPD^1^3")
    req.returned.append(number)
    reply = _reply()
    reply.body = [qak_segment(field(req, "QPD", 2).comp(), "OK", field(req, "QPD", 1).raw, 1, 1, 0),
                  req.raw_segment("QPD"), segment("PID", "1", "", cx(Identifier(number, "fh")))]
    return reply
