"""Read-through searches (issue 18, item 2): a population served by the fake Persontjenesten, the same
population loaded by file as the replica (the oracle), and an empty read-through store beside it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from store.synthetic import generate_population
from tests.integration.sync_support import add_persons, another_store, contract_copy, fake_of
from tests.readthrough_search.support import SEED, SIZE, Counting, crowd
from upstream.client import PersontjenestenClient
from upstream.fake import RunningFake


@pytest.fixture(scope="session")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo population plus a crowd that search/person's 100-hit cap cuts (support.crowd)."""
    out = tmp_path_factory.mktemp("rts-population")
    generate_population(out, SIZE, SEED, feed_days=0)
    add_persons(out, crowd())
    return out


@pytest.fixture(scope="session")
def as_loaded(population: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a file load must be given to equal what the API carries (tests/integration/sync_support.py)."""
    return contract_copy(population, tmp_path_factory.mktemp("rts-contract") / "pop")


@pytest.fixture(scope="session")
def fake(population: Path) -> Iterator[RunningFake]:
    with fake_of(population) as running:
        yield running


@pytest.fixture
def client(fake: RunningFake) -> Iterator[Counting]:
    with PersontjenestenClient(fake.client_settings(retries=0)) as c:
        yield Counting(c)


@pytest.fixture
def replica(db_url: str, as_loaded: Path, tmp_path: Path) -> Iterator[Engine]:
    from store.loading import load_population

    with another_store(db_url, tmp_path, "replica") as engine:
        load_population(engine, as_loaded, workers=1)
        yield engine


@pytest.fixture
def reader(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """An empty read-through store on the same backend, in a process that takes identification's register to
    be the nation's, as a read-through process does (server.bootstrap.person_source_of): its scores, and the
    replica's it is compared with, are then over the same register, not over the few persons each holds."""
    from store.linkage.params import NATIONAL_PERSONS, assume_register, assumed_register

    before = assumed_register()
    assume_register(NATIONAL_PERSONS)
    try:
        with another_store(db_url, tmp_path, "read-through") as engine:
            yield engine
    finally:
        assume_register(before)
