"""The client's address: the peer's, or — behind trusted proxies — the one they report (``Forwarded`` / XFF).

Throttling (server/access/throttle.py) and the audit trail key on the client's address. Behind a reverse
proxy or load balancer the TCP peer is the proxy, so every client would share one address; the proxy
reports the client in a header instead. A header is only as trustworthy as whoever wrote it, so it is
read only when the peer is one of the configured ``access.trusted_proxies`` (addresses or networks), and
only the one header the site's proxies write (``access.proxy_header``: ``X-Forwarded-For``, the default,
or ``Forwarded``, RFC 7239 §4): a client behind a proxy that writes XFF could otherwise send a
``Forwarded`` header of its own that the proxy passes through untouched.

The header lists the client first and each proxy's peer after it (``client, proxy1, proxy2``; RFC 7239
``for=`` parameters in the same order). It is read from the right: starting at the peer, each entry
that is itself a trusted proxy is stepped over, and the first that is not is the client. So a client
that prepends addresses of its own gets only its real address used (the entries it wrote lie to the
left of the one the trusted proxy appended). An entry that is no address (``unknown``, an obfuscated
RFC 7239 identifier, garbage) stops the walk: the nearest trusted proxy that reported it stands for the
client. At most 32 entries are read. A peer that is not trusted: its headers are ignored.

Addresses are normalised (IPv4-mapped IPv6 as IPv4, IPv6 compressed); a peer that is no IP address
(a Unix socket) is kept as ``#`` + a hash of it. Pure functions and one frozen class: no I/O.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = ["CLIENT_ADDRESS_KEY", "PROXY_HEADERS", "TrustedProxies", "client_address", "normalize_address"]

CLIENT_ADDRESS_KEY: Final = "pregbridge.client_address"
PROXY_HEADERS: Final = {"x-forwarded-for": "HTTP_X_FORWARDED_FOR", "forwarded": "HTTP_FORWARDED"}
_MAX_ENTRIES = 32
# RFC 7239 forwarded-pair: token "=" ( token / quoted-string ), then ";" (next pair) or "," (next element).
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*([;,]?)')
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("["):  # [v6] or [v6]:port
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    if not text or len(text) > 64:
        return None
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # a zone id (fe80::1%eth0) is not part of the address
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@functools.lru_cache(maxsize=4096)
def normalize_address(text: str) -> str:
    """An address as throttling and the audit keep it: the IP normalised, else ``#`` + a hash (empty: ``""``)."""
    if not text:
        return ""
    ip = _ip(text)
    if ip is not None:
        return str(ip)
    return "#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def _forwarded_for(value: str) -> list[str]:
    """The ``for=`` node of each element of an RFC 7239 ``Forwarded`` value, in order ("" where one has none)."""
    out: list[str] = []
    current = ""
    pos = 0
    while pos < len(value) and len(out) < 4 * _MAX_ENTRIES:
        m = _PAIR.match(value, pos)
        if m is None or m.end() == pos:
            break
        name, raw, sep = m.groups()
        if name.lower() == "for":
            current = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\") if raw.startswith('"') else raw
        if sep != ";":
            out.append(current)
            current = ""
        pos = m.end()
    return out


class TrustedProxies:
    """The configured proxies; :meth:`client` finds the client's address of a request (module docstring)."""

    def __init__(self, networks: Iterable[str] = (), header: str = "X-Forwarded-For") -> None:
        parsed: list[IpNetwork] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise ValueError(f"access.trusted_proxies: {text!r} is not an IP address or network") from None
        name = header.strip().lower()
        if name not in PROXY_HEADERS:
            raise ValueError(f"access.proxy_header must be X-Forwarded-For or Forwarded, not {header!r}")
        self.networks: tuple[IpNetwork, ...] = tuple(parsed)
        self.header = name
        self._environ_key = PROXY_HEADERS[name]

    def _trusted(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return ip is not None and any(ip in net for net in self.networks)

    def client(self, peer: str, header_value: str | None) -> str:
        """The client's address, from the peer's address and the value of the configured header (if sent)."""
        hop = _ip(peer)
        if not header_value or not self._trusted(hop):
            return normalize_address(peer)
        if self.header == "forwarded":
            entries = _forwarded_for(header_value)
        else:  # empty list elements (",,") are no entries (RFC 7230 §7)
            entries = [e for e in header_value.split(",") if e.strip()]
        for entry in reversed(entries[-_MAX_ENTRIES:]):
            ip = _ip(entry.strip().strip('"'))
            if ip is None:
                break  # unknown or obfuscated: the proxy that reported it stands for the client
            hop = ip
            if not self._trusted(ip):
                break
        return str(hop)

    def of_environ(self, environ: Mapping[str, Any]) -> str:
        """:meth:`client` of a WSGI request."""
        value = environ.get(self._environ_key)
        return self.client(str(environ.get("REMOTE_ADDR") or ""), str(value) if value else None)


def client_address(environ: Mapping[str, Any]) -> str:
    """The client address of a WSGI request: as the composition root found it (``CLIENT_ADDRESS_KEY``, trusted
    proxies applied), else the peer's address normalised."""
    found = environ.get(CLIENT_ADDRESS_KEY)
    if isinstance(found, str):
        return found
    return normalize_address(str(environ.get("REMOTE_ADDR") or ""))
