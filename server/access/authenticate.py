"""Authentication of every call: HTTP Basic, WS-Security UsernameToken (text and digest), throttling, caching.

:class:`Authenticator` is transport-agnostic: a face extracts the header or token fields and the peer
address and calls :meth:`~Authenticator.basic`, :meth:`~Authenticator.username_token` or
:meth:`~Authenticator.password`; it gets an :class:`Account` or an :class:`AuthenticationFailed`
(:class:`Throttled` while a login delay runs) whose message never says whether the account exists.

Throttling (:mod:`server.access.throttle`): growing delays per (address, account), per account and per
address, never a lock; every attempt reads its three counters fresh from the store (one indexed read)
before anything else, and is refused with :class:`Throttled` while a delay it is subject to runs, before
the password is looked at. A failure is counted atomically in the store; a success resets its (address,
account) counter at once for every worker, and marks the address known for the account.

The verified-credential cache. argon2 verification costs tens of milliseconds by design, which would
cap a process at a few dozen authenticated calls per second. Each process therefore remembers, for
``cache_ttl`` (60 s) and at most ``cache_size`` (10,000, LRU) entries, which (username,
SHA-256(per-process random salt + password)) pairs it verified, with the argon2 hash they matched. A
hit skips argon2 but still consults the account's state (disabled, current hash), which the process
caches for ``state_ttl`` (2 s) at most, and the throttle counters (fresh, see above). So: disabling an
account or changing its password takes effect on cache hits within ``state_ttl`` seconds, and at once in
the process that made the change and on every path that is not a cache hit. Failures are never cached.

An entry is verified again before it expires, off the request path: a hit in the last quarter of its
life (:data:`REFRESH_SHARE`) hands the pair to one background thread per process, which runs argon2 at
the lowest CPU priority (Linux: ``nice`` 19 for that thread and the lanes argon2 starts from it) and
puts the entry back for another ``cache_ttl``. Starved of CPU, that verification can outlast the entry:
while it is under way the entry stays usable for up to another quarter of its life (the same password
verified against the same hash can only agree, and the hash is checked on every hit). Before, the first
call after an entry expired ran argon2 on the request path: with argon2-cffi's defaults (64 MiB, 3
passes, 4 lanes) ~0.1–0.2 s of CPU on all of a 2-core machine's cores, once a minute in every worker — a
stall of every connection the worker held, in whichever benchmark ran a minute after the servers started
(issue 15, benchmarks/bench_grunndata.py). An account not used in that last quarter still pays argon2 on
its next call, as any first call does.

WS-Security. PasswordText is verified with argon2 (through the same cache); its Nonce and Created, if
sent, are not checked (PasswordText relies on TLS, like HTTP Basic). PasswordDigest needs Nonce and
Created; Created must be within ``created_skew`` (5 min) of now either way; the nonce is recorded in
``ws_nonce`` after the digest checks out (an atomic insert-if-absent, so of two concurrent replays
exactly one succeeds) and a nonce seen before is refused as a replay. Nonces are kept for twice the
skew — a message is acceptable for at most that long after its nonce was first seen — and purged after.
So every digest login writes one small transaction (on PostgreSQL with ``synchronous_commit`` off for it:
a nonce lost in a crash reopens only that message's replay window), which makes digest logins cost a
database round trip or four where a cached PasswordText login costs none. Digest accounts need their
password decryptable (:mod:`server.access.accounts`).
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import datetime as dt
import hashlib
import hmac
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, NoReturn, TypeVar

from sqlalchemy import Connection, Engine, delete
from sqlalchemy.dialects import postgresql, sqlite

from server.access.accounts import Account, AccountStore, Credentials, DigestKeyError
from server.access.errors import AuthenticationFailed
from server.access.settings import AccessSettings
from server.access.throttle import Throttle, ThrottlePolicy
from store import schema as s

__all__ = ["PASSWORD_DIGEST", "PASSWORD_TEXT", "REFRESH_SHARE", "Authenticator", "basic_username"]

log = logging.getLogger(__name__)

PASSWORD_TEXT = "PasswordText"
PASSWORD_DIGEST = "PasswordDigest"
_MAX_NONCE = 1024
_PURGE_EVERY = 60.0  # seconds between purges of expired nonces and throttle rows, per process
REFRESH_SHARE = 0.25
"""The last share of a cached credential's life in which a hit has it verified again in the background."""

