"""The front of one worker process: its WSGI app, its limits, and its count of open connections.

:meth:`Front.admit` enforces the two connection caps (``max_connections`` in all and
``max_connections_per_address`` from one client address, both per worker process) when a connection
opens: one over a cap gets a ``503`` with ``Retry-After: 1`` before a byte of it is read, and is closed.
Refusals are counted and logged at most once a second per reason, with the latest client address (a
flood of refusals must not become a flood of log lines); no request content is ever logged.

Every refusal (not the log line) is also handed to the worker's :data:`RefusalHook`, if the WSGI app
carries one under :data:`REFUSAL_HOOK` (the composition, server/bootstrap.py, sets it to write an audit
record): the outcome (``"408 header timeout"``), the request's path when its request line was read (else
None), and a small environ of the peer's ``REMOTE_ADDR`` plus, when the headers were read, only the
``Authorization``, ``X-Forwarded-For`` and ``Forwarded`` headers (for the attempted account and the client
address behind trusted proxies). The front stays free of the access layer; the hook runs only on refusals.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from server.front.answers import busy_answer

if TYPE_CHECKING:
    from server.config import HttpSettings
    from server.front.connection import Connection

__all__ = ["REFUSAL_HOOK", "Front", "RefusalHook", "WsgiApp"]

log = logging.getLogger("server.front")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
RefusalHook = Callable[[str, dict[str, str], str | None], None]
"""``hook(outcome, environ, path)``: told of each refusal (module docstring)."""
REFUSAL_HOOK: Final = "pregbridge_front_refusal"
"""The attribute of the WSGI app that holds its :data:`RefusalHook` (read by the worker)."""

_BUSY = busy_answer("this server has too many open connections: try again")
_BUSY_ADDRESS = busy_answer("too many open connections from your address: try again")


class Front:
    """Shared state of a worker's connections (module docstring)."""

    def __init__(self, app: WsgiApp, limits: HttpSettings, loop: asyncio.AbstractEventLoop, *,
                 scheme: str = "http", server_name: str = "localhost", server_port: str = "80",
                 spool_dir: Path | None = None, on_refusal: RefusalHook | None = None) -> None:
        self.app = app
        self.on_refusal = on_refusal
        self.limits = limits
        self.loop = loop
        self.scheme = scheme
        self.server_name = server_name
        self.server_port = server_port
        self.spool_dir = spool_dir
        self.connections: set[Connection] = set()
        self.per_address: Counter[str] = Counter()
        self.stopping = False
        self.served = 0
        self.refused: Counter[str] = Counter()
        self._logged: dict[str, float] = {}
        self._date_at, self._date = 0, b""

    def date(self) -> bytes:
        """The ``Date`` header's value (RFC 9110 §6.6.1), formatted once a second."""
        now = int(time.time())
        if now != self._date_at:
            self._date_at, self._date = now, formatdate(now, usegmt=True).encode("ascii")
        return self._date

    def admit(self, conn: Connection) -> bytes | None:
        """Count a new connection in; the 503 answer to send instead when it is over a cap."""
        if len(self.connections) >= self.limits.max_connections:
            self.refuse("503 connection cap", conn.address)
            return _BUSY
        if self.per_address[conn.address] >= self.limits.max_connections_per_address:
            self.refuse("503 per-address connection cap", conn.address)
            return _BUSY_ADDRESS
        self.connections.add(conn)
        self.per_address[conn.address] += 1
        return None

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            left = self.per_address[conn.address] - 1
            if left > 0:
                self.per_address[conn.address] = left
            else:
                del self.per_address[conn.address]

    def note(self, reason: str, address: str) -> None:
        """Count a refusal; log it at most once a second per reason."""
        self.refused[reason] += 1
        now = time.monotonic()
        if now - self._logged.get(reason, 0.0) >= 1.0:
            self._logged[reason] = now
            log.warning("refused a request from %s: %s (%d refused for this reason so far)", address, reason,
                        self.refused[reason])

    def refuse(self, outcome: str, address: str, environ: dict[str, str] | None = None,
               path: str | None = None) -> None:
        """Count and log a refusal (:meth:`note`, its reason is ``outcome`` without the status) and hand it to
        the refusal hook; a failing hook is logged by type and never takes the connection down."""
        self.note(outcome.partition(" ")[2] or outcome, address)
        hook = self.on_refusal
        if hook is None:
            return
        try:
            hook(outcome, environ if environ is not None else {"REMOTE_ADDR": address}, path)
        except Exception as exc:  # noqa: BLE001 - the audit trail unavailable must not crash the worker
            log.error("the refusal from %s was not audited: %s", address, type(exc).__name__)

    async def shutdown(self, grace: float) -> None:
        """Close idle connections and those still sending headers now; give the others (a body arriving, a
        response being read) ``grace`` seconds to finish, then abort them."""
        self.stopping = True
        deadline = self.loop.time() + grace
        while True:
            busy = [c for c in list(self.connections) if not c.close_if_idle()]
            if not busy or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.1)
        for conn in busy:
            conn.abort()
