"""Login throttling without lockout: growing delays per (address, account), per account and per address.

The policy, and why (docs/access.md "Throttling" says the same for operators). A hard lock after a few
failures per account name lets anyone who knows the name shut its owner out, and one per source address
shuts out everyone behind a proxy or NAT. Both are denial of service by design. Instead failures are
counted on three keys in the store (table ``auth_throttle``, shared by every worker process):

- **pair** ``(address, account)``: what one client at one address tries for one account. After
  ``pair_free`` failures each further failure makes that client wait a growing delay (``base``, 2 ×
  ``base``, 4 × ``base`` … at most ``max_delay``) before it is heard again. A success from the pair resets
  its counter and marks the address *known* for the account for ``trust`` (30 days).
- **account**: failures for one account from addresses it is *not* known at. Past ``account_free`` the
  same growing delays apply to attempts for that account from unknown addresses only — a distributed
  guesser is slowed, the account's own clients (known addresses) are not.
- **address**: failures at one address for accounts it is *not* known for (password spraying). Past
  ``address_free`` the delays apply to that address's attempts for accounts it is not known for — a
  shared integration engine, whose accounts have all succeeded from its address, is never slowed.

So a correct password is refused only because of failures of its own (address, account) pair — the same
client, or one sharing its address — or, from an address that has never succeeded for the account,
while someone elsewhere has failed more than ``account_free`` times for it within the window.

Delays are answered, never slept: an attempt made before a key's ``next_allowed`` is refused with
:class:`~server.access.errors.Throttled` (its ``retry_after`` says when to come back) *without* the
password being looked at, and such refused attempts are not counted, so a client that retries too soon
does not push its delay further and learns nothing. A worker never waits on an attacker's behalf.
Failures of a pair the address is known for count on the pair only (the account's own client with a
stale password slows itself, not its neighbours). A key's failures are forgotten ``window`` (one day)
after its last one, or at once with ``pregbridge users unlock NAME`` (:meth:`Throttle.unlock`).

Atomicity across workers. Every attempt reads the three rows fresh (one primary-key ``SELECT``); a failure
is one transaction of ``INSERT … ON CONFLICT DO UPDATE … RETURNING failures`` per key (the count is taken
inside the statement, so concurrent workers never lose one) followed, past the free failures, by the
update of that row's ``next_allowed`` while the transaction still holds it; a success resets the pair
with one statement. A success therefore resets what any worker counted before it, however recent.
A success writes nothing when its pair has no failures and a trust that runs for more than half its
length still, so a busy client costs one indexed read per call.

Keys: an address is the client's address (server/access/proxies.py, trusted proxies applied), normalised;
an account is its name when it is a valid username, else ``#`` + a hash (so no attempted text is stored
as a key). Unknown and existing account names are counted alike, so a delay reveals nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, Engine, and_, case, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from server.access.accounts import valid_username
from server.access.errors import Throttled
from server.access.proxies import normalize_address
from store import schema as s

__all__ = ["Keys", "Throttle", "ThrottlePolicy", "account_part"]

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4096)
def account_part(username: str) -> str:
    """The account as keys and ``auth_throttle.account`` hold it: the name, or ``#`` + a hash of an invalid one."""
    if valid_username(username):
        return username
    return "#" + hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:40]


_T = s.auth_throttle  # names of the driver-level read below, through store.schema: a rename there fails at import
_ADMIT_SQL = (f"SELECT {_T.c.key.name}, {_T.c.failures.name}, {_T.c.next_allowed.name}, {_T.c.trusted_until.name}"
              f" FROM {_T.name} WHERE {_T.c.key.name} IN ({{mark}}, {{mark}}, {{mark}})")


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """The numbers of the policy (module docstring); durations in seconds."""

    pair_free: int = 3
    account_free: int = 20
    address_free: int = 100
    base_delay: float = 1.0
    max_delay: float = 900.0
    window: float = 86_400.0
    trust: float = 30 * 86_400.0

    def delay(self, failures: int, free: int) -> float:
        """Seconds the ``failures``-th failure makes its key wait: 0 up to ``free``, then doubling from ``base``."""
        if failures <= free:
            return 0.0
        return min(self.base_delay * 2.0 ** min(failures - free - 1, 60), self.max_delay)


class Keys(NamedTuple):
    pair: str
    account: str
    address: str
    account_name: str  # the account part (auth_throttle.account)


class _Row(NamedTuple):
    failures: int
    next_allowed: dt.datetime | None
    trusted_until: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Admission:
    """What :meth:`Throttle.admit` saw of an attempt's keys: whether its address is known for the account,
    and its pair's row (None: no row)."""

    keys: Keys
    known: bool
    pair: _Row | None


def _when(value: dt.datetime | str | None) -> dt.datetime | None:
    """A DateTime as the driver returns it: a datetime (psycopg), or SQLite's ISO text as SQLAlchemy stores it."""
    return dt.datetime.fromisoformat(value) if isinstance(value, str) else value


