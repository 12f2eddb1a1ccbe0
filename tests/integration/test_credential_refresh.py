"""A cached credential is verified again before it expires, on a background thread, never on the request path.

Before, the first call after an entry's ``cache_ttl`` (60 s) ran argon2 in the caller: with argon2-cffi's
defaults ~0.1–0.2 s of CPU on every core of a 2-core machine, once a minute in every worker — the HPR
HentPerson p99 of ``python -m benchmarks grunndata`` (issue 15; docs/benchmarks.md), measured a minute after
the servers started, while GetPatientGPDetails, measured first, had no such tail. The cases run the real
access layer on SQLite and PostgreSQL with a counting hasher that notes the thread of each verification.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from server.access import AccountStore, AuthenticationFailed, Authenticator
from server.access.authenticate import REFRESH_SHARE
from tests.integration.test_access import Clock

PASSWORD = "correct horse battery"
OTHER = "another long password"
TTL = 60.0


class ThreadNotingHasher(PasswordHasher):
    """argon2id with cheap parameters; notes the thread (name, nice value) of every verification."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified_on: list[tuple[str, int | None]] = []
        self.gate: threading.Event | None = None  # set: a verification off the main thread waits for it

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:  # noqa: A002 - argon2's name
        thread = threading.current_thread()
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if sys.platform.startswith("linux") \
            else None
        self.verified_on.append((thread.name, nice))
        if self.gate is not None and thread is not threading.main_thread():
            assert self.gate.wait(10)
        return super().verify(hash, password)

    def off_main(self) -> list[tuple[str, int | None]]:
        return [v for v in self.verified_on if v[0] != threading.main_thread().name]

    def on_main(self) -> int:
        return sum(1 for v in self.verified_on if v[0] == threading.main_thread().name)


@pytest.fixture
def hasher() -> ThreadNotingHasher:
    return ThreadNotingHasher()


@pytest.fixture
def accounts(engine: Engine, tmp_path: Path, hasher: ThreadNotingHasher) -> AccountStore:
    store = AccountStore(engine, key_path=tmp_path / "keys" / "access.key", hasher=hasher)
    store.add("epj", PASSWORD, "basis")
    return store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(engine: Engine, accounts: AccountStore, clock: Clock) -> Authenticator:
    return Authenticator(engine, accounts, clock=clock.wall, monotonic=clock.monotonic, cache_ttl=TTL)


def test_a_hit_near_expiry_is_verified_again_in_the_background(auth: Authenticator, hasher: ThreadNotingHasher,
                                                                clock: Clock) -> None:
    auth.password("epj", PASSWORD, "10.60.0.1")
    assert hasher.on_main() == 1 and hasher.off_main() == []  # the first call verifies, as ever
    clock.advance(TTL * (1 - REFRESH_SHARE) - 1)  # not yet in the last quarter: a plain hit
    assert auth.password("epj", PASSWORD, "10.60.0.1").username == "epj"
    assert auth.settle(10) and hasher.off_main() == []
    clock.advance(2)  # in the last quarter: answered from the cache, verified again on the refresh thread
    assert auth.password("epj", PASSWORD, "10.60.0.1").username == "epj"
    assert auth.settle(10)
    assert hasher.on_main() == 1, "argon2 ran on the request path"
    assert [name.startswith("credential-refresh") for name, _ in hasher.off_main()] == [True]
    if sys.platform.startswith("linux"):
        assert hasher.off_main()[0][1] == 19, "the refresh runs at the lowest CPU priority"
    clock.advance(TTL * REFRESH_SHARE + 10)  # past the first verification's expiry, within the refreshed entry's
    assert auth.password("epj", PASSWORD, "10.60.0.1").username == "epj"
    assert auth.settle(10)
    assert hasher.on_main() == 1, "the entry expired although it was verified again"  # failed before the fix
    assert len(hasher.off_main()) == 1


def test_one_refresh_at_a_time_for_a_pair(auth: Authenticator, hasher: ThreadNotingHasher, clock: Clock) -> None:
    auth.password("epj", PASSWORD, "10.61.0.1")
    hasher.gate = threading.Event()
    clock.advance(TTL * (1 - REFRESH_SHARE) + 1)
    for _ in range(20):  # a busy account: every hit in the last quarter, the refresh still under way
        assert auth.password("epj", PASSWORD, "10.61.0.1").username == "epj"
    hasher.gate.set()
    assert auth.settle(10)
    assert len(hasher.off_main()) == 1 and hasher.on_main() == 1


def test_an_entry_outlives_its_expiry_only_while_its_refresh_runs(auth: Authenticator, hasher: ThreadNotingHasher,
                                                                   clock: Clock) -> None:
    auth.password("epj", PASSWORD, "10.65.0.1")
    hasher.gate = threading.Event()  # the refresh starved of CPU: it does not finish
    clock.advance(TTL - 1)
    auth.password("epj", PASSWORD, "10.65.0.1")  # starts the refresh
    clock.advance(1 + TTL * REFRESH_SHARE - 1)  # expired, the refresh still under way: still a hit
    assert auth.password("epj", PASSWORD, "10.65.0.1").username == "epj"
    assert hasher.on_main() == 1
    clock.advance(2)  # a quarter of its life past its expiry: verified on the request path after all
    assert auth.password("epj", PASSWORD, "10.65.0.1").username == "epj"
    assert hasher.on_main() == 2
    hasher.gate.set()
    assert auth.settle(10)


def test_an_idle_entry_still_expires(auth: Authenticator, hasher: ThreadNotingHasher, clock: Clock) -> None:
    auth.password("epj", PASSWORD, "10.62.0.1")
    clock.advance(TTL + 1)  # no hit in the last quarter: nothing refreshed it
    auth.password("epj", PASSWORD, "10.62.0.1")
    assert auth.settle(10)
    assert hasher.on_main() == 2 and hasher.off_main() == []


def test_a_password_changed_during_a_refresh_is_refused_within_the_state_bound(
        auth: Authenticator, accounts: AccountStore, hasher: ThreadNotingHasher, clock: Clock) -> None:
    auth.password("epj", PASSWORD, "10.63.0.1")
    hasher.gate = threading.Event()
    clock.advance(TTL * (1 - REFRESH_SHARE) + 1)
    auth.password("epj", PASSWORD, "10.63.0.1")  # starts a refresh, held in argon2 by the gate
    accounts.passwd("epj", OTHER)  # by the operator, i.e. another process, while the refresh runs
    hasher.gate.set()
    assert auth.settle(10)
    clock.advance(2.5)  # past account_state_seconds: the hit sees the new hash
    with pytest.raises(AuthenticationFailed):
        auth.password("epj", PASSWORD, "10.63.0.1")
    assert auth.password("epj", OTHER, "10.63.0.1").username == "epj"


def test_a_refresh_refused_drops_the_entry(auth: Authenticator, accounts: AccountStore,
                                           hasher: ThreadNotingHasher, clock: Clock,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    auth.password("epj", PASSWORD, "10.64.0.1")
    clock.advance(TTL * (1 - REFRESH_SHARE) + 1)

    def refused(username: str, password: str) -> Any:
        raise AuthenticationFailed()

    monkeypatch.setattr(accounts, "verify_credentials", refused)
    auth.password("epj", PASSWORD, "10.64.0.1")  # answered from the cache; its refresh is refused
    assert auth.settle(10)
    monkeypatch.undo()
    auth.password("epj", PASSWORD, "10.64.0.1")  # the entry is gone: verified on the request path again
    assert hasher.on_main() == 2
