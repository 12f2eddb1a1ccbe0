"""The sync's fast paths against their references, over loopback with the fake Persontjenesten and a real
store (SQLite and PostgreSQL):

- bulk answers handed over as bytes and parsed in worker processes (``persons_by_id_body`` + ``map_bulk``)
  store exactly what parsed answers mapped in the syncing process store (the client without the bytes
  method: the reference path), persons gone and rejected included;
- an answer the client's checks refuse is refused the same from a worker process, nothing applied;
- on SQLite, the checkpointer thread leaves the WAL copied back and bounded, and gives the pooled connection
  back with SQLite's own autocheckpoint (and its own page cache: the checkpointer's small one is its own);
- the writer that writes only the derived rows that changed (store.derived.write_derived) leaves the store
  equal, in every derived table, to the one the reference writer gives (every derived row of a saved person
  deleted and built again from scratch), after a load and the feed synced on top of it; it writes fewer rows,
  and nothing at all for a person saved again unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, delete, insert, select, text

from store import derived as derived_module
from store import repository as repository_module
from store import schema as s
from store.derived import DERIVED, Derived
from store.engine import make_engine, migrate
from store.loading import load_population
from store.repository import PersonRepository
from store.synthetic import generate_population
from tests.integration.sync_support import (
    ALL_PARTS,
    another_store,
    contract_copy,
    fake_of,
    feed_outcomes,
    position,
    snapshot,
)
from upstream import sync as sync_module
from upstream.client import PersontjenestenClient
from upstream.errors import UpstreamError, UpstreamUnavailable
from upstream.fake import Faults
from upstream.sync import Syncer, SyncLock, SyncOptions, SyncSummary

FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "retries": 8}


class ParsedOnly:
    """The real client without ``persons_by_id_body``: the sync takes its parsed-answers path."""

    def __init__(self, client: PersontjenestenClient, page: int = 1000) -> None:
        self.client = client
        self.page = page

    def latest_event(self) -> Any:
        return self.client.latest_event()

    def events(self, sequence_number: int) -> Any:
        return self.client.events(sequence_number)[: self.page]

    def persons_by_id(self, ids: Sequence[str], parts: Sequence[str], include_history: bool = False) -> Any:
        return self.client.persons_by_id(ids, parts, include_history)

    def person_by_id(self, person_id: str, parts: Sequence[str], include_history: bool = False) -> Any:
        return self.client.person_by_id(person_id, parts, include_history)

    def close(self) -> None:
        self.client.close()


class Paged(ParsedOnly):
    """The real client (bytes included), its event pages cut to ``page`` events: many pages from a small feed."""

    def persons_by_id_body(self, ids: Sequence[str], parts: Sequence[str], include_history: bool = False) -> bytes:
        return self.client.persons_by_id_body(ids, parts, include_history)


class BadBody(Paged):
    def __init__(self, client: PersontjenestenClient, body: bytes) -> None:
        super().__init__(client)
        self.body = body

    def persons_by_id_body(self, ids: Sequence[str], parts: Sequence[str], include_history: bool = False) -> bytes:
        return self.body


def _run(engine: Engine, upstream: Any, workers: int, progress: Any = None) -> SyncSummary:
    with SyncLock(engine):
        syncer = Syncer(engine, upstream, SyncOptions(ALL_PARTS, workers=workers))
        try:
            return syncer.run(once=True, progress=progress)
        finally:
            syncer.close()


def _rejects(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(select(s.reject.c.seq, s.reject.c.record_key, s.reject.c.reason)))


def test_bytes_parsed_in_workers_store_what_parsed_answers_store(db_url: str, engine: Engine,
                                                                demo_population: Path, tmp_path: Path) -> None:
    with fake_of(demo_population, faults=Faults(gone_every=9)) as fake:
        client = PersontjenestenClient(fake.client_settings(**FAST))
        assert callable(client.persons_by_id_body)
        fast = _run(engine, Paged(client, page=120), workers=2)
        with another_store(db_url, tmp_path, "reference") as reference:
            slow = _run(reference, ParsedOnly(PersontjenestenClient(fake.client_settings(**FAST)), page=120),
                        workers=1)
            assert fast.pages == slow.pages > 1 and fast.missing == slow.missing > 0
            assert (fast.applied, fast.rejected, fast.position) == (slow.applied, slow.rejected, slow.position)
            assert snapshot(engine) == snapshot(reference) != {}
            assert feed_outcomes(engine) == feed_outcomes(reference)
            assert _rejects(engine) == _rejects(reference)


@pytest.mark.parametrize(("body", "error", "message"), [(b"<html>proxy error</html>", UpstreamUnavailable, "not JSON"),
                                                        (b'{"results": []}', UpstreamError, "other than a list"),
                                                        (b"[17]", UpstreamError, "not an object")])
def test_a_bad_bulk_body_is_refused_from_a_worker_and_nothing_is_applied(engine: Engine, demo_population: Path,
                                                                         body: bytes, error: type[Exception],
                                                                         message: str) -> None:
    with fake_of(demo_population) as fake:
        upstream = BadBody(PersontjenestenClient(fake.client_settings(**FAST)), body)
        with pytest.raises(error, match=message):
            _run(engine, upstream, workers=2)
    assert position(engine) == 0 and snapshot(engine) == {}


def _wal(sqlite_url: str) -> Path:
    return Path(sqlite_url.removeprefix("sqlite:///") + "-wal")


# persons a page in the two WAL tests: small pages, many of them, so that a WAL left to grow ends many times its
# first pages' size (since the writer writes only what changed and documents are compressed, a page's WAL is
# small: at 25 a page the control grew 2.99×, too close to the bound the test above allows)
PAGE = 10


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    migrate(eng)
    yield eng
    eng.dispose()


def test_the_wal_is_copied_back_and_stays_bounded(sqlite_store: Engine, sqlite_url: str, demo_population: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync_module._Checkpointer, "LIMIT", 0)  # a checkpoint before every page
    sizes: list[int] = []
    with fake_of(demo_population) as fake:
        summary = _run(sqlite_store, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=PAGE), workers=1,
                       progress=lambda _: sizes.append(_wal(sqlite_url).stat().st_size))
    assert summary.pages == len(sizes) > 8
    # the WAL starts afresh at each page: its file (which SQLite does not shrink) stays at about one page's size
    assert max(sizes) <= 3 * max(sizes[:2])
    with sqlite_store.connect() as conn:
        conn.execution_options(sqlite_begin="none")  # a checkpoint runs outside a transaction
        busy, frames, copied = conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)")).one()
        assert busy == 0 and frames == copied  # nothing was left to copy back
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar() == 1000  # SQLite's default, as it was
        assert conn.execute(text("PRAGMA cache_size")).scalar() == -65536  # the store's, not the checkpointer's


def test_without_the_checkpoints_the_wal_would_grow(sqlite_store: Engine, sqlite_url: str, demo_population: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The control of the test above: the same run with the checkpointer doing nothing grows the WAL."""
    monkeypatch.setattr(sync_module._Checkpointer, "_checkpoint", lambda self, conn: None)
    sizes: list[int] = []
    with fake_of(demo_population) as fake:
        _run(sqlite_store, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=PAGE), workers=1,
             progress=lambda _: sizes.append(_wal(sqlite_url).stat().st_size))
    assert max(sizes) > 3 * max(sizes[:2])


