"""Settings of the HL7 v2 MLLP listener (``[hl7]`` in the configuration file).

A frozen dataclass with documented defaults whose annotations (types and bounds) are what the one
configuration loader (server/config.py) checks.

- ``host`` ("127.0.0.1"), ``port`` (2575, the IANA port for HL7 over MLLP).
- ``max_frame`` (1 MiB): largest message accepted; a bigger frame closes the connection (no reply is
  possible: the message end is never read) with a log line.
- ``idle_timeout`` (300 s): a connection with no bytes for this long is closed. 0 disables it.
- ``default_charset`` ("UNICODE UTF-8"): the MSH-18 value assumed when a message has none
  (``8859/1`` for senders that send ISO-8859-1 without saying so).
- ``tls_cert``/``tls_key`` (None): PEM files; when both are set the listener speaks TLS only.
- ``reuse_port`` (False): bind with SO_REUSEPORT so several listener processes share the port and the
  kernel spreads connections over them (Linux, BSD; docs/hl7.md "Several processes").
- ``application``/``facility`` ("PREGBRIDGE"/""): MSH-3/MSH-4 of replies when the request's MSH-5/6 is empty.
- ``peers`` ({}): who may send, and as which account. Keys are peer addresses (an IP address or a
  CIDR network, ``"10.1.2.0/24"``) or senders (``"MSH-3^MSH-4"``, or ``"MSH-3"`` for any facility);
  values are account names (``pregbridge users add``). The account's access profile applies; its
  password is not used (MLLP has no place for one). See ``peer_match``.
- ``peer_match`` ("either"): "address" (only the peer address counts), "sender" (only MSH-3/MSH-4),
  "either" (first the address, else the sender), or "both" (both must be configured and name the same
  account — use this when MSH-3/MSH-4 alone could be spoofed by anyone who can reach the port).
- ``page_size`` (100): results per RSP^K22 when RCP-2 gives no quantity limit.
- ``continuation_ttl`` (600 s) and ``continuation_max`` (1000): how long, and how many, PDQ
  continuation pointers are kept per process.
- ``threads`` (0): handlers run on the event loop, the fast configuration (benchmarks/bench_mllp.py measures
  this default: up to 35 % less server CPU a message than 4 threads, ×1.3–1.55 the rate at one connection).
  N > 0 runs store calls in N worker threads, so one slow call (a broad PDQ search, a PostgreSQL server
  far away) does not stall the other connections; docs/hl7.md "Threads" says when that pays.
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge, Interval

from server.hl7.charsets import UnsupportedCharset, codec_of

__all__ = ["PEER_MATCH", "MllpSettings", "PeerMatch"]

PeerMatch = Literal["address", "sender", "either", "both"]
PEER_MATCH: tuple[str, ...] = typing.get_args(PeerMatch)


@dataclass(frozen=True, slots=True)
class MllpSettings:
    host: str = "127.0.0.1"
    port: Annotated[int, Interval(ge=0, le=65535)] = 2575
    max_frame: Annotated[int, Ge(1)] = 1 << 20
    idle_timeout: Annotated[int, Ge(0)] = 300
    default_charset: str = "UNICODE UTF-8"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    reuse_port: bool = False
    application: str = "PREGBRIDGE"
    facility: str = ""
    peers: Mapping[str, str] = field(default_factory=dict)
    peer_match: PeerMatch = "either"
    page_size: Annotated[int, Ge(1)] = 100
    continuation_ttl: Annotated[int, Ge(0)] = 600
    continuation_max: Annotated[int, Ge(1)] = 1000
    threads: Annotated[int, Ge(0)] = 0

    def __post_init__(self) -> None:
        try:
            codec_of(self.default_charset)
        except UnsupportedCharset:
            raise ValueError(f"hl7.default_charset: {self.default_charset!r} is no character set pregbridge "
                             "reads (docs/hl7.md)") from None
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("hl7.tls_cert and hl7.tls_key go together")

    def address_peers(self) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
        """(network, account) for every ``peers`` key that is an address or network, most specific first."""
        out = []
        for key, account in self.peers.items():
            try:
                out.append((ipaddress.ip_network(key.strip(), strict=False), account))
            except ValueError:
                continue
        return sorted(out, key=lambda x: -x[0].prefixlen)

    def sender_peers(self) -> dict[str, str]:
        """``MSH-3^MSH-4`` (or ``MSH-3``) → account for every ``peers`` key that is not an address."""
        out = {}
        for key, account in self.peers.items():
            try:
                ipaddress.ip_network(key.strip(), strict=False)
            except ValueError:
                out[key.strip().upper()] = account
        return out

