"""The access layer on a real database (SQLite and PostgreSQL): accounts, authentication, throttling, cache, audit."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

import server.access.audit as audit_module
from server.access import (
    AccessSettings,
    AccountStore,
    AuditRecord,
    AuditWriter,
    AuthenticationFailed,
    Authenticator,
    DigestKeyError,
    Throttled,
    ThrottlePolicy,
    query_audit,
)
from store import schema as s
from store.errors import InvalidInput, NotFound, StoreUnavailable

PASSWORD = "correct horse battery"
OTHER = "another long password"
DIGEST_TYPE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"


class CountingHasher(PasswordHasher):
    """argon2id with cheap parameters (the tests verify many times), counting verifications."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**({"time_cost": 1, "memory_cost": 1024, "parallelism": 1} | params))
        self.verifies = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:  # noqa: A002 - argon2's name
        self.verifies += 1
        return super().verify(hash, password)


class Clock:
    """Wall time (naive UTC) and a monotonic clock that tests move by hand."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        self.mono = 1000.0

    def wall(self) -> dt.datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def accounts(engine: Engine, tmp_path: Path, hasher: CountingHasher) -> AccountStore:
    return AccountStore(engine, key_path=tmp_path / "keys" / "access.key", hasher=hasher)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_auth(engine: Engine, accounts: AccountStore, clock: Clock, **kw: Any) -> Authenticator:
    return Authenticator(engine, accounts, clock=clock.wall, monotonic=clock.monotonic, **kw)


@pytest.fixture
def auth(engine: Engine, accounts: AccountStore, clock: Clock) -> Authenticator:
    return make_auth(engine, accounts, clock)


def basic(username: str, password: str, charset: str = "utf-8") -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode(charset)).decode("ascii")


def wsse_digest(nonce: bytes, created: str, password: str) -> str:
    """WS-Security UsernameToken Profile 1.1 §3.1: Base64(SHA-1(nonce + created + password))."""
    return base64.b64encode(hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()).decode()


def token(clock: Clock, password: str = PASSWORD, *, age: float = 0.0, nonce: bytes | None = None) -> dict[str, Any]:
    nonce = nonce if nonce is not None else os.urandom(16)
    created = (clock.now - dt.timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"password": wsse_digest(nonce, created, password), "password_type": DIGEST_TYPE,
            "nonce_b64": base64.b64encode(nonce).decode(), "created": created}


def failures(engine: Engine, key: str) -> int | None:
    with engine.connect() as conn:
        return conn.execute(select(s.auth_throttle.c.failures).where(s.auth_throttle.c.key == key)).scalar()


# -- accounts -------------------------------------------------------------------------------------------------


def test_accounts_are_hashed_with_argon2id_and_verified(engine: Engine) -> None:
    store = AccountStore(engine)  # argon2-cffi's defaults, as in production
    added = store.add("epj.sykehus", PASSWORD, "basis")
    assert (added.username, added.profile, added.disabled, added.digest) == ("epj.sykehus", "basis", False, False)
    with engine.connect() as conn:
        row = conn.execute(select(s.account)).one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    assert row.digest_secret is None
    assert store.verify("epj.sykehus", PASSWORD).username == "epj.sykehus"
    with pytest.raises(AuthenticationFailed):
        store.verify("epj.sykehus", OTHER)
    assert store.get("epj.sykehus") == added and store.get("nobody") is None
    assert [a.username for a in store.list()] == ["epj.sykehus"]


def test_unknown_disabled_and_wrong_are_indistinguishable(accounts: AccountStore, hasher: CountingHasher) -> None:
    accounts.add("gp-office", PASSWORD, "basis")
    accounts.add("retired", PASSWORD, "basis")
    accounts.disable("retired")
    messages = []
    for username, password in (("gp-office", OTHER), ("no-such-account", PASSWORD), ("retired", PASSWORD),
                               ("bad name!", PASSWORD)):
        before = hasher.verifies
        with pytest.raises(AuthenticationFailed) as exc:
            accounts.verify(username, password)
        assert hasher.verifies == before + 1, "every refusal costs one argon2 verification"
        messages.append((type(exc.value), str(exc.value)))
    assert len(set(messages)) == 1
    accounts.enable("retired")
    assert accounts.verify("retired", PASSWORD).disabled is False


def test_account_rules(accounts: AccountStore) -> None:
    for username in ("", "x" * 101, "has space", "æøå", "semi;colon"):
        with pytest.raises(InvalidInput, match="username"):
            accounts.add(username, PASSWORD, "basis")
    with pytest.raises(InvalidInput, match="at least 12"):
        accounts.add("ok.name@site-1", "short", "basis")
    accounts.add("ok.name@site-1", "x" * 12, "basis")
    with pytest.raises(InvalidInput, match="already exists"):
        accounts.add("ok.name@site-1", PASSWORD, "full")
    with pytest.raises(NotFound):
        accounts.passwd("nobody", PASSWORD)
    with pytest.raises(NotFound):
        accounts.disable("nobody")
    with pytest.raises(InvalidInput):
        accounts.passwd("ok.name@site-1", "too short")
    assert accounts.set_profile("ok.name@site-1", "full").profile == "full"
    with pytest.raises(NotFound):
        accounts.set_profile("nobody", "full")
    with pytest.raises(InvalidInput):
        accounts.set_profile("ok.name@site-1", "no such; profile")


def test_passwd_changes_the_password(accounts: AccountStore) -> None:
    accounts.add("lab", PASSWORD, "full")
    before = accounts.get("lab")
    accounts.passwd("lab", OTHER)
    with pytest.raises(AuthenticationFailed):
        accounts.verify("lab", PASSWORD)
    assert accounts.verify("lab", OTHER).updated_at >= before.updated_at  # type: ignore[union-attr]


def test_a_hash_with_old_parameters_is_rehashed_on_verify(engine: Engine, tmp_path: Path) -> None:
    old = AccountStore(engine, hasher=CountingHasher(time_cost=1))
    old.add("legacy", PASSWORD, "basis")
    new = AccountStore(engine, hasher=CountingHasher(time_cost=2))
    new.verify("legacy", PASSWORD)
    with engine.connect() as conn:
        stored = conn.execute(select(s.account.c.password_hash)).scalar_one()
    assert "t=2" in stored and not new.hasher.check_needs_rehash(stored)
    assert new.verify("legacy", PASSWORD).username == "legacy"


def test_digest_accounts_keep_an_encrypted_secret_under_a_0600_key(accounts: AccountStore, engine: Engine) -> None:
    assert accounts.key_path is not None and not accounts.key_path.exists()
    accounts.add("wcf-client", PASSWORD, "basis", digest=True)
    assert stat.S_IMODE(accounts.key_path.stat().st_mode) == 0o600
    with engine.connect() as conn:
        secret = conn.execute(select(s.account.c.digest_secret)).scalar_one()
    assert secret.startswith("v1:") and PASSWORD not in secret
    assert PASSWORD.encode() not in base64.b64decode(secret.split(":", 2)[2])
    assert accounts.decrypt_secret("wcf-client", secret) == PASSWORD
    with pytest.raises(DigestKeyError):  # bound to its account: a copied secret does not decrypt
        accounts.decrypt_secret("someone-else", secret)
    accounts.passwd("wcf-client", OTHER)
    assert accounts.decrypt_secret("wcf-client", accounts.credentials("wcf-client").digest_secret) == OTHER  # type: ignore[union-attr,arg-type]
    with pytest.raises(FileExistsError):
        AccountStore.generate_key(accounts.key_path)
    AccountStore.generate_key(accounts.key_path, overwrite=True)
    fresh = AccountStore(engine, key_path=accounts.key_path, hasher=CountingHasher())
    with pytest.raises(DigestKeyError, match="another key"):
        fresh.decrypt_secret("wcf-client", accounts.credentials("wcf-client").digest_secret)  # type: ignore[union-attr,arg-type]


def test_a_key_file_readable_by_others_is_refused(engine: Engine, tmp_path: Path) -> None:
    key = AccountStore.generate_key(tmp_path / "k")
    key.chmod(0o644)
    with pytest.raises(DigestKeyError, match="chmod 600"):
        AccountStore(engine, key_path=key, hasher=CountingHasher()).add("a.b", PASSWORD, "basis", digest=True)


# -- authentication -------------------------------------------------------------------------------------------


def test_http_basic(accounts: AccountStore, auth: Authenticator) -> None:
    accounts.add("ar-client", PASSWORD, "full")
    accounts.add("latin", "blåbærsyltetøy", "full")
    assert auth.basic(basic("ar-client", PASSWORD), "10.1.1.1").profile == "full"
    assert auth.basic(basic("latin", "blåbærsyltetøy", "latin-1"), "10.1.1.1").username == "latin"
    assert auth.basic(basic("latin", "blåbærsyltetøy"), "10.1.1.1").username == "latin"
    for header in (None, "", "Basic", "Basic !!!notbase64", "Bearer abc", "Basic " + base64.b64encode(b"nocolon")
                   .decode(), basic("", PASSWORD)):
        with pytest.raises(AuthenticationFailed, match="HTTP Basic"):
            auth.basic(header, "10.1.1.1")
    with pytest.raises(AuthenticationFailed, match="invalid username or password"):
        auth.basic(basic("ar-client", OTHER), "10.1.1.1")


def test_username_token_text(accounts: AccountStore, auth: Authenticator) -> None:
    accounts.add("preg-epj", PASSWORD, "basis")
    assert auth.username_token("preg-epj", PASSWORD, "PasswordText", None, None, "10.0.0.5").username == "preg-epj"
    uri = DIGEST_TYPE.replace("Digest", "Text")
    assert auth.username_token("preg-epj", PASSWORD, uri, "bm9uY2U=", "2001-01-01T00:00:00Z", "10.0.0.5")
    assert auth.username_token("preg-epj", PASSWORD, None, None, None, "10.0.0.5")
    with pytest.raises(AuthenticationFailed, match="password type"):
        auth.username_token("preg-epj", PASSWORD, "#PasswordHash", None, None, "10.0.0.5")


def test_username_token_digest_round_trip_and_replay(accounts: AccountStore, auth: Authenticator, engine: Engine,
                                                     clock: Clock) -> None:
    accounts.add("wcf", PASSWORD, "basis", digest=True)
    t = token(clock)
    assert auth.username_token("wcf", source="10.0.0.7", **t).username == "wcf"
    with pytest.raises(AuthenticationFailed):
        auth.username_token("wcf", source="10.0.0.7", **t)  # the same message again: a replay
    other_worker = make_auth(engine, accounts, clock)
    with pytest.raises(AuthenticationFailed):
        other_worker.username_token("wcf", source="10.0.0.8", **t)  # ws_nonce is shared by every process
    assert other_worker.username_token("wcf", source="10.0.0.8", **token(clock)).username == "wcf"
    with pytest.raises(AuthenticationFailed):
        auth.username_token("wcf", source="10.0.0.7", **token(clock, OTHER))


def test_digest_needs_nonce_created_and_a_digest_account(accounts: AccountStore, auth: Authenticator,
                                                         clock: Clock) -> None:
    accounts.add("wcf", PASSWORD, "basis", digest=True)
    accounts.add("text-only", PASSWORD, "basis")
    for change in ({"nonce_b64": None}, {"created": None}, {"nonce_b64": "not base64!"}, {"created": "yesterday"}):
        with pytest.raises(AuthenticationFailed):
            auth.username_token("wcf", source="10.0.0.9", **(token(clock) | change))
    with pytest.raises(AuthenticationFailed):
        auth.username_token("text-only", source="10.0.0.10", **token(clock))  # no secret kept: digest impossible
    with pytest.raises(AuthenticationFailed):
        auth.username_token("unknown", source="10.0.0.11", **token(clock))


@pytest.mark.parametrize(("age", "ok"), [(0, True), (290, True), (-290, True), (310, False), (-310, False)])
def test_created_must_be_fresh(accounts: AccountStore, auth: Authenticator, clock: Clock, age: float,
                               ok: bool) -> None:
    accounts.add("wcf", PASSWORD, "basis", digest=True)
    if ok:
        assert auth.username_token("wcf", source="10.0.0.1", **token(clock, age=age))
    else:
        with pytest.raises(AuthenticationFailed):
            auth.username_token("wcf", source="10.0.0.1", **token(clock, age=age))


def test_created_window_is_configurable_and_nonces_are_purged(accounts: AccountStore, engine: Engine,
                                                              clock: Clock) -> None:
    accounts.add("wcf", PASSWORD, "basis", digest=True)
    auth = make_auth(engine, accounts, clock, created_skew=30)
    with pytest.raises(AuthenticationFailed):
        auth.username_token("wcf", source="10.0.0.1", **token(clock, age=40))
    assert auth.username_token("wcf", source="10.0.0.1", **token(clock, age=20))
    clock.advance(61)  # older than twice the window: can no longer be replayed, so forgotten
    auth.purge()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.ws_nonce)).scalar() == 0


def policy(**kw: Any) -> ThrottlePolicy:
    """The default policy with a few numbers changed (free failures 3 per pair, 20 per account, 100 per address)."""
    return ThrottlePolicy(**kw)


def pair(address: str, account: str) -> str:
    return f"pair:{address} {account}"


def refused_for(auth: Authenticator, username: str, password: str, source: str) -> int:
    """Attempt a login that must be throttled; its retry_after."""
    with pytest.raises(Throttled) as exc:
        auth.password(username, password, source)
    assert str(exc.value) == "too many failed attempts; try again later" and username not in str(exc.value)
    return exc.value.retry_after


def wrong(auth: Authenticator, username: str, source: str) -> None:
    with pytest.raises(AuthenticationFailed) as exc:
        auth.password(username, OTHER, source)
    assert not isinstance(exc.value, Throttled)


def test_a_pairs_failures_grow_its_delay_and_never_stop_the_right_password_elsewhere(
        accounts: AccountStore, engine: Engine, clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth = make_auth(engine, accounts, clock, policy=policy(base_delay=1, max_delay=8))
    for _ in range(3):  # the free failures
        wrong(auth, "epj", "192.0.2.66")
    delays = []
    for _ in range(6):
        wrong(auth, "epj", "192.0.2.66")  # heard: counted, and the next delay starts
        delays.append(refused_for(auth, "epj", PASSWORD, "192.0.2.66"))  # even the right password waits
        refused_for(auth, "epj", OTHER, "192.0.2.66")  # refused unheard: not counted
        assert auth.password("epj", PASSWORD, "198.51.100.7").username == "epj"  # the owner, elsewhere
        clock.advance(delays[-1])
    assert delays == [1, 2, 4, 8, 8, 8]
    assert failures(engine, pair("192.0.2.66", "epj")) == 9
    assert failures(engine, "account:epj") == 9 and failures(engine, "addr:192.0.2.66") == 9
    assert auth.password("epj", PASSWORD, "192.0.2.66").username == "epj"  # its delay over: heard, and reset
    assert failures(engine, pair("192.0.2.66", "epj")) == 0


def test_account_delays_hold_back_unknown_addresses_only(accounts: AccountStore, engine: Engine,
                                                         clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth = make_auth(engine, accounts, clock, policy=policy(account_free=5, base_delay=60))
    assert auth.password("epj", PASSWORD, "10.1.0.1").username == "epj"  # its integration engine
    for i in range(6):  # a distributed guesser: one failure per address
        wrong(auth, "epj", f"203.0.113.{i}")
    assert failures(engine, "account:epj") == 6
    assert refused_for(auth, "epj", PASSWORD, "10.9.9.9") == 60  # a new address waits, right password or not
    for _ in range(3):
        assert auth.password("epj", PASSWORD, "10.1.0.1").username == "epj"  # the known address never does
    wrong(auth, "nobody", "10.9.9.8")  # another name from a new address: heard (a plain failure, no delay)
    clock.advance(60)
    assert auth.password("epj", PASSWORD, "10.9.9.9").username == "epj"


def test_unknown_account_names_are_delayed_exactly_like_existing_ones(accounts: AccountStore, engine: Engine,
                                                                      clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth = make_auth(engine, accounts, clock, policy=policy(base_delay=30))
    seen = []
    for name in ("epj", "does-not-exist"):
        outcomes = []
        for _ in range(5):
            try:
                auth.password(name, OTHER, "10.0.2.1")
                outcomes.append(("ok", ""))
            except AuthenticationFailed as exc:
                outcomes.append((type(exc).__name__, str(exc)))
        seen.append(outcomes)
    assert seen[0] == seen[1] == [("AuthenticationFailed", "invalid username or password")] * 4 + [
        ("Throttled", "too many failed attempts; try again later")]


def test_a_shared_engine_is_not_held_back_by_the_address_limit(accounts: AccountStore, engine: Engine,
                                                               clock: Clock) -> None:
    for name in ("lab", "epj", "newcomer"):
        accounts.add(name, PASSWORD, "basis")
    auth = make_auth(engine, accounts, clock, policy=policy(address_free=5, base_delay=60))
    engine_address = "10.20.0.5"
    for name in ("lab", "epj"):
        assert auth.password(name, PASSWORD, engine_address).username == name
    for i in range(6):  # a password sprayer behind the same address (the same NAT)
        wrong(auth, f"guess{i}", engine_address)
    assert failures(engine, f"addr:{engine_address}") == 6
    refused_for(auth, "guess9", PASSWORD, engine_address)  # new names from that address wait
    refused_for(auth, "newcomer", PASSWORD, engine_address)  # so does an account never used from there
    for name in ("lab", "epj"):  # the engine's own accounts do not
        assert auth.password(name, PASSWORD, engine_address).username == name
    assert auth.password("newcomer", PASSWORD, "10.20.0.6").username == "newcomer"  # nor does any other address


def test_failures_of_a_known_pair_count_on_the_pair_only(accounts: AccountStore, engine: Engine,
                                                         clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth = make_auth(engine, accounts, clock)
    auth.password("epj", PASSWORD, "10.30.0.1")
    for _ in range(2):  # its engine with a stale password
        wrong(auth, "epj", "10.30.0.1")
    assert failures(engine, pair("10.30.0.1", "epj")) == 2
    assert failures(engine, "account:epj") is None and failures(engine, "addr:10.30.0.1") is None


def test_a_success_in_another_worker_resets_the_pair_at_once(accounts: AccountStore, engine: Engine,
                                                             clock: Clock, hasher: CountingHasher) -> None:
    accounts.add("epj", PASSWORD, "basis")
    workers = [make_auth(engine, accounts, clock) for _ in range(2)]  # two processes, one store
    for w in workers:
        w.password("epj", PASSWORD, "10.40.0.1")  # both have the password cached
    before = hasher.verifies
    for i in range(7):  # alternating within the cache's staleness bound (the clock does not move)
        wrong(workers[i % 2], "epj", "10.40.0.1")
        assert failures(engine, pair("10.40.0.1", "epj")) == 1
        assert workers[(i + 1) % 2].password("epj", PASSWORD, "10.40.0.1").username == "epj"
        assert failures(engine, pair("10.40.0.1", "epj")) == 0
    assert hasher.verifies == before + 7  # the successes were cache hits, and reset all the same


def test_a_delay_started_by_another_worker_applies_at_once(accounts: AccountStore, engine: Engine,
                                                           clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    first, second = (make_auth(engine, accounts, clock, policy=policy(pair_free=1, base_delay=60)) for _ in range(2))
    assert first.password("epj", PASSWORD, "10.41.0.1").username == "epj"  # cached in the first worker
    for _ in range(2):
        wrong(second, "epj", "10.41.0.1")
    assert refused_for(first, "epj", PASSWORD, "10.41.0.1") == 60  # a cache hit does not skip the delay


def test_failures_are_forgotten_a_window_after_the_last(accounts: AccountStore, engine: Engine, clock: Clock) -> None:
    auth = make_auth(engine, accounts, clock, policy=policy(window=3600, base_delay=1))
    for _ in range(4):
        wrong(auth, "epj", "10.50.0.1")
    assert failures(engine, pair("10.50.0.1", "epj")) == 4
    clock.advance(3601)
    wrong(auth, "epj", "10.50.0.1")
    assert failures(engine, pair("10.50.0.1", "epj")) == 1
    clock.advance(3601)
    auth.purge()
    assert failures(engine, pair("10.50.0.1", "epj")) is None


def test_unlock_forgets_an_accounts_failures_and_keeps_its_known_addresses(accounts: AccountStore, engine: Engine,
                                                                           clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth = make_auth(engine, accounts, clock, policy=policy(account_free=2, base_delay=600))
    auth.password("epj", PASSWORD, "10.60.0.1")
    wrong(auth, "epj", "10.60.1.1")
    wrong(auth, "epj", "10.60.1.2")
    wrong(auth, "epj", "10.60.1.1")  # the account's third failure from unknown addresses: its delay starts
    refused_for(auth, "epj", PASSWORD, "10.60.1.1")
    refused_for(auth, "epj", PASSWORD, "10.60.2.2")
    assert auth.throttle.unlock("epj") == 3  # the account and its two pairs with failures
    assert auth.password("epj", PASSWORD, "10.60.1.1").username == "epj"
    assert auth.password("epj", PASSWORD, "10.60.2.2").username == "epj"
    with engine.connect() as conn:
        known = conn.execute(select(s.auth_throttle.c.trusted_until)
                             .where(s.auth_throttle.c.key == pair("10.60.0.1", "epj"))).scalar()
    assert known is not None and known > clock.now


def test_digest_is_throttled_too(accounts: AccountStore, auth: Authenticator, clock: Clock) -> None:
    accounts.add("wcf", PASSWORD, "basis", digest=True)
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            auth.username_token("wcf", source="10.4.0.1", **token(clock, OTHER))
    with pytest.raises(Throttled):
        auth.username_token("wcf", source="10.4.0.1", **token(clock))
    assert auth.username_token("wcf", source="10.4.1.1", **token(clock)).username == "wcf"


def test_concurrent_failures_are_all_counted(engine: Engine, accounts: AccountStore, clock: Clock) -> None:
    workers, attempts = 4, 6
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        auth = make_auth(engine, accounts, clock, policy=policy(account_free=1000))  # one per "process"
        for i in range(attempts):
            try:
                auth.password("target", OTHER, f"10.5.{n}.{i}")
            except AuthenticationFailed:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert failures(engine, "account:target") == workers * attempts


def test_the_cache_skips_argon2_but_honours_disable_within_its_bound(accounts: AccountStore, auth: Authenticator,
                                                                     hasher: CountingHasher, clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth.password("epj", PASSWORD, "10.6.0.1")
    before = hasher.verifies
    for _ in range(50):
        assert auth.password("epj", PASSWORD, "10.6.0.1").username == "epj"
    assert hasher.verifies == before  # cache hits: no argon2
    accounts.disable("epj")  # by the operator, i.e. another process
    clock.advance(1.0)
    auth.password("epj", PASSWORD, "10.6.0.1")  # still within the 2 s staleness bound
    clock.advance(1.5)
    with pytest.raises(AuthenticationFailed):
        auth.password("epj", PASSWORD, "10.6.0.1")
    accounts.enable("epj")
    clock.advance(2.5)
    assert auth.password("epj", PASSWORD, "10.6.0.1").username == "epj"


def test_the_cache_honours_a_password_change_and_never_caches_failures(accounts: AccountStore, auth: Authenticator,
                                                                       hasher: CountingHasher, clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth.password("epj", PASSWORD, "10.7.0.1")
    accounts.passwd("epj", OTHER)
    clock.advance(2.5)
    with pytest.raises(AuthenticationFailed):
        auth.password("epj", PASSWORD, "10.7.0.1")
    assert auth.password("epj", OTHER, "10.7.0.1").username == "epj"
    before = hasher.verifies
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            auth.password("epj", "wrong password 123", "10.7.0.2")
    assert hasher.verifies == before + 2


def test_cached_entries_expire(accounts: AccountStore, auth: Authenticator, hasher: CountingHasher,
                               clock: Clock) -> None:
    accounts.add("epj", PASSWORD, "basis")
    auth.password("epj", PASSWORD, "10.9.0.1")
    clock.advance(61)
    before = hasher.verifies
    auth.password("epj", PASSWORD, "10.9.0.1")
    assert hasher.verifies == before + 1


def test_from_settings(engine: Engine, accounts: AccountStore) -> None:
    settings = AccessSettings(pair_free_failures=2, account_free_failures=7, address_free_failures=9,
                              delay_base_seconds=3, delay_max_seconds=60, failure_window_seconds=600,
                              known_address_days=2)
    auth = Authenticator.from_settings(engine, accounts, settings)
    assert auth.throttle.policy == ThrottlePolicy(pair_free=2, account_free=7, address_free=9, base_delay=3,
                                                  max_delay=60, window=600, trust=2 * 86_400)


# -- audit ----------------------------------------------------------------------------------------------------


def record(i: int, *, account: str = "epj", at: dt.datetime | None = None, **kw: Any) -> AuditRecord:
    base: dict[str, Any] = {
        "at": at or dt.datetime(2026, 1, 1, 12) + dt.timedelta(seconds=i), "account": account, "face": "soap",
        "operation": "getPerson", "source": "10.0.0.1", "purpose": None, "outcome": "found",
        "asked": (f"{i:011d}",), "returned": (f"{i:011d}",)}
    return AuditRecord(**(base | kw))


def test_sync_audit_is_committed_before_write_returns(engine: Engine) -> None:
    writer = AuditWriter(engine, mode="sync")
    writer.write(AuditRecord.now(account="epj", face="hl7", operation="QBP^Q22", outcome="2 candidates",
                                 source="10.0.0.2", purpose="behandling", asked=(), returned=("17058012345",
                                                                                             "17058054321")))
    got = query_audit(engine, person="17058054321")
    assert len(got) == 1 and got[0].face == "hl7" and got[0].purpose == "behandling"
    assert got[0].returned == ("17058012345", "17058054321") and got[0].asked == ()
    audit_module.index_persons(engine)  # SQLite writes person rows in bulk (store/audit_index.py)
    with engine.connect() as conn:
        roles = conn.execute(select(s.audit_person.c.role, func.count()).group_by(s.audit_person.c.role)).all()
    assert dict(roles) == {"returned": 2}


def test_batched_audit_flushes_and_queries(engine: Engine) -> None:
    with AuditWriter(engine, mode="batched", max_batch=100) as writer:
        for i in range(1000):
            writer.write(record(i, account="epj" if i % 2 else "lab"))
        assert writer.flush(timeout=30)
        assert writer.pending == 0
        got = query_audit(engine, person=f"{123:011d}")
        assert [r.asked for r in got] == [(f"{123:011d}",)] and got[0].account == "epj"
        assert got[0] == record(123)
        lab = query_audit(engine, account="lab", limit=1000)
        assert len(lab) == 500 and all(r.account == "lab" for r in lab)
        assert lab[0].at > lab[-1].at  # newest first
        since = query_audit(engine, since=dt.datetime(2026, 1, 1, 12) + dt.timedelta(seconds=990), limit=50)
        assert len(since) == 10
        aware = dt.datetime(2026, 1, 1, 13, 16, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 12:16:30 UTC
        assert len(query_audit(engine, since=aware, limit=5000)) == 1000 - 990
        assert len(query_audit(engine, limit=7)) == 7
    with pytest.raises(RuntimeError):
        writer.write(record(1))


def test_close_flushes(engine: Engine) -> None:
    writer = AuditWriter(engine, max_delay=10.0)  # without close, these would wait 10 s
    for i in range(20):
        writer.write(record(i))
    writer.close()
    assert len(query_audit(engine, limit=100)) == 20


def test_audit_records_are_cleaned_to_fit(engine: Engine) -> None:
    writer = AuditWriter(engine, mode="sync")
    writer.write(record(1, purpose="x" * 500, source="a\x00b", asked=("123456789012345", " 17058012345 "),
                        returned=("17058012345",)))
    (got,) = query_audit(engine, limit=5)
    assert got.purpose == "x" * 200 and got.source == "ab"
    audit_module.index_persons(engine)
    with engine.connect() as conn:
        numbers = conn.execute(select(s.audit_person.c.number, s.audit_person.c.role)
                               .order_by(s.audit_person.c.role)).all()
    assert [tuple(n) for n in numbers] == [("17058012345", "asked"), ("17058012345", "returned")]


def test_sync_audit_failure_is_an_error_for_the_caller(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*a: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(audit_module, "_insert", down)
    with pytest.raises(StoreUnavailable):
        AuditWriter(engine, mode="sync").write(record(1))


def test_batched_audit_retries_and_never_drops(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    real = audit_module._insert
    poisoned = threading.Event()
    poisoned.set()

    def flaky(eng: Engine, records: Any) -> None:
        if poisoned.is_set() and any(r.operation == "poison" for r in records):
            raise OperationalError("INSERT", {}, Exception("disk full"))
        real(eng, records)

    monkeypatch.setattr(audit_module, "_insert", flaky)
    caplog.set_level(logging.ERROR, logger="server.access.audit")
    writer = AuditWriter(engine, max_retry_delay=0.05)
    try:
        for i in range(10):
            writer.write(record(i, operation="poison" if i == 4 else "getPerson"))
        assert not writer.flush(timeout=1.0)  # the bad record is still retried ...
        assert writer.pending == 1
        assert len(query_audit(engine, limit=100)) == 9  # ... and held the others back only briefly
        poisoned.clear()
        assert writer.flush(timeout=10)
        assert len(query_audit(engine, limit=100)) == 10
    finally:
        writer.close()
    assert caplog.records and all("00000000004" not in r.getMessage() for r in caplog.records)
    assert any("OperationalError" in r.getMessage() for r in caplog.records)


@pytest.fixture(autouse=True)
def _no_leftover_writers() -> Iterator[None]:
    yield
    audit_module.close_all(timeout=5)
