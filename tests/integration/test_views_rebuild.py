"""`pregbridge views rebuild [--check]` (server/views_cli.py, store/derived.py): every derived per-person row is
compared with what its person's document gives; drift is counted per table (exit 1 with --check) and rewritten
by a rebuild, in batches, on SQLite and PostgreSQL. Migrating to head rebuilds a table whose recorded layout is
not the code's; the old migrations fill with the frozen layout they wrote and 0014 records it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select, text

from server.cli import main
from store import derived
from store import schema as s
from store.backfill import brief_b1, current_c1, search_s2
from store.brief import brief_of
from store.current import current_of
from store.derived import COLUMNS, DERIVED, check_views, recorded_layouts
from store.document import from_document
from store.engine import make_engine, migrate
from store.repository import PersonRepository, person_rows
from tests.factories import person_doc


@pytest.fixture
def stored(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    from store.feed import ingest
    from store.loading import load_population
    from store.synthetic import generate_population

    d = tmp_path_factory.mktemp("views")
    generate_population(d / "pop", 120, 7, feed_days=5)
    load_population(engine, d / "pop", workers=1)
    ingest(engine, d / "pop" / "feed")
    yield engine


def _rows(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    out = {}
    with engine.connect() as conn:
        for d in DERIVED:
            cols = [c for c in d.table.columns if c.name != "id"]
            out[d.name] = sorted(tuple(map(str, r)) for r in conn.execute(select(*cols)))
    return out


def _expected(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    out: dict[str, list[tuple[str, ...]]] = {d.name: [] for d in DERIVED}
    with engine.connect() as conn:
        ids = list(conn.execute(select(s.person.c.id)).scalars())
        for pid, person in PersonRepository(conn).load(ids).items():
            for table, rows in person_rows(person, pid, dt.datetime(2026, 1, 1)).items():
                if table is s.person:
                    continue
                cols = [c.name for c in table.columns if c.name != "id"]
                out[table.name] += [tuple(str(r[c]) for c in cols) for r in rows]
    return {k: sorted(v) for k, v in out.items()}


def _drift(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM person_brief WHERE person_id IN (3, 7)"))
        conn.execute(text("UPDATE person_search SET family_key = 'zz' WHERE person_id = 5"))
        conn.execute(text("DELETE FROM person_identifier WHERE person_id = 11"))
        conn.execute(text("INSERT INTO person_identifier (person_id, number, kind, status, is_current) "
                          "VALUES (12, '01010100000', 'fnr', 'iBruk', false)"))
        conn.execute(text("DELETE FROM person_current WHERE person_id = 9"))
        conn.execute(text("UPDATE store_state SET value = 'c0' WHERE key = 'layout.person_current'"))


def test_check_counts_drift_per_table_and_rebuild_repairs_it(stored: Engine, db_url: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(derived, "BATCH", 17)  # several batches
    cli = ["--database-url", db_url, "--data-dir", str(tmp_path), "views", "rebuild"]
    assert main([*cli, "--check"]) == 0
    assert "clean" in capsys.readouterr().out
    before = _rows(stored)
    assert before == _expected(stored)

    _drift(stored)
    assert main([*cli, "--check"]) == 1
    report = capsys.readouterr().out
    lines = {line.split()[0]: line for line in report.splitlines() if line.startswith("  person_")}
    assert lines["person_identifier"].endswith("persons drifted: 2")
    assert lines["person_search"].endswith("persons drifted: 1")
    assert lines["person_brief"].endswith("persons drifted: 2")
    assert lines["person_current"].endswith("persons drifted: 1") and "(recorded: c0)" in lines["person_current"]
    assert "run `pregbridge views rebuild`" in report
    assert _rows(stored) != before  # --check wrote nothing

    assert main(cli) == 0
    report = capsys.readouterr().out
    assert "persons rewritten: 2" in report and "persons rewritten: 1" in report
    assert _rows(stored) == before
    with stored.connect() as conn:
        assert recorded_layouts(conn) == {d.name: d.layout for d in (*DERIVED, *COLUMNS)}
    assert main([*cli, "--check"]) == 0
    result = check_views(stored)
    with stored.connect() as conn:
        assert result.persons == PersonRepository(conn).count() > 100 and not any(result.drift.values())


def test_migrating_to_head_rebuilds_a_table_whose_recorded_layout_is_not_the_codes(engine: Engine) -> None:
    with engine.begin() as conn:
        PersonRepository(conn).save(from_document(person_doc("l1", family="Lagsen")))
        conn.execute(text("UPDATE person_brief SET brief = 'b0'"))
        conn.execute(text("UPDATE store_state SET value = 'b0' WHERE key = 'layout.person_brief'"))
    migrate(engine)
    with engine.connect() as conn:
        person = PersonRepository(conn).get_by_key("l1")
        assert person is not None
        assert conn.execute(select(s.person_brief.c.brief)).scalar_one() == brief_of(person)
        assert recorded_layouts(conn)["person_brief"] == "b1"


def test_old_migrations_fill_with_their_frozen_layout_and_0014_records_it(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        migrate(engine, "0005")
        docs = [person_doc(f"o{n}", family="Gammel", given=f"Ola{n}") for n in range(5)]
        with engine.begin() as conn:
            for n, doc in enumerate(docs, start=1):
                conn.execute(insert(s.person).values(id=n, person_key=doc["personId"], doc=json.dumps(doc),
                                                     updated_at=dt.datetime(2026, 1, 1)))
        migrate(engine, "0013")
        with engine.connect() as conn:
            briefs: dict[int, str] = dict(conn.execute(text("SELECT person_id, brief FROM person_brief")).all())
            views: dict[int, str] = dict(conn.execute(text("SELECT person_id, current FROM person_current")).all())
        for n, doc in enumerate(docs, start=1):
            person = from_document(doc)
            assert briefs[n] == brief_b1(person) == brief_of(person)  # today's layout is still b1 and c1
            assert views[n] == current_c1(person) == current_of(person)
            assert search_s2(person) == {k: v for k, v in derived.search_row(person, n).items() if k != "person_id"}
        with engine.connect() as conn:
            assert set(recorded_layouts(conn).values()) == {None}
        migrate(engine)
        with engine.connect() as conn:
            assert recorded_layouts(conn) == {"person_identifier": "i1", "person_search": "s3",
                                              "person_given_word": "w1", "person_brief": "b1",
                                              "person_current": "c1", "hpr_person": "h2"}
    finally:
        engine.dispose()
