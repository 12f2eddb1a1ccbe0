"""Read-through sync and retention (issue 18): a store holding a few persons, the fake Persontjenesten over
loopback serving a feed about many, and a replica synced from the same feed as the oracle."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from store.document import from_document
from store.repository import PersonRepository, prepare_person
from store.synthetic import generate_population
from tests.integration.sync_support import ALL_PARTS, FAST_RETRIES
from upstream.client import PersontjenestenClient
from upstream.fake import RunningFake
from upstream.mapping import store_document
from upstream.sync import Syncer, SyncLock, SyncOptions, SyncSummary


@pytest.fixture(scope="session")
def rt_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pregbridge demo-data --persons 240 --seed 16 --days 4``: 240 persons and four days of feed."""
    out = tmp_path_factory.mktemp("readthrough-population")
    generate_population(out, 240, 16, feed_days=4)
    return out


def feed_person_ids(fake: RunningFake) -> list[str]:
    """Every person id the fake's feed names, in feed order (the extract's first)."""
    seen: dict[str, None] = {}
    for n in range(1, fake.latest_sequence + 1):
        event = fake.app.population.event(n)
        if event is not None:
            seen.setdefault(event.person_id, None)
    return list(seen)


def changed_ids(fake: RunningFake) -> set[str]:
    """The persons with an event after the extract (changed by the feed)."""
    out = set()
    for n in range(fake.extract_size + 1, fake.latest_sequence + 1):
        event = fake.app.population.event(n)
        if event is not None:
            out.add(event.person_id)
    return out


def seed(engine: Engine, fake: RunningFake, keys: Sequence[str], *, at: int,
         now: dt.datetime | None = None) -> None:
    """Store ``keys`` as the fake served them at sequence ``at`` (what a read-through lookup stores), then
    serve the whole feed again."""
    fake.release(at)
    client = PersontjenestenClient(fake.client_settings(**FAST_RETRIES))
    try:
        raw = [client.person_by_id(k, ALL_PARTS, True) for k in keys]
    finally:
        client.close()
        fake.release(fake.latest_sequence)
    prepared = [prepare_person(from_document(store_document(r, Counter()))) for r in raw if r is not None]
    assert len(prepared) == len(keys)
    with engine.begin() as conn:
        PersonRepository(conn).save_prepared([(p, None) for p in prepared], now=now)


class FetchCount:
    """Counts, by person id, the persons the fake serves (``person/{id}`` and ``person/bulk-by-id``)."""

    def __init__(self, fake: RunningFake) -> None:
        self.population = fake.app.population
        self.original = self.population.version
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, person_id: str, upto: int) -> Any:
        with self._lock:
            self.counts[person_id] += 1
        return self.original(person_id, upto)

    @contextmanager
    def counting(self) -> Iterator[FetchCount]:
        self.population.version = self  # type: ignore[method-assign]
        try:
            yield self
        finally:
            self.population.version = self.original  # type: ignore[method-assign]


def run_sync(engine: Engine, fake: RunningFake, *, read_through: bool, workers: int = 1, parallelism: int = 4,
             **options: Any) -> SyncSummary:
    """One syncer run (``once``) of everything the fake serves."""
    client = PersontjenestenClient(fake.client_settings(**FAST_RETRIES))
    with SyncLock(engine):
        syncer = Syncer(engine, client, SyncOptions(ALL_PARTS, parallelism=parallelism, workers=workers,
                                                    read_through=read_through, **options))
        try:
            return syncer.run(once=True)
        finally:
            syncer.close()