class Throttle:
    """Counts failed logins in ``auth_throttle`` and refuses attempts made too soon (module docstring)."""

    def __init__(self, engine: Engine, policy: ThrottlePolicy, clock: Callable[[], dt.datetime]) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        # Every attempt runs this read, a cache hit included: at the driver, it costs a fraction of what
        # SQLAlchemy's statement handling would (docs/access.md "Throttling" has the figures).
        self._sqlite = engine.dialect.name == "sqlite"
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._admit_sql = _ADMIT_SQL.format(mark=mark)

    @staticmethod
    def keys(username: str, address: str) -> Keys:
        account = account_part(username)
        addr = normalize_address(address) or "-"
        return Keys(f"pair:{addr} {account}", f"account:{account}", f"addr:{addr}", account)

    def admit(self, keys: Keys, now: dt.datetime) -> Admission:
        """Raise Throttled when the attempt comes before a delay it is subject to has passed; else what was seen."""
        wanted = (keys.pair, keys.account, keys.address)
        raw = self.engine.raw_connection()  # the pool's DBAPI connection: no SQLAlchemy Connection around it
        try:
            cur = raw.cursor()
            try:
                cur.execute(self._admit_sql, wanted)
                found = cur.fetchall()
            finally:
                cur.close()
            if not self._sqlite:  # SQLite reads outside a transaction (store.engine.read_connection); others end it
                raw.rollback()
        finally:
            raw.close()
        rows = {key: _Row(failures, _when(next_allowed), _when(trusted)) for key, failures, next_allowed, trusted
                in found}
        pair = rows.get(keys.pair)
        known = pair is not None and pair.trusted_until is not None and pair.trusted_until > now
        subject = (keys.pair,) if known else wanted
        waits = [row.next_allowed for k in subject if (row := rows.get(k)) is not None
                 and row.next_allowed is not None and row.next_allowed > now]
        if waits:
            raise Throttled(math.ceil((max(waits) - now).total_seconds()))
        return Admission(keys, known, pair)

    def failed(self, seen: Admission, reason: str, address: str) -> float:
        """Count a failed attempt (on the pair; also on the account and address unless the address is known for
        the account); return the delay it started for the pair (0: none). Delays run from now, the end of the
        attempt (an argon2 verification under load can take longer than the first delay)."""
        now = self.clock()
        t = s.auth_throttle
        keys, p = seen.keys, self.policy
        counted: list[tuple[str, str | None, int]] = [(keys.pair, keys.account_name, p.pair_free)]
        if not seen.known:
            counted += [(keys.account, keys.account_name, p.account_free), (keys.address, None, p.address_free)]
        expired = or_(t.c.last_failure.is_(None), t.c.last_failure < now - dt.timedelta(seconds=p.window))
        delays: dict[str, float] = {}
        with self.engine.begin() as conn:
            for key, account, free in counted:
                stmt = self._insert(t).values(key=key, account=account, failures=1, last_failure=now,
                                              next_allowed=None, trusted_until=None)
                stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={
                    "failures": case((expired, 1), else_=t.c.failures + 1),
                    "last_failure": now, "next_allowed": None})
                failures = conn.execute(stmt.returning(t.c.failures)).scalar_one()
                delay = p.delay(failures, free)
                if delay:
                    until = now + dt.timedelta(seconds=delay)
                    conn.execute(update(t).where(t.c.key == key).values(next_allowed=until))
                    delays[key.split(":", 1)[0]] = delay
            self.maybe_purge(conn, now)
        log.info("authentication failed (%s) from %s", reason, address or "unknown source")
        for kind, delay in delays.items():
            if kind == "account" and delay == p.base_delay:  # the first delay of the key
                log.warning("many failed logins for one account: its attempts from unknown addresses are delayed")
            elif kind == "addr" and delay == p.base_delay:
                log.warning("many failed logins from %s: its attempts for accounts not known there are delayed",
                            address)
        return delays.get("pair", 0.0)

    def succeeded(self, seen: Admission, now: dt.datetime) -> None:
        """Reset the pair and mark the address known for the account; no write when nothing would change."""
        pair, p = seen.pair, self.policy
        fresh = now + dt.timedelta(seconds=p.trust / 2)
        if (pair is not None and pair.failures == 0 and pair.next_allowed is None
                and pair.trusted_until is not None and pair.trusted_until > fresh):
            return
        t = s.auth_throttle
        keys = seen.keys
        trusted = now + dt.timedelta(seconds=p.trust)
        stmt = self._insert(t).values(key=keys.pair, account=keys.account_name, failures=0, last_failure=None,
                                      next_allowed=None, trusted_until=trusted)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={
            "failures": 0, "last_failure": None, "next_allowed": None, "trusted_until": trusted})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def unlock(self, username: str) -> int:
        """Forget every failure counted for the account (its own key and its pairs); the number of keys cleared.
        The addresses known for it stay known."""
        t = s.auth_throttle
        with self.engine.begin() as conn:
            result = conn.execute(update(t).where(t.c.account == account_part(username), t.c.failures > 0)
                                  .values(failures=0, last_failure=None, next_allowed=None))
        return int(result.rowcount or 0)

    _next_purge = 0.0

    def maybe_purge(self, conn: Connection, now: dt.datetime) -> None:
        """Delete rows that no longer hold anything (failures forgotten, no delay, no trust), at most once a
        minute per process."""
        if now.timestamp() < self._next_purge:
            return
        self.purge(conn, now)

    def purge(self, conn: Connection, now: dt.datetime) -> None:
        self._next_purge = now.timestamp() + 60.0
        t = s.auth_throttle
        conn.execute(t.delete().where(and_(
            or_(t.c.last_failure.is_(None), t.c.last_failure < now - dt.timedelta(seconds=self.policy.window)),
            or_(t.c.next_allowed.is_(None), t.c.next_allowed <= now),
            or_(t.c.trusted_until.is_(None), t.c.trusted_until <= now))))