# -- the writer of only what changed, against the reference writer ------------------------------------------


def _from_scratch(conn: Connection, d: Derived, new: Sequence[tuple[int, list[dict[str, Any]]]],
                  stored: Sequence[int] = ()) -> int:
    """The reference writer: every derived row of the stored persons deleted, every new row inserted."""
    ids, deleted = list(stored), 0
    for k in range(0, len(ids), 500):
        deleted += conn.execute(delete(d.table).where(d.table.c.person_id.in_(ids[k : k + 500]))).rowcount
    rows = [dict(r, person_id=pid) for pid, built in new for r in built]
    if rows:
        conn.execute(insert(d.table), rows)
    return deleted + len(rows)


def _tables(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every derived table's rows (every column a builder writes) and every document, by person key."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    p = s.person
    with engine.connect() as conn:
        out["person"] = sorted(tuple(r) for r in conn.execute(select(p.c.person_key, p.c.doc, p.c.last_seq)))
        for d in DERIVED:
            cols = [c for c in d.table.columns if c.name not in ("person_id", "id")]
            rows = conn.execute(select(p.c.person_key, *cols).join(p, p.c.id == d.table.c.person_id))
            out[d.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


class _Counted:
    """A writer wrapped to count the rows it writes."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.rows = 0

    def __call__(self, *args: Any) -> int:
        n = int(self.writer(*args))
        self.rows += n
        return n


@pytest.fixture(scope="module")
def long_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 persons and 40 days of feed (~200 events: moves, deaths, births, names, marriages, emigrations,
    protection, new numbers), as Persontjenesten can carry them (a file load equals a sync of them)."""
    out = tmp_path_factory.mktemp("long-feed")
    generate_population(out / "generated", 300, 23, feed_days=40)
    return contract_copy(out / "generated", out / "contract")


def test_writing_only_what_changed_equals_rebuilding_from_scratch(db_url: str, engine: Engine, long_feed: Path,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    population = long_feed
    load_population(engine, population, workers=1)
    changed = _Counted(derived_module.write_derived)
    with fake_of(population, extract=False) as fake, another_store(db_url, tmp_path, "reference") as reference:
        load_population(reference, population, workers=1)
        monkeypatch.setattr(repository_module, "write_derived", changed)
        fast = _run(engine, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=25), workers=1)
        scratch = _Counted(_from_scratch)
        monkeypatch.setattr(repository_module, "write_derived", scratch)
        slow = _run(reference, Paged(PersontjenestenClient(fake.client_settings(**FAST)), page=25), workers=1)
        assert fast.pages == slow.pages > 1 and fast.applied == slow.applied > 100
        got, want = _tables(engine), _tables(reference)
        assert got.keys() == want.keys() and all(want[name] for name in want)
        for name in want:
            assert got[name] == want[name], name
        assert snapshot(engine) == snapshot(reference)
    assert 0 < changed.rows < scratch.rows / 2  # most of a feed person's derived rows stay as they were


def test_a_person_saved_again_unchanged_writes_no_derived_row(engine: Engine, demo_population: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    load_population(engine, demo_population, workers=1)
    with engine.connect() as conn:
        docs = conn.execute(select(s.person.c.doc).order_by(s.person.c.id).limit(50)).scalars().all()
    persons = [repository_module._person(doc) for doc in docs]
    counted = _Counted(derived_module.write_derived)
    monkeypatch.setattr(repository_module, "write_derived", counted)
    before = _tables(engine)
    with engine.begin() as conn:
        PersonRepository(conn).save_many([(p, None) for p in persons])
    assert counted.rows == 0 and _tables(engine) == before


def test_the_sync_engine_reads_unmapped_through_its_own_page_cache(sqlite_store: Engine, sqlite_url: str) -> None:
    """The syncer's SQLite connections: no memory-mapped reads and upstream.sync.SQLITE_CACHE_KIB of page cache
    (both count in its resident memory); the store's other engines keep the store's own settings."""
    from server.bootstrap import build_sync_engine
    from server.config import load_settings

    engine = build_sync_engine(load_settings(None, {"PREGBRIDGE_DATABASE_URL": sqlite_url}))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA mmap_size")).scalar() == 0
            assert conn.execute(text("PRAGMA cache_size")).scalar() == -sync_module.SQLITE_CACHE_KIB != -65536
    finally:
        engine.dispose()
    with sqlite_store.connect() as conn:
        assert conn.execute(text("PRAGMA cache_size")).scalar() == -65536
        assert (conn.execute(text("PRAGMA mmap_size")).scalar() or 0) > 0
