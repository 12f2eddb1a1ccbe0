"""An initial load builds the person tables' search indexes after its inserts (store.loading, issue 19: inserted
into indexes chunk by chunk, the load of 5.6M persons wrote 13 times its file), and stays crash safe: a load
killed with SIGKILL at any moment leaves a store that answers what it holds, gets its indexes back from the next
command that opens it (store.engine.migrate), and a re-run of the load ends with the store an uninterrupted load
gives. On SQLite and PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, Index, inspect, select

from store import schema as s
from store.engine import make_engine, migrate
from store.loading import DEFERRED_KEY, deferred_indexes, load_population
from store.repository import PersonRepository
from store.state import get_state
from store.synthetic import generate_population
from tests.integration.sync_support import another_store, snapshot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pop")
    generate_population(out, 5000, 23, feed_days=0)  # three chunks of store.loading.BATCH
    return out


def _person_indexes(engine: Engine) -> set[str]:
    insp = inspect(engine)
    return {str(ix["name"]) for t in (s.person_identifier, s.person_search, s.person_given_word)
            for ix in insp.get_indexes(t.name)}


def _schema_diffs(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), s.metadata))


def _marker(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return get_state(conn, DEFERRED_KEY)


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(s.person.c.id)).all())


def test_the_deferred_indexes_are_the_search_indexes_not_those_the_load_reads() -> None:
    names = {str(ix.name) for ix in deferred_indexes()}
    assert "ix_person_identifier_number_person_id" in names
    assert {str(ix.name) for ix in s.person_search.indexes} <= names
    assert "ix_person_identifier_person_id" not in names  # save_prepared deletes a repeated key's rows by it


def test_a_load_into_an_empty_store_ends_with_every_index(engine: Engine, population: Path) -> None:
    load_population(engine, population, workers=1)
    assert _schema_diffs(engine) == []
    assert _marker(engine) is None


def test_a_load_into_a_store_with_persons_keeps_its_indexes(engine: Engine, population: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    load_population(engine, population, workers=1)
    dropped: list[object] = []
    monkeypatch.setattr(Index, "drop", lambda self, *a, **k: dropped.append(self))
    summary = load_population(engine, population, workers=1)  # a re-run: every person replaced
    assert summary.replaced == summary.persons == 5000
    assert dropped == [] and _marker(engine) is None and _schema_diffs(engine) == []


def _cli_load(db_url: str, population: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "server", "--database-url", db_url, "load", str(population)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)


def _kill_when(proc: subprocess.Popen[bytes], ready: object, timeout: float = 120.0) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()`` holds; False if it ended first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            return True
        time.sleep(0.02)
    proc.wait(30)
    return False


@pytest.mark.parametrize("moment", ["indexes dropped", "mid-load"])
def test_a_load_killed_at_any_moment_leaves_a_usable_store(db_url: str, tmp_path: Path, population: Path,
                                                          moment: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine)
        proc = _cli_load(db_url, population)
        if moment == "indexes dropped":
            killed = _kill_when(proc, lambda: _marker(engine) is not None)
        else:
            killed = _kill_when(proc, lambda: 0 < _count(engine) < 5000)
        assert killed, "the load ended before it could be killed: make the population larger"
        held = _count(engine)
        assert held < 5000 and _marker(engine) is not None  # the indexes were still to be built
        if held:  # what the killed load committed is answered (without the indexes: a scan)
            with engine.connect() as conn:
                first = conn.execute(select(s.person_identifier.c.number).limit(1)).scalar_one()
                assert PersonRepository(conn).find(first) is not None
        engine.dispose()
        engine = make_engine(db_url)
        migrate(engine)  # what every command and server does when it opens the store
        assert _marker(engine) is None
        assert _person_indexes(engine) >= {str(ix.name) for ix in deferred_indexes()}
        assert _schema_diffs(engine) == []
        rerun = subprocess.run([sys.executable, "-m", "server", "--database-url", db_url, "load", str(population)],
                               capture_output=True, text=True, cwd=REPO, timeout=600)
        assert rerun.returncode == 0, rerun.stderr
        assert _count(engine) == 5000
        with another_store(db_url, tmp_path, "reference") as reference:
            load_population(reference, population, workers=1)
            got, want = snapshot(engine), snapshot(reference)
        assert got == want
    finally:
        engine.dispose()


def test_the_build_runs_unmapped_with_a_small_sort_buffer_and_gives_the_connection_back_as_it_was(
        sqlite_url: str, population: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: the indexes are built with the table read through the page cache (mapped pages count in the
    RSS of the builder, which for an initial sync is the syncer, held to 300 MB) and a 16 MiB sort buffer in
    temporary files; the pooled connection goes back with the engine's own settings."""
    engine = make_engine(sqlite_url, pool_size=1)
    try:
        migrate(engine)
        names = ("temp_store", "cache_size", "mmap_size")

        def pragmas() -> tuple[object, ...]:
            with engine.connect() as conn:
                return tuple(conn.exec_driver_sql(f"PRAGMA {n}").scalar() for n in names)

        own = pragmas()
        assert own[2] != 0  # the engine maps its file: the build must turn that off
        during: list[tuple[object, ...]] = []
        create = Index.create

        def spying(self: Index, bind: object, *a: object, **k: object) -> None:
            during.append(tuple(bind.exec_driver_sql(f"PRAGMA {n}").scalar() for n in names))  # type: ignore[attr-defined]
            create(self, bind, *a, **k)  # type: ignore[arg-type]

        monkeypatch.setattr(Index, "create", spying)
        load_population(engine, population, workers=1)
        assert during and set(during) == {(1, -16384, 0)}  # 1: FILE
        assert pragmas() == own and _marker(engine) is None
    finally:
        engine.dispose()
