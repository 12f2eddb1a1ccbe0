"""Settings of the access layer (authentication, throttling, credential cache, profiles, audit).

The ``[access]`` section of :class:`server.config.Settings`: a frozen dataclass with documented defaults
whose annotations (types and bounds) are what the one configuration loader (server/config.py) checks.
Durations are whole seconds or milliseconds (ints).

- ``key_path`` (None: ``<store.data_dir>/access.key``): the AES-256 key file of the PasswordDigest
  secrets; created with mode 0600 when the first digest account is added.
- ``profiles_path`` (None: built-in profiles only): TOML file of access profiles (``[profiles.NAME]``)
  overriding or adding to the built-ins.
- Throttling (server/access/throttle.py: growing delays, never a lock):
  ``pair_free_failures`` (3) failed logins per (address, account), ``account_free_failures`` (20) per account
  from addresses not known for it, ``address_free_failures`` (100) per address for accounts it is not known
  for, before delays start; ``delay_base_seconds`` (1), doubling per further failure up to
  ``delay_max_seconds`` (900); ``failure_window_seconds`` (86400): a key's failures are forgotten this long
  after its last one; ``known_address_days`` (30): how long a success keeps an address known for an account.
- ``trusted_proxies`` (none): addresses or networks (CIDR) of reverse proxies whose ``proxy_header``
  (``X-Forwarded-For`` or ``Forwarded``) names the client, for throttling and the audit trail
  (server/access/proxies.py). A list in the file, comma-separated in ``PREGBRIDGE_TRUSTED_PROXIES``.
- ``created_skew_seconds`` (300): WS-Security ``Created`` must be within this many seconds of now, either
  way; nonces are remembered for twice this long.
- ``credential_cache_ttl_seconds`` (60): how long a verified (username, password) pair skips argon2 in
  one process.
- ``credential_cache_size`` (10000): entries of that cache (least recently used evicted).
- ``account_state_seconds`` (2): how stale one process's view of an account (disabled, password changed)
  may be when a cached credential is used: the bound within which disable/passwd take effect on cache hits
  everywhere (throttle counters are read fresh on every attempt).
- ``audit_mode`` ("batched"): "batched" (a background thread, one transaction per batch) or "sync"
  (commit before ``write`` returns).
- ``audit_max_batch`` (500): records per audit transaction in batched mode.
- ``audit_max_delay_ms`` (50): longest a record waits before its batch is committed in batched mode.
- ``audit_queue_size`` (100000): records queued in memory at most; a full queue blocks, it never drops.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge

from server.access.proxies import TrustedProxies
from server.access.throttle import ThrottlePolicy

__all__ = ["AUDIT_MODES", "AccessSettings", "AuditMode"]

AuditMode = Literal["batched", "sync"]
AUDIT_MODES: tuple[str, ...] = typing.get_args(AuditMode)
Positive = Annotated[int, Ge(1)]
NotNegative = Annotated[int, Ge(0)]


@dataclass(frozen=True, slots=True)
class AccessSettings:
    key_path: Path | None = None
    profiles_path: Path | None = None
    pair_free_failures: NotNegative = 3
    account_free_failures: NotNegative = 20
    address_free_failures: NotNegative = 100
    delay_base_seconds: Positive = 1
    delay_max_seconds: Positive = 900
    failure_window_seconds: Positive = 86_400
    known_address_days: Positive = 30
    trusted_proxies: tuple[str, ...] = ()
    proxy_header: str = "X-Forwarded-For"
    created_skew_seconds: Positive = 300
    credential_cache_ttl_seconds: NotNegative = 60
    credential_cache_size: Positive = 10_000
    account_state_seconds: NotNegative = 2
    audit_mode: AuditMode = "batched"
    audit_max_batch: Positive = 500
    audit_max_delay_ms: NotNegative = 50
    audit_queue_size: Positive = 100_000

    def __post_init__(self) -> None:
        self.proxies()  # refuses entries that are no address or network, and an unknown header

    def proxies(self) -> TrustedProxies:
        """The trusted proxies and their header."""
        return TrustedProxies(self.trusted_proxies, self.proxy_header)

    def throttle_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(pair_free=self.pair_free_failures, account_free=self.account_free_failures,
                              address_free=self.address_free_failures, base_delay=float(self.delay_base_seconds),
                              max_delay=float(self.delay_max_seconds), window=float(self.failure_window_seconds),
                              trust=self.known_address_days * 86_400.0)

    def resolved_key_path(self, data_dir: Path) -> Path:
        """The key file: ``key_path`` if set, else ``access.key`` in the store's data directory."""
        return self.key_path if self.key_path is not None else data_dir / "access.key"
