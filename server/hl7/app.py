"""The HL7 face composed: frame bytes + peer → reply bytes (zero, one or two MLLP frames), and ``serve``.

One message, in order: decode per MSH-18 (:mod:`~server.hl7.charsets`) → read (:mod:`~server.hl7.reader`) →
read MSH → check MSH-15/16, the character set, MSH-10/11/12 → authenticate the sender → route
(:mod:`~server.hl7.router`) → authorize the route's operation for the account's access profile →
handler → acknowledgements per the mode (:mod:`~server.hl7.ack`) → encode in the sender's charset.
Every failure becomes a NAK (MSA AR/AE + ERR with a table 0357 code); nothing raises out of
:meth:`Hl7App.__call__`, so the listener never drops a connection for a bad message.

Sender authentication (MLLP has no credentials): the account is found from ``hl7.peers`` and the peers kept
in the store (``pregbridge hl7 peers add``, read again every ``access.account_state_seconds``:
server/hl7/peers.py), by the peer's address (an IP or CIDR key) and/or by the sender (``MSH-3^MSH-4`` or
``MSH-3`` key), combined per ``hl7.peer_match`` (docs/hl7.md). The account must exist and be enabled
(``pregbridge users``); its access profile applies, its password is not used. A per-account shared secret is
out of scope. Account state is cached for ``access.account_state_seconds`` (2 s), as the SOAP faces do.

Every message (QCN^J01 excepted) writes one audit record: account, face ``hl7``, operation (``QBP^Q22``
…; ``?`` when the MSH cannot be read), outcome (``AA``, ``AE:204``, ``AR:100`` …), peer address, numbers
asked and returned. MLLP carries no credentials and no proxy headers: the peer's address is the client's,
and there are no passwords to guess, so the login throttle does not apply; a sender refused for its
address or MSH-3/MSH-4 gets ``AR`` and its record (account empty).
Logs carry message type, control id, peer and codes — never segment content.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine

from server.access import (
    AccessProfile,
    AccountStore,
    AuditRecord,
    AuditWriter,
    AuthenticationFailed,
    authorize,
    resolve_profile,
)
from server.hl7.ack import AckMode, Hl7Error, Msh, Reply, Request, build_reply
from server.hl7.charsets import decode, encode
from server.hl7.framing import frame
from server.hl7.handlers import Context
from server.hl7.handlers.pdq import Continuations
from server.hl7.listener import MllpListener, Peer
from server.hl7.peers import LivePeers, PeerTable
from server.hl7.reader import Message, read_message
from server.hl7.router import Router, Unsupported
from server.hl7.settings import MllpSettings
from server.logsafe import describe, loggable
from store.errors import PregbridgeError
from store.source import PersonSource

__all__ = ["Hl7App", "serve", "ssl_context_of"]

log = logging.getLogger("pregbridge.hl7")


def _logged_type(msh: Msh | None) -> str:
    """MSH-9's type and trigger as the log shows them (client text: escaped, masked, cut)."""
    return loggable(f"{msh.message_type}^{msh.trigger}", 24) if msh else "?"


_PROCESSING_IDS = frozenset({"P", "T", "D"})


class _Reject(PregbridgeError):
    hl7_ack_code = "AR"

    def __init__(self, message: str, code: str, location: str) -> None:
        super().__init__(message)
        self.hl7_error_code = code
        self.location = location


_MSH_FIELDS = (3, 4, 5, 6, 10, 11, 12, 15, 16, 18)  # read as their first component; MSH-9 by component


def _read_msh(message: Message) -> Msh:
    """The MSH fields a receiver reads: first repetition, first component (MSH-9: three), unescaped, stripped."""
    seg = message.segment("MSH")
    if seg is None:
        raise ValueError("no MSH segment")
    seps = message.separators  # '\r|~^&'
    parts = str(seg).split(seps[1])  # MSH-n is parts[n - 1]
    parts += [""] * (18 - len(parts))
    rep, comp = seps[2], seps[3]
    fields = [parts[n - 1] for n in _MSH_FIELDS]
    rest = "|".join(fields)
    if rep in rest or "\\" in rest:  # rare: repetitions or escapes
        fields = [_first(v, rep, comp, message) for v in fields]
    else:  # the usual MSH: only components to cut
        fields = [(v.split(comp, 1)[0] if comp in v else v).strip() for v in fields]
    msh9 = [*parts[8].split(rep, 1)[0].split(comp)[:3], "", ""]
    kind, trigger, structure = ((message.unescape(v) if "\\" in v else v).strip().upper() for v in msh9[:3])
    return Msh(
        field_separator=seps[1], encoding_characters=parts[1], sending_application=fields[0],
        sending_facility=fields[1], receiving_application=fields[2], receiving_facility=fields[3],
        message_type=kind, trigger=trigger, structure=structure, control_id=fields[4], processing_id=fields[5],
        version=fields[6], accept_ack=fields[7], application_ack=fields[8], charset=fields[9],
    )


