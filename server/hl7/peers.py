"""HL7 senders kept in the store (``pregbridge hl7 peers add|remove|list``), read by running listeners.

MLLP carries no credentials, so a sender is known by its address or by its MSH-3/MSH-4 (server/hl7/app.py).
The configuration file's ``hl7.peers`` table names senders too, but changing it needs a listener restart;
the ``hl7_peer`` table does not. :class:`LivePeers` gives a listener the union of both — the table's entry
wins where both name the same peer — and reads the table again once its copy is ``ttl`` seconds old
(``access.account_state_seconds``, 2 s, as account state is cached): a peer added or removed is honoured
by every running listener within that time, without a restart. The read is one small query, made by the
thread that handles the next message; if the store cannot be read, the previous table stays in use and the
error type (only) is logged, and the read is tried again a ``ttl`` later.

A peer key is an IP address or a CIDR network (``10.1.2.0/24``; stored in its normal form, host bits
cleared), or a sender ``MSH-3^MSH-4`` or ``MSH-3`` (stored upper-case, as the listener compares it): 1–200
printable characters without spaces or ``|`` and at most one ``^``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from server.hl7.settings import MllpSettings
from store import schema as s
from store.engine import read_connection
from store.errors import InvalidInput, NotFound

__all__ = ["LivePeers", "PeerStore", "PeerTable", "normal_peer"]

log = logging.getLogger("pregbridge.hl7")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normal_peer(key: str) -> str:
    """The stored form of a peer key (module docstring); :class:`InvalidInput` for anything else."""
    text = key.strip()
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        pass
    if not 0 < len(text) <= 200 or not text.isprintable() or any(c in text for c in " |\t") or text.count("^") > 1:
        raise InvalidInput("a peer is an IP address, a CIDR network, or MSH-3^MSH-4 / MSH-3 "
                           "(1-200 printable characters, no spaces or |, at most one ^)")
    if text.startswith("^"):
        raise InvalidInput("a sender peer needs its MSH-3 (sending application) before the ^")
    return text.upper()


class PeerStore:
    """The ``hl7_peer`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, peer: str, account: str) -> str:
        key = normal_peer(peer)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(s.hl7_peer).values(
                    peer=key, account=account, created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None)))
        except IntegrityError:
            raise InvalidInput(f"peer {key} is already kept; remove it first to map it to another account") from None
        return key

    def remove(self, peer: str) -> str:
        key = normal_peer(peer)
        with self.engine.begin() as conn:
            if conn.execute(delete(s.hl7_peer).where(s.hl7_peer.c.peer == key)).rowcount != 1:
                raise NotFound(f"no peer {key} is kept in the store")
        return key

    def list(self) -> list[tuple[str, str, dt.datetime]]:
        """(peer, account, created_at) of every stored peer, by peer."""
        t = s.hl7_peer
        with read_connection(self.engine) as conn:
            return [(r.peer, r.account, r.created_at)
                    for r in conn.execute(select(t.c.peer, t.c.account, t.c.created_at).order_by(t.c.peer))]

    def mapping(self) -> dict[str, str]:
        t = s.hl7_peer
        with read_connection(self.engine) as conn:
            return {r.peer: r.account for r in conn.execute(select(t.c.peer, t.c.account))}


@dataclass(frozen=True, slots=True)
class PeerTable:
    """One reading of the peers: networks (most specific first) and senders, each → account."""

    networks: tuple[tuple[Network, str], ...]
    senders: Mapping[str, str]

    @classmethod
    def of(cls, settings: MllpSettings, stored: Mapping[str, str]) -> PeerTable:
        """The configuration's peers with the stored ones over them (the same key: the stored account).
        Addresses and networks most specific first; senders upper-case (as ``hl7.peers`` has always been read)."""
        merged = {normal_peer_or_raw(k): v for k, v in settings.peers.items()}
        merged.update(stored)
        networks: list[tuple[Network, str]] = []
        senders: dict[str, str] = {}
        for key, account in merged.items():
            try:
                networks.append((ipaddress.ip_network(key.strip(), strict=False), account))
            except ValueError:
                senders[key.strip().upper()] = account
        networks.sort(key=lambda x: -x[0].prefixlen)
        return cls(tuple(networks), senders)


def normal_peer_or_raw(key: str) -> str:
    """A configured key in stored form where it has one (so a stored entry can override it), else as given."""
    try:
        return normal_peer(key)
    except InvalidInput:
        return key


class LivePeers:
    """The current :class:`PeerTable` of a listener: read again from the store every ``ttl`` seconds."""

    def __init__(self, settings: MllpSettings, engine: Engine | None, *, ttl: float = 2.0) -> None:
        self.settings = settings
        self.store = PeerStore(engine) if engine is not None else None
        self.ttl = ttl
        self._lock = threading.Lock()
        self._table = PeerTable.of(settings, {})
        self._next = 0.0

    def current(self, now: float | None = None) -> PeerTable:
        """The table; read again first when it is ``ttl`` old (``now``: the caller's ``time.monotonic()``, read
        once per message for this and the account cache)."""
        if self.store is None or (time.monotonic() if now is None else now) < self._next:
            return self._table
        with self._lock:
            if time.monotonic() >= self._next:
                try:
                    self._table = PeerTable.of(self.settings, self.store.mapping())
                except Exception as exc:  # noqa: BLE001 - keep answering with the table we have
                    log.error("hl7: the stored peers could not be read (%s); keeping the previous table",
                              type(exc).__name__)
                self._next = time.monotonic() + self.ttl
        return self._table
