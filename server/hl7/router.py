"""Routing: a declarative table keyed by (message type, trigger event, version pattern), and the fallback.

Each :class:`Route` names the access-profile operation it needs (``QBP^Q22`` …; a profile's
``operations`` list may name these) and whether it is audited. Version patterns are shell-style
(``2.5*`` matches 2.5 and 2.5.1): QBP exists from v2.4, QRY^A19 from v2.3. A message no route takes is
never dropped: :meth:`Router.resolve` answers with the fallback, which rejects it (AR) with table 0357
code 200 (unknown message type), 201 (known type, unsupported trigger) or 203 (this exchange does not
exist in that version). MSH-12 outside :data:`SUPPORTED_VERSIONS` is rejected before routing (203).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from server.hl7.ack import SUPPORTED_VERSIONS, Reply, Request
from server.hl7.handlers import Context, a19, fh, pdq, pix
from store.errors import PregbridgeError

__all__ = ["ROUTES", "SUPPORTED_VERSIONS", "Route", "Router", "Unsupported"]

HandlerFn = Callable[[Request, Context], Reply]


class Unsupported(PregbridgeError):
    """The message type, trigger event or version is not supported: rejected, do not retry."""

    hl7_ack_code = "AR"

    def __init__(self, message: str, code: str, location: str) -> None:
        super().__init__(message)
        self.hl7_error_code = code
        self.location = location


@dataclass(frozen=True, slots=True)
class Route:
    message_type: str
    trigger: str
    versions: tuple[str, ...]
    operation: str
    handler: HandlerFn
    audited: bool = True

    def takes(self, message_type: str, trigger: str, version: str) -> bool:
        return (self.message_type == message_type and self.trigger == trigger
                and any(fnmatchcase(version, v) for v in self.versions))


_QBP = ("2.4", "2.5*", "2.6")
ROUTES: tuple[Route, ...] = (
    Route("QBP", "Q22", _QBP, "QBP^Q22", pdq.find_candidates),
    Route("QBP", "Q23", _QBP, "QBP^Q23", pix.corresponding_identifiers),
    Route("QBP", "Q24", _QBP, "QBP^Q24", fh.allocate_identifier),
    Route("QCN", "J01", _QBP, "QCN^J01", pdq.cancel, audited=False),
    Route("QRY", "A19", ("2.3*", "2.4", "2.5*", "2.6"), "QRY^A19", a19.query_by_id),
)


class Router:
    def __init__(self, routes: Sequence[Route] = ROUTES) -> None:
        self.routes = tuple(routes)
        self._types = {r.message_type for r in self.routes}
        self._events = {(r.message_type, r.trigger) for r in self.routes}
        self._resolved: dict[tuple[str, str, str], Route] = {}

    def resolve(self, message_type: str, trigger: str, version: str) -> Route:
        """The route for a message; raises :class:`Unsupported` (the fallback: AR) when none takes it."""
        route = self._resolved.get((message_type, trigger, version))
        if route is not None:
            return route
        if version not in SUPPORTED_VERSIONS:
            raise Unsupported("HL7 version not supported", "203", "MSH^1^12")
        for r in self.routes:
            if r.takes(message_type, trigger, version):
                if len(self._resolved) < 1024:  # keys are few (routes × versions); a bound all the same
                    self._resolved[(message_type, trigger, version)] = r
                return r
        if message_type not in self._types:
            raise Unsupported("message type not supported", "200", "MSH^1^9^1^1")
        if (message_type, trigger) not in self._events:
            raise Unsupported("trigger event not supported", "201", "MSH^1^9^1^2")
        raise Unsupported("message type not supported in this HL7 version", "203", "MSH^1^12")