def _first(value: str, rep: str, comp: str, message: Message) -> str:
    """A field's first repetition's first component, unescaped, stripped."""
    if rep in value or comp in value:
        value = value.split(rep, 1)[0].split(comp, 1)[0]
    return (message.unescape(value) if "\\" in value else value).strip()


class Hl7App:
    """The handler the listener calls: ``app(frame, peer) -> bytes``; ``app.closed(peer)`` on disconnect."""

    def __init__(self, engine: Engine, accounts: AccountStore, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, settings: MllpSettings, *, router: Router | None = None,
                 account_state_seconds: float = 2.0, peers: LivePeers | None = None,
                 source: PersonSource | None = None) -> None:
        self.engine = engine
        self.accounts = accounts
        self.profiles = profiles
        self.audit = audit
        self.settings = settings
        self.router = router or Router()
        self.context = Context(engine, settings, Continuations(settings.continuation_max,
                                                               settings.continuation_ttl), source)
        self.peers = peers or LivePeers(settings, engine, ttl=account_state_seconds)
        self._peers: PeerTable | None = None
        self._names: dict[tuple[str, str, str], str] = {}  # (host, MSH-3, MSH-4) → account, for self._peers
        self._account_ttl = account_state_seconds
        self._account_cache: dict[str, tuple[float, str | None]] = {}

    # -- sender authentication ----------------------------------------------------------------------

    def _sender(self, peer: Peer, msh: Msh) -> tuple[str, AccessProfile]:
        """The sender's account and access profile; :class:`AuthenticationFailed` for a sender the peers do not
        name or whose account is unknown or disabled. One clock reading per message serves the peer table's
        freshness and the account cache; the account a (host, MSH-3, MSH-4) maps to is remembered until the
        peer table changes (:meth:`_account_name` is its reference)."""
        now = time.monotonic()
        table = self.peers.current(now)
        if table is not self._peers:  # the peers changed (or first use): forget the senders seen
            self._names = {}
            self._peers = table
        key = (peer.host, msh.sending_application, msh.sending_facility)
        name = self._names.get(key)
        if name is None:
            name = self._account_name(peer, msh, table)
            if len(self._names) >= 4096:  # bounded: the hosts and senders seen vary
                self._names.clear()
            self._names[key] = name
        return name, self._profile_of(name, now)

    def _account_name(self, peer: Peer, msh: Msh, table: PeerTable) -> str:
        by_address = None
        try:
            ip = ipaddress.ip_address(peer.host)
            by_address = next((acct for net, acct in table.networks if ip in net), None)
        except ValueError:
            pass
        senders = table.senders
        app, fac = msh.sending_application.upper(), msh.sending_facility.upper()
        by_sender = senders.get(f"{app}^{fac}") or senders.get(app)
        match = self.settings.peer_match
        name = {"address": by_address, "sender": by_sender, "either": by_address or by_sender,
                "both": by_address if by_address and by_address == by_sender else None}[match]
        if not name:
            raise AuthenticationFailed("sender not configured")
        return name

    def _profile_of(self, name: str, now: float) -> AccessProfile:
        cached = self._account_cache.get(name)
        if cached is None or cached[0] < now:
            account = self.accounts.get(name)
            profile = account.profile if account is not None and not account.disabled else None
            cached = (now + self._account_ttl, profile)
            self._account_cache[name] = cached
        if cached[1] is None:
            raise AuthenticationFailed("sender's account unknown or disabled")
        return resolve_profile(cached[1], self.profiles)

    # -- one message ---------------------------------------------------------------------------------

    def __call__(self, raw: bytes, peer: Peer) -> bytes:
        try:
            return self._handle(raw, peer)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: answer, never drop
            log.error("hl7 %s: internal error answering a message (%s)", peer, describe(exc))
            reply = Reply("ACK", "", "ACK", "AE", [Hl7Error("207", "internal error")], internal=True)
            text = build_reply(None, reply, AckMode(False, "", ""), application=self.settings.application,
                               facility=self.settings.facility, charset="")
            return b"".join(frame(encode(t, "ascii")) for t in text)

    def _handle(self, raw: bytes, peer: Peer) -> bytes:
        decoded = decode(raw, self.settings.default_charset)
        charset, codec = decoded.charset, decoded.codec
        msh: Msh | None = None
        mode = AckMode(False, "", "")
        route = None
        req: Request | None = None
        account: str | None = None
        try:
            text = decoded.text
            if not text.startswith("MSH") or len(text) < 8:
                raise _Reject("message does not start with an MSH segment", "100", "MSH^1")
            try:
                message = read_message(text)
                msh = _read_msh(message)
            except Exception:  # noqa: BLE001 - python-hl7 raises assorted errors on broken text
                raise _Reject("MSH segment cannot be parsed", "102", "MSH^1") from None
            try:
                mode = AckMode.of(msh.accept_ack, msh.application_ack)
            except ValueError as exc:
                raise _Reject("acknowledgement type not in table 0155", "103", f"MSH^1^{exc}") from None
            if decoded.error is not None:
                raise _Reject(str(decoded.error), decoded.error.hl7_error_code, "MSH^1^18")
            for value, where in ((msh.message_type, "9"), (msh.control_id, "10"), (msh.version, "12")):
                if not value:
                    raise _Reject(f"MSH-{where} is required", "101", f"MSH^1^{where}")
            if msh.processing_id[:1].upper() not in _PROCESSING_IDS:
                raise _Reject("processing id not supported", "202", "MSH^1^11")
            account, profile = self._sender(peer, msh)
            route = self.router.resolve(msh.message_type, msh.trigger, msh.version)
            authorize(profile, route.operation)
            req = Request(message, msh, peer, account, profile)
            reply = route.handler(req, self.context)
        except (_Reject, Unsupported) as exc:
            reply = self._nak(msh, exc, exc.location)
        except PregbridgeError as exc:
            reply = self._nak(msh, exc, "")
        except Exception as exc:  # noqa: BLE001 - e.g. SQLAlchemy errors: AE 207, logged without content
            log.error("hl7 %s: internal error in %s control id %s (%s)", peer, _logged_type(msh),
                      loggable(msh.control_id) if msh else "?", describe(exc))
            reply = Reply("ACK", msh.trigger if msh else "", "ACK", "AE", [Hl7Error("207", "internal error")],
                          internal=True)
        outcome = reply.ack_code + (f":{reply.errors[0].code}" if reply.errors else "")
        if msh is None or route is None or route.audited:  # a refusal is audited even without a readable MSH
            self.audit.write(AuditRecord.now(
                account=account, face="hl7", operation=f"{msh.message_type}^{msh.trigger}"[:80] if msh else "?",
                outcome=outcome,
                source=peer.host, asked=req.asked if req else (), returned=req.returned if req else ()))
        level = logging.DEBUG if reply.ack_code == "AA" else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, "hl7 %s %s control id %s: %s", peer, _logged_type(msh) if msh else "(no MSH)",
                    loggable(msh.control_id) if msh else "", outcome)
        texts = build_reply(msh, reply, mode, application=self.settings.application, facility=self.settings.facility,
                            charset=charset)
        return b"".join(frame(encode(t, codec)) for t in texts)

    @staticmethod
    def _nak(msh: Msh | None, exc: PregbridgeError, location: str) -> Reply:
        return Reply("ACK", msh.trigger if msh else "", "ACK", exc.hl7_ack_code,
                     [Hl7Error(exc.hl7_error_code, exc.message, location)])

    def closed(self, peer: Peer) -> None:
        """The connection ended: drop its PDQ continuation state."""
        self.context.continuations.cancel(peer.connection)


def ssl_context_of(settings: MllpSettings) -> ssl.SSLContext | None:
    if not (settings.tls_cert and settings.tls_key):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


async def serve(settings: MllpSettings, handler: Callable[[bytes, Peer], bytes], *,
                on_close: Callable[[Peer], None] | None = None,
                started: Callable[[MllpListener], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Listen until ``stop`` is set (or SIGINT/SIGTERM when ``stop`` is None)."""
    executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="hl7") if settings.threads else None
    listener = MllpListener(handler, max_frame=settings.max_frame, idle_timeout=settings.idle_timeout,
                            ssl_context=ssl_context_of(settings), executor=executor, on_close=on_close)
    server = await listener.start(settings.host, settings.port, reuse_port=settings.reuse_port)
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    log.info("hl7 listening on %s:%s%s", settings.host, listener.port, " (TLS)" if listener.ssl_context else "")
    if started is not None:
        started(listener)
    try:
        await stop.wait()
    finally:
        server.close()
        listener.close_connections()
        await server.wait_closed()
        if executor is not None:
            executor.shutdown(wait=True)

