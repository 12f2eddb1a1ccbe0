"""Authentication of every call: HTTP Basic, WS-Security UsernameToken (text and digest), throttling, caching.

:class:`Authenticator` is transport-agnostic: a face extracts the header or token fields and the peer
address and calls :meth:`~Authenticator.basic`, :meth:`~Authenticator.username_token` or
:meth:`~Authenticator.password`; it gets an :class:`Account` or an :class:`AuthenticationFailed`
(:class:`Throttled` when locked) whose message never says whether the account exists.

Throttling (table ``auth_throttle``, shared by every worker process). Failures are counted per account
name (``account:<name>``, whether or not the account exists, so locking reveals nothing) and per source
address (``addr:<ip>``) in one atomic upsert per key (``INSERT … ON CONFLICT DO UPDATE SET failures =
failures + 1`` with the window reset inside the statement), so concurrent workers never lose a count.
The ``max_failures``-th failure within ``failure_window`` locks the key for ``failure_window``; while
locked every attempt for that key is refused with :class:`Throttled` *before* the password is looked
at, so even the right password is refused, and refused attempts do not extend the lock. A success
deletes the account's counter (not the address's). Expired rows are purged now and then.

The verified-credential cache. argon2 verification costs tens of milliseconds by design, which would
cap a process at a few dozen authenticated calls per second. Each process therefore remembers, for
``cache_ttl`` (60 s) and at most ``cache_size`` (10,000, LRU) entries, which (username,
SHA-256(per-process random salt + password)) pairs it verified, with the argon2 hash they matched. A
hit skips argon2 but still consults the account's state (disabled, current hash) and the lock state of
its keys, which the process caches for ``state_ttl`` (2 s) at most. So: disabling an account, changing
its password or a lock set by another process takes effect on cache hits within ``state_ttl`` seconds,
and at once in the process that made the change and on every path that is not a cache hit. Failures
are never cached, and every failed attempt (cache miss) reads the locks fresh from the database.

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
import datetime as dt
import hashlib
import hmac
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, NoReturn, TypeVar

from sqlalchemy import Connection, Engine, and_, case, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from server.access.accounts import Account, AccountStore, Credentials, DigestKeyError, valid_username
from server.access.errors import AuthenticationFailed, Throttled
from server.access.settings import AccessSettings
from store import schema as s
from store.engine import read_connection

__all__ = ["PASSWORD_DIGEST", "PASSWORD_TEXT", "Authenticator"]

log = logging.getLogger(__name__)

PASSWORD_TEXT = "PasswordText"
PASSWORD_DIGEST = "PasswordDigest"
_MAX_NONCE = 1024
_PURGE_EVERY = 60.0  # seconds between purges of expired nonces and throttle rows, per process

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
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return _MISSING
            if item[0] <= self.clock():
                del self._data[key]
                return _MISSING
            self._data.move_to_end(key)
            return item[1]

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


@dataclass(frozen=True, slots=True)
class _Lock:
    """One ``auth_throttle`` row as seen at a moment: None values mean no row."""

    failures: int
    locked_until: dt.datetime | None


def account_key(username: str) -> str:
    if valid_username(username):
        return f"account:{username}"
    return "account:#" + hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:40]


def source_key(source: str) -> str | None:
    return f"addr:{source[:190]}" if source else None


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
        max_failures: int = 5,
        failure_window: float = 900.0,
        created_skew: float = 300.0,
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
        state_ttl: float = 2.0,
        clock: Callable[[], dt.datetime] = _utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.accounts = accounts
        self.max_failures = max_failures
        self.failure_window = dt.timedelta(seconds=failure_window)
        self.created_skew = dt.timedelta(seconds=created_skew)
        self.clock = clock
        self.monotonic = monotonic
        self._salt = os.urandom(16)
        self._creds: _TtlLru[tuple[str, bytes], str] = _TtlLru(cache_size, cache_ttl, monotonic)
        self._states: _TtlLru[str, Credentials | None] = _TtlLru(cache_size, state_ttl, monotonic)
        self._locks: _TtlLru[str, _Lock | None] = _TtlLru(cache_size, state_ttl, monotonic)
        self._next_purge = 0.0
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    @classmethod
    def from_settings(cls, engine: Engine, accounts: AccountStore, settings: AccessSettings) -> Authenticator:
        return cls(engine, accounts, max_failures=settings.max_failures,
                   failure_window=settings.failure_window_seconds, created_skew=settings.created_skew_seconds,
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
        keys = _keys(username, source)
        cache_key = (username, self._fingerprint(password))
        matched = self._creds.get(cache_key)
        if isinstance(matched, str):
            creds = self._state(username)
            if (creds is not None and not creds.account.disabled and creds.password_hash == matched
                    and not self._locked(keys, fresh=False)):
                self._succeeded(keys[0], None)  # resets a counter only when one is known to exist
                return creds.account
            self._creds.pop(cache_key)
        now = self.clock()
        locks = self._fresh_locks(keys, now)
        self._raise_if_locked(locks, now)
        try:
            creds = self.accounts.verify_credentials(username, password)
        except AuthenticationFailed:
            self._record_failure(keys, now, "credentials")
            raise
        self._succeeded(keys[0], locks)
        self._states.put(username, creds)
        self._creds.put(cache_key, creds.password_hash)
        return creds.account

    def digest(self, username: str, digest_b64: str, nonce_b64: str | None, created: str | None,
               source: str) -> Account:
        """WS-Security PasswordDigest: Base64(SHA-1(nonce + created + password)), fresh Created, unseen nonce."""
        keys = _keys(username, source)
        now = self.clock()
        if not nonce_b64 or not created:
            self._fail(keys, now, "digest without nonce or created")
        if not self._fresh(created, now):
            self._fail(keys, now, "created outside the freshness window")
        try:
            nonce = base64.b64decode(nonce_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            self._fail(keys, now, "malformed nonce")
        if not nonce or len(nonce) > _MAX_NONCE:
            self._fail(keys, now, "malformed nonce")
        creds = self._state(username)
        if not self._digest_ok(creds, digest_b64, nonce, created):
            self._states.pop(username)  # a stale cached state must not fail a just-changed account twice
            self._fail(keys, now, "credentials")
        assert creds is not None
        if self._locked(keys, fresh=False):  # a cached lock: confirm it, so a lapsed one is not held against us
            self._raise_if_locked(self._fresh_locks(keys, now), now)
        if not self._remember_nonce(nonce, now):
            self._fail(keys, now, "nonce replay")
        self._succeeded(keys[0], None)
        return creds.account

    def forget(self, username: str | None = None) -> None:
        """Drop this process's cached credentials and state (of one account, or all)."""
        if username is None:
            self._creds.clear()
            self._states.clear()
            self._locks.clear()
        else:
            self._states.pop(username)
            self._locks.pop(account_key(username))
            # credential entries expire by themselves; the state check above refuses them meanwhile

    def purge(self) -> None:
        """Delete expired nonces and throttle rows now (otherwise done at most once a minute per process)."""
        self._next_purge = 0.0
        with self.engine.begin() as conn:
            self._purge(conn, self.clock())

    # -- internals --------------------------------------------------------------------------------------

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

    def _locked(self, keys: Sequence[str | None], *, fresh: bool) -> bool:
        """Is any key locked now? ``fresh=False`` may use lock states up to ``state_ttl`` old."""
        now = self.clock()
        if fresh:
            locks = self._fresh_locks(keys, now)
        else:
            locks = {}
            missing: list[str] = []
            for key in filter(None, keys):
                cached = self._locks.get(key)
                if cached is _MISSING:
                    missing.append(key)
                else:
                    locks[key] = cached if isinstance(cached, _Lock) else None
            if missing:
                locks.update(self._fresh_locks(missing, now))
        return any(lock is not None and lock.locked_until is not None and lock.locked_until > now
                   for lock in locks.values())

    def _fresh_locks(self, keys: Iterable[str | None], now: dt.datetime) -> dict[str, _Lock | None]:
        wanted = [k for k in keys if k]
        t = s.auth_throttle
        with read_connection(self.engine) as conn:
            rows = conn.execute(select(t.c.key, t.c.failures, t.c.locked_until).where(t.c.key.in_(wanted))).all()
        found: dict[str, _Lock | None] = {k: None for k in wanted}
        for r in rows:
            found[r.key] = _Lock(r.failures, r.locked_until)
        for k, lock in found.items():
            self._locks.put(k, lock)
        return found

    def _raise_if_locked(self, locks: dict[str, _Lock | None], now: dt.datetime) -> None:
        until = [lock.locked_until for lock in locks.values()
                 if lock is not None and lock.locked_until is not None and lock.locked_until > now]
        if until:
            raise Throttled(math.ceil((max(until) - now).total_seconds()))

    def _fail(self, keys: Sequence[str | None], now: dt.datetime, reason: str) -> NoReturn:
        """Refuse: Throttled if a key is locked (without counting), else count the failure."""
        self._raise_if_locked(self._fresh_locks(keys, now), now)
        self._record_failure(keys, now, reason)
        raise AuthenticationFailed()

    def _record_failure(self, keys: Sequence[str | None], now: dt.datetime, reason: str) -> None:
        t = s.auth_throttle
        expired = t.c.window_start < now - self.failure_window
        lock_until = now + self.failure_window
        first_lock = lock_until if self.max_failures <= 1 else None
        locked: list[str] = []
        with self.engine.begin() as conn:
            for key in filter(None, keys):
                stmt = self._insert(t).values(key=key, failures=1, window_start=now, locked_until=first_lock)
                stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={
                    "failures": case((expired, 1), else_=t.c.failures + 1),
                    "window_start": case((expired, now), else_=t.c.window_start),
                    "locked_until": case((expired, first_lock),
                                         (t.c.failures + 1 >= self.max_failures, lock_until),
                                         else_=t.c.locked_until),
                })
                row = conn.execute(stmt.returning(t.c.failures)).one()
                if row.failures == self.max_failures:
                    locked.append(key.split(":", 1)[0])
                self._locks.pop(key)
            self._maybe_purge(conn, now)
        log.info("authentication failed (%s) from %s", reason, keys[1] or "unknown source")
        for kind in locked:
            log.warning("%s locked for %d s after %d failed logins", "account" if kind == "account" else
                        "source address", self.failure_window.total_seconds(), self.max_failures)

    def _succeeded(self, akey: str | None, locks: dict[str, _Lock | None] | None) -> None:
        if akey is None:
            return
        known = locks.get(akey, _MISSING) if locks is not None else self._locks.get(akey)
        if known is None:
            return  # no counter to reset
        with self.engine.begin() as conn:
            conn.execute(delete(s.auth_throttle).where(s.auth_throttle.c.key == akey))
        self._locks.put(akey, None)

    def _maybe_purge(self, conn: Connection, now: dt.datetime) -> None:
        if self.monotonic() < self._next_purge:
            return
        self._purge(conn, now)

    def _purge(self, conn: Connection, now: dt.datetime) -> None:
        self._next_purge = self.monotonic() + _PURGE_EVERY
        conn.execute(delete(s.ws_nonce).where(s.ws_nonce.c.seen_at < now - 2 * self.created_skew))
        t = s.auth_throttle
        conn.execute(delete(t).where(and_(t.c.window_start < now - self.failure_window,
                                          or_(t.c.locked_until.is_(None), t.c.locked_until <= now))))


def _keys(username: str, source: str) -> tuple[str, str | None]:
    return account_key(username), source_key(source)


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
