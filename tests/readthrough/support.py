"""Helpers of the read-through tests: a population served by the fake Persontjenesten, the same population loaded
from files (the replica, the oracle), an empty store in read-through mode, and the faces served over loopback."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine, text

from server.access import AccountStore, AuditWriter
from server.hl7.app import Hl7App
from server.hl7.settings import MllpSettings
from server.metrics import timed_handler
from store.identity import IdKind, generate
from tests.integration.sync_support import FAST_RETRIES, snapshot
from tests.integration.test_hl7_mllp import PEERS, PROFILES, Running, Server
from upstream.fake import RunningFake
from upstream.parts import ELEMENT_PARTS, information_parts
from upstream.readthrough import ReadThrough
from upstream.settings import UpstreamSettings

ALL_PARTS = information_parts(ELEMENT_PARTS)
HL7_PASSWORD = "broker-password-123"
DEADLINE = 0.6  # the tests' lookup_deadline: short, so that a fault's answer comes quickly


def read_through_settings(fake: RunningFake, **overrides: Any) -> UpstreamSettings:
    """Settings of a read-through source over ``fake`` (fast retries, a short deadline)."""
    values: dict[str, Any] = {**FAST_RETRIES, "mode": "read-through", "lookup_deadline": DEADLINE,
                              "breaker_failures": 3, "breaker_pause": 0.5, **overrides}
    return fake.client_settings(**values)


def source_of(engine: Engine, fake: RunningFake, **overrides: Any) -> ReadThrough:
    from upstream.client import PersontjenestenClient

    settings = read_through_settings(fake, **overrides)
    return ReadThrough(engine, PersontjenestenClient(settings), settings, ALL_PARTS)


def identifiers(engine: Engine) -> dict[str, tuple[str, str, bool]]:
    """number → (person key, status, is current) of every identifier in a store."""
    with engine.connect() as conn:
        return {n: (k, st, bool(cur)) for n, k, st, cur in conn.execute(text(
            "SELECT i.number, p.person_key, i.status, i.is_current FROM person_identifier i "
            "JOIN person p ON p.id = i.person_id"))}


def person_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT person_key FROM person")).scalars())


def asked_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT p.person_key FROM person_asked a JOIN person p ON p.id = a.person_id"))
                   .scalars())


def assert_holds_as_replica(engine: Engine, replica: Engine, keys: set[str]) -> None:
    """``engine`` holds exactly the persons ``keys``, each row for row as the replica holds it."""
    got, want = snapshot(engine), snapshot(replica)
    assert set(got) == keys
    for key in keys:
        assert got[key] == want[key], key


def unknown_numbers(engine: Engine, n: int = 3) -> list[str]:
    """Valid fødselsnumre neither the store nor the population holds."""
    import random

    held = set(identifiers(engine))
    rng = random.Random(18)
    out: list[str] = []
    while len(out) < n:
        num = generate(IdKind.FNR, dt.date(1931, 1, 1) + dt.timedelta(days=rng.randrange(20000)), rng)
        if num not in held and num not in out:
            out.append(num)
    return out


def add_hl7_accounts(engine: Engine) -> None:
    accounts = AccountStore(engine)
    for name, profile in {"mirth": "full", "dips": "utenHjemmel", "basis": "basis"}.items():
        accounts.add(name, HL7_PASSWORD, profile)


@contextlib.contextmanager
def hl7_serving(engine: Engine, source: ReadThrough | None) -> Iterator[Server]:
    """The HL7 face over ``engine`` (read-through with ``source``) on a loopback MLLP port."""
    settings = MllpSettings(port=0, peers=PEERS, peer_match="sender", threads=2)
    audit = AuditWriter(engine, mode="sync")
    app = Hl7App(engine, AccountStore(engine), PROFILES, audit, settings, source=source)
    running = Running(settings, timed_handler(app), app.closed)  # as listen-hl7 serves it (its calls' ids)
    try:
        yield Server(engine, app, running)
    finally:
        running.stop()
        audit.close()


class RequestLog(logging.Handler):
    """The request log lines (logger ``pregbridge.request``) of the calls made while it is attached."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append({k: getattr(record, k, None) for k in ("face", "operation", "outcome", "request_id")})

    @contextlib.contextmanager
    def attached(self) -> Iterator[RequestLog]:
        logger = logging.getLogger("pregbridge.request")
        level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)


def journal(fake: RunningFake, *operations: str) -> list[Any]:
    """The fake's journal of API calls (of ``operations`` when given)."""
    return [e for e in fake.app.journal if not operations or e.operation in operations]