K = TypeVar("K")
V = TypeVar("V")
_MISSING = object()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class _TtlLru(Generic[K, V]):
    """A bounded, thread-safe LRU map whose entries expire ``ttl`` seconds after they were put."""

    def __init__(self, size: int, ttl: float, clock: Callable[[], float]) -> None:
        self.size, self.ttl, self.clock = size, ttl, clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | object:
        """The value, or ``_MISSING`` when absent or expired."""
        return self.get_with_life(key)[0]

    def get_with_life(self, key: K, grace: float = 0.0) -> tuple[V | object, float]:
        """(the value, seconds it has left: below 0 within ``grace`` seconds past its expiry), or (``_MISSING``,
        0) when absent or expired longer ago."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return _MISSING, 0.0
            left = item[0] - self.clock()
            if left <= -grace:
                del self._data[key]
                return _MISSING, 0.0
            self._data.move_to_end(key)
            return item[1], left

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._data[key] = (self.clock() + self.ttl, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class Authenticator:
    """Authenticates calls against an :class:`AccountStore`, with shared throttling and a per-process cache.

    ``clock`` (naive UTC wall time: Created, throttle windows, nonce ages) and ``monotonic`` (cache ages)
    are injectable for tests. Build one per process, after the fork.
    """

    def __init__(
        self,
        engine: Engine,
        accounts: AccountStore,
        *,
        policy: ThrottlePolicy | None = None,
        created_skew: float = 300.0,
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
        state_ttl: float = 2.0,
        clock: Callable[[], dt.datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.created_skew = dt.timedelta(seconds=created_skew)
        self.clock = clock
        self.monotonic = monotonic
        self.throttle = Throttle(engine, policy or ThrottlePolicy(), clock)
        self._salt = os.urandom(16)
        self._creds: _TtlLru[tuple[str, bytes], str] = _TtlLru(cache_size, cache_ttl, monotonic)
        self._states: _TtlLru[str, Credentials | None] = _TtlLru(cache_size, state_ttl, monotonic)
        self._next_purge = 0.0
        self._refresh_within = cache_ttl * REFRESH_SHARE
        self._refreshing: dict[tuple[str, bytes], concurrent.futures.Future[None]] = {}
        self._refresher: concurrent.futures.ThreadPoolExecutor | None = None  # made at the first refresh
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    @classmethod
    def from_settings(cls, engine: Engine, accounts: AccountStore, settings: AccessSettings) -> Authenticator:
        return cls(engine, accounts, policy=settings.throttle_policy(), created_skew=settings.created_skew_seconds,
                   cache_ttl=settings.credential_cache_ttl_seconds, cache_size=settings.credential_cache_size,
                   state_ttl=settings.account_state_seconds)

    # -- the faces' entry points ------------------------------------------------------------------------

    def basic(self, authorization_header: str | None, source: str) -> Account:
        """HTTP Basic (RFC 7617): ``Basic base64(user:password)``; credentials UTF-8, else ISO-8859-1."""
        username, password = _parse_basic(authorization_header)
        return self.password(username, password, source)

    def username_token(self, username: str, password: str, password_type: str | None, nonce_b64: str | None,
                       created: str | None, source: str) -> Account:
        """WS-Security UsernameToken. ``password_type`` is PasswordText (the default when absent) or
        PasswordDigest, bare or as the OASIS URI ``…#PasswordText`` / ``…#PasswordDigest``."""
        kind = (password_type or PASSWORD_TEXT).rsplit("#", 1)[-1]
        if kind == PASSWORD_TEXT:
            return self.password(username, password, source)
        if kind == PASSWORD_DIGEST:
            return self.digest(username, password, nonce_b64, created, source)
        raise AuthenticationFailed("unsupported UsernameToken password type")

    def password(self, username: str, password: str, source: str) -> Account:
        """A cleartext password (HTTP Basic, PasswordText, or an MLLP account), verified with argon2 or the cache."""
        now = self.clock()
        seen = self.throttle.admit(Throttle.keys(username, source), now)
        cache_key = (username, self._fingerprint(password))
        # while the pair is being verified again, its entry stays usable a while past its expiry: the background
        # verification of the same password against the same hash can only agree (the hash is checked below)
        grace = self._refresh_within if cache_key in self._refreshing else 0.0
        matched, left = self._creds.get_with_life(cache_key, grace)
        if isinstance(matched, str):
            creds = self._state(username)
            if creds is not None and not creds.account.disabled and creds.password_hash == matched:
                self.throttle.succeeded(seen, now)
                if left <= self._refresh_within:
                    self._refresh(cache_key, username, password)
                return creds.account
            self._creds.pop(cache_key)
        try:
            creds = self.accounts.verify_credentials(username, password)
        except AuthenticationFailed:
            self.throttle.failed(seen, "credentials", source)
            raise
        self.throttle.succeeded(seen, now)
        self._states.put(username, creds)
        self._creds.put(cache_key, creds.password_hash)
        return creds.account

    def digest(self, username: str, digest_b64: str, nonce_b64: str | None, created: str | None,
               source: str) -> Account:
        """WS-Security PasswordDigest: Base64(SHA-1(nonce + created + password)), fresh Created, unseen nonce."""
        now = self.clock()
        seen = self.throttle.admit(Throttle.keys(username, source), now)

        def fail(reason: str) -> NoReturn:
            self.throttle.failed(seen, reason, source)
            raise AuthenticationFailed()

        if not nonce_b64 or not created:
            fail("digest without nonce or created")
        if not self._fresh(created, now):
            fail("created outside the freshness window")
        try:
            nonce = base64.b64decode(nonce_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            fail("malformed nonce")
        if not nonce or len(nonce) > _MAX_NONCE:
            fail("malformed nonce")
        creds = self._state(username)
        if not self._digest_ok(creds, digest_b64, nonce, created):
            self._states.pop(username)  # a stale cached state must not fail a just-changed account twice
            fail("credentials")
        assert creds is not None
        if not self._remember_nonce(nonce, now):
            fail("nonce replay")
        self.throttle.succeeded(seen, now)
        return creds.account

    def forget(self, username: str | None = None) -> None:
        """Drop this process's cached credentials and state (of one account, or all)."""
        if username is None:
            self._creds.clear()
            self._states.clear()
        else:
            self._states.pop(username)
            # credential entries expire by themselves; the state check above refuses them meanwhile

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until the background re-verifications under way are done (tests; a process that stops); False
        when ``timeout`` passed first."""
        done, pending = concurrent.futures.wait(list(self._refreshing.values()), timeout)
        return not pending

    def purge(self) -> None:
        """Delete expired nonces and throttle rows now (otherwise done at most once a minute per process)."""
        self._next_purge = 0.0
        now = self.clock()
        with self.engine.begin() as conn:
            self._purge(conn, now)
            self.throttle.purge(conn, now)

    # -- internals --------------------------------------------------------------------------------------

    def _refresh(self, key: tuple[str, bytes], username: str, password: str) -> None:
        """Have a cached pair verified again on the background thread (module docstring), once at a time."""
        if key in self._refreshing:
            return
        if self._refresher is None:
            self._refresher = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="credential-refresh", initializer=_lowest_priority)
        future = self._refresher.submit(self._reverify, key, username, password)
        self._refreshing[key] = future
        future.add_done_callback(lambda _: self._refreshing.pop(key, None))

    def _reverify(self, key: tuple[str, bytes], username: str, password: str) -> None:
        try:
            creds = self.accounts.verify_credentials(username, password)
        except AuthenticationFailed:  # changed or disabled meanwhile: the next call verifies and is refused
            self._creds.pop(key)
            return
        except Exception as exc:  # noqa: BLE001 - the store unavailable: the entry expires as it would have
            log.warning("a cached credential was not verified again (%s)", type(exc).__name__)
            return
        self._states.put(username, creds)
        self._creds.put(key, creds.password_hash)

    def _fingerprint(self, password: str) -> bytes:
        return hashlib.sha256(self._salt + password.encode("utf-8", "surrogatepass")).digest()

    def _state(self, username: str) -> Credentials | None:
        cached = self._states.get(username)
        if cached is _MISSING:
            creds = self.accounts.credentials(username)
            self._states.put(username, creds)
            return creds
        return cached if isinstance(cached, Credentials) else None

    def _fresh(self, created: str, now: dt.datetime) -> bool:
        text = created.strip()
        if text[-1:] in ("z", "Z"):
            text = text[:-1] + "+00:00"
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            return False
        if when.tzinfo is not None:
            when = when.astimezone(dt.UTC).replace(tzinfo=None)
        return abs(now - when) <= self.created_skew

    def _digest_ok(self, creds: Credentials | None, digest_b64: str, nonce: bytes, created: str) -> bool:
        if creds is None or creds.account.disabled or creds.digest_secret is None:
            return False
        try:
            password = self.accounts.decrypt_secret(creds.account.username, creds.digest_secret)
        except DigestKeyError as exc:
            log.error("PasswordDigest secret of account %s unusable: %s", creds.account.username, exc)
            return False
        expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest())
        return hmac.compare_digest(expected, digest_b64.strip().encode("utf-8", "surrogatepass"))

    def _remember_nonce(self, nonce: bytes, now: dt.datetime) -> bool:
        """Record a nonce; False when it was seen before (a replay)."""
        stmt = self._insert(s.ws_nonce).values(nonce=hashlib.sha256(nonce).hexdigest(), seen_at=now)
        with self.engine.begin() as conn:
            if self._postgres:
                # A nonce lost in a server crash only reopens replay of that one message for the rest of its
                # freshness window; not waiting for the WAL flush makes digest logins several times cheaper.
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            self._maybe_purge(conn, now)
            added = stmt.on_conflict_do_nothing(index_elements=["nonce"]).returning(s.ws_nonce.c.nonce)
            return conn.execute(added).first() is not None  # (rowcount is not reliable here on psycopg)

    def _maybe_purge(self, conn: Connection, now: dt.datetime) -> None:
        if self.monotonic() < self._next_purge:
            return
        self._purge(conn, now)

    def _purge(self, conn: Connection, now: dt.datetime) -> None:
        self._next_purge = self.monotonic() + _PURGE_EVERY
        conn.execute(delete(s.ws_nonce).where(s.ws_nonce.c.seen_at < now - 2 * self.created_skew))


def _lowest_priority() -> None:
    """The refresh thread's initializer: the lowest CPU priority for it and the threads it starts (argon2's
    lanes). Linux only, where ``nice`` is a thread's own; elsewhere it would lower the whole process."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError:  # not permitted: run at the process's priority
            pass


def _parse_basic(header: str | None) -> tuple[str, str]:
    malformed = AuthenticationFailed("missing or malformed HTTP Basic credentials")
    if not header:
        raise malformed
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip() or len(token) > 4 * _MAX_NONCE:
        raise malformed
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise malformed from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    username, sep, password = text.partition(":")
    if not sep or not username:
        raise malformed
    return username, password


def basic_username(authorization_header: str | None) -> str | None:
    """The username of an HTTP Basic header (for the audit of a refusal), or None; the password is dropped."""
    try:
        return _parse_basic(authorization_header)[0]
    except AuthenticationFailed:
        return None
