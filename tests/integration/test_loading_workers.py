"""The bulk load's worker processes (store.loading.prepared_chunks, spawned) store exactly what the in-process
path stores, also when the loading process has threads of its own running (a fork there hung under 3.13)."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from store import schema as s
from store.engine import make_engine, migrate
from store.loading import load_population
from store.synthetic import generate_population


def _rows(url: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = conn.execute(select(s.person_current).order_by(s.person_current.c.person_id)).all()
            numbers = conn.execute(select(s.person_identifier.c.number, s.person_identifier.c.person_id)
                                   .order_by(s.person_identifier.c.number)).all()
        return [tuple(r) for r in current] + [tuple(r) for r in numbers]
    finally:
        engine.dispose()


def test_worker_processes_store_what_the_in_process_load_stores(tmp_path: Path) -> None:
    population = tmp_path / "pop"
    generate_population(population, 400, 3, feed_days=0)
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)  # a thread of the loading process, as a server has
    busy.start()
    urls = {}
    try:
        for workers in (1, 2):
            url = f"sqlite:///{tmp_path / f'w{workers}.sqlite'}"
            engine = make_engine(url)
            migrate(engine)
            summary = load_population(engine, population, workers=workers)
            engine.dispose()
            assert summary.rejected == 0
            urls[workers] = url
    finally:
        stop.set()
    one, two = _rows(urls[1]), _rows(urls[2])
    assert len(one) > 400 and one == two
