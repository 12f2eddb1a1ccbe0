"""An initial sync into an empty store builds person_search's indexes once, when it has caught up
(upstream.sync's docstring, issue 14: inserted a page at a time they cost the 1M sync most of its writes),
and is equal to a sync with the indexes in place; person_identifier's number index, which the sync's merge
rule reads, stays throughout. A sync into a store that holds persons, or in read-through mode, drops nothing.
A sync stopped before it caught up leaves the marker, and the next open of the store builds the indexes.
Over loopback with the fake Persontjenesten, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from store import schema as s
from store.engine import migrate
from store.loading import DEFERRED_KEY, deferred_indexes, search_indexes
from store.state import get_state
from tests.integration.sync_support import ALL_PARTS, another_store, fake_of, feed_outcomes, loaded, snapshot
from tests.upstream.test_sync_fast_paths import FAST, Paged
from upstream import sync as sync_module
from upstream.client import PersontjenestenClient
from upstream.sync import Syncer, SyncLock, SyncOptions, SyncSummary

SEARCH = {str(ix.name) for ix in search_indexes()}
NUMBER = "ix_person_identifier_number_person_id"


def _indexes(engine: Engine) -> set[str]:
    insp = inspect(engine)
    return {str(ix["name"]) for t in (s.person_identifier, s.person_search, s.person_given_word)
            for ix in insp.get_indexes(t.name)}


def _marker(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return get_state(conn, DEFERRED_KEY)


def _sync(engine: Engine, upstream: Any, progress: Any = None, stop: threading.Event | None = None,
          **options: Any) -> SyncSummary:
    with SyncLock(engine):
        syncer = Syncer(engine, upstream, SyncOptions(ALL_PARTS, **options))
        try:
            return syncer.run(once=True, progress=progress, stop=stop)
        finally:
            syncer.close()


def test_the_search_indexes_are_the_search_tables_and_the_number_index_is_not_among_them() -> None:
    assert SEARCH and SEARCH < {str(ix.name) for ix in deferred_indexes()}
    assert NUMBER not in SEARCH
    tables = {ix.table.name for ix in search_indexes()}  # type: ignore[attr-defined]
    assert tables == {"person_search", "person_given_word"}  # the given-name words are searched too


def test_an_initial_sync_builds_the_search_indexes_when_caught_up_and_equals_one_with_them(
        db_url: str, engine: Engine, demo_population: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[set[str], str | None]] = []
    with fake_of(demo_population) as fake:
        summary = _sync(engine, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=60),
                        progress=lambda _s: seen.append((_indexes(engine), _marker(engine))))
        assert summary.pages > 2 and len(seen) == summary.pages
        for present, marker in seen:  # while it synced: no search index, the number index, the marker
            assert not present & SEARCH and NUMBER in present and marker is not None
        assert _indexes(engine) >= SEARCH | {NUMBER} and _marker(engine) is None
        with engine.connect() as conn:
            assert list(compare_metadata(MigrationContext.configure(conn), s.metadata)) == []

        with another_store(db_url, tmp_path, "reference") as reference:  # the reference: indexes in place
            monkeypatch.setattr(sync_module, "defer_indexes", lambda *_a, **_k: False)
            ref_seen: list[set[str]] = []
            _sync(reference, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=60),
                  progress=lambda _s: ref_seen.append(_indexes(reference)))
            assert ref_seen and all(present >= SEARCH for present in ref_seen)
            assert snapshot(engine) == snapshot(reference) != {}
            assert feed_outcomes(engine) == feed_outcomes(reference)


def test_a_sync_into_a_store_with_persons_drops_no_index(engine: Engine, demo_population: Path) -> None:
    loaded(engine, demo_population)
    seen: list[set[str]] = []
    with fake_of(demo_population) as fake:
        _sync(engine, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=60),
              progress=lambda _s: seen.append(_indexes(engine)))
    assert seen and all(present >= SEARCH | {NUMBER} for present in seen)
    assert _marker(engine) is None


def test_a_read_through_sync_into_an_empty_store_drops_no_index(engine: Engine, demo_population: Path) -> None:
    with fake_of(demo_population) as fake:
        _sync(engine, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=60), read_through=True)
    assert _indexes(engine) >= SEARCH | {NUMBER} and _marker(engine) is None


def test_a_sync_stopped_before_it_caught_up_leaves_the_indexes_to_the_next_open(
        engine: Engine, demo_population: Path) -> None:
    stop = threading.Event()
    with fake_of(demo_population) as fake:
        summary = _sync(engine, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=60),
                        progress=lambda _s: stop.set(), stop=stop)
    assert summary.pages == 1
    assert not _indexes(engine) & SEARCH and _marker(engine) is not None
    migrate(engine)  # what every command and the server do when they open the store
    assert _indexes(engine) >= SEARCH and _marker(engine) is None
