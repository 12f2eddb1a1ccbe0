"""HPR's name-key columns are a derived layout of their own (store.derived.COLUMNS, ``layout.hpr_person``): a store
whose ``hpr_person`` rows were keyed with the name key before the e after an ø was kept (layout ``h1``: Løen →
lon) is re-keyed by ``migrate`` at head and by ``pregbridge views rebuild``, and the record is then found by its
name; on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, insert, select, update

from server.cli import main
from store import hpr
from store import schema as s
from store.derived import HPR_KEYS, recorded_layouts
from store.engine import migrate
from store.registers import register_rows
from tests.factories import hpr_history_doc


def _store_old_keys(engine: Engine) -> None:
    """Two records as an ``h1`` store holds them: Løen keyed ``lon`` (the old key), Aasen keyed alike by both
    layouts; the layout never recorded (a store from before it was)."""
    with engine.begin() as conn:
        for doc in (hpr_history_doc(9100001, given="Øyvind Øen", family="Løen"),
                    hpr_history_doc(9100002, given="Per", family="Aasen", born="1981-01-01")):
            for table, rows in register_rows("hpr", doc).items():
                conn.execute(insert(table), rows)
        conn.execute(update(s.hpr_person).where(s.hpr_person.c.hpr_number == "9100001")
                     .values(family_key="lon", given_key="oyvind on"))
        conn.execute(delete(s.store_state).where(s.store_state.c.key == "layout.hpr_person"))


def _found(engine: Engine, **kw: str) -> list[int]:
    with engine.connect() as conn:
        return [d["hprNumber"] for d in hpr.search(conn, hpr.HprQuery(**kw))[1]]  # type: ignore[arg-type]


def _keys(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    p = s.hpr_person.c
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(select(p.hpr_number, p.family_key, p.given_key))}


def test_migrate_at_head_rekeys_a_store_keyed_the_old_way(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    _store_old_keys(engine)
    assert _found(engine, family="Løen") == []  # the gap: the new key asked against the stored old one
    assert _found(engine, family="Lon") == [9100001]
    migrate(engine)
    assert _keys(engine) == {"9100001": ("loeen", "oyvind oeen"), "9100002": ("asen", "per")}
    assert _found(engine, family="Løen") == [9100001]
    assert _found(engine, family="Loeen", given="Øyvind Ø") == [9100001]
    assert _found(engine, name="øyvind løen") == [9100001]
    assert _found(engine, family="Lon") == []
    assert _found(engine, family="Aasen") == [9100002]
    with engine.connect() as conn:
        assert recorded_layouts(conn)["hpr_person"] == HPR_KEYS.layout == "h2"
    assert "hpr_person: 1 of 2 rows re-keyed" in caplog.text
    assert "9100001" not in caplog.text and "Løen" not in caplog.text  # no register data in the log
    caplog.clear()
    migrate(engine)  # recorded: nothing compared again, nothing said
    assert "re-keyed" not in caplog.text


def test_a_new_store_records_the_layout_without_a_word(db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from store.engine import make_engine

    eng = make_engine(db_url)
    try:
        migrate(eng)
        with eng.connect() as conn:
            assert recorded_layouts(conn)["hpr_person"] == "h2"
    finally:
        eng.dispose()
    assert "re-keyed" not in caplog.text


def test_views_rebuild_checks_and_rekeys(engine: Engine, db_url: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    _store_old_keys(engine)
    with engine.begin() as conn:  # recorded as current, but keyed the old way: only the rows tell
        conn.execute(insert(s.store_state).values(key="layout.hpr_person", value="h2"))
    cli = ["--database-url", db_url, "--data-dir", str(tmp_path), "views", "rebuild"]
    assert main([*cli, "--check"]) == 1
    out = capsys.readouterr().out
    assert "hpr_person" in out and "records drifted: 1" in out
    assert _found(engine, family="Løen") == []  # --check writes nothing
    assert main(cli) == 0
    assert "records re-keyed: 1" in capsys.readouterr().out
    assert _found(engine, family="Løen") == [9100001]
    assert main([*cli, "--check"]) == 0
    assert "records drifted: 0" in capsys.readouterr().out


def test_the_layout_recorded_as_h1_is_rekeyed_by_views_rebuild(engine: Engine, db_url: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    _store_old_keys(engine)
    with engine.begin() as conn:
        conn.execute(insert(s.store_state).values(key="layout.hpr_person", value="h1"))
    cli = ["--database-url", db_url, "--data-dir", str(tmp_path), "views", "rebuild"]
    assert main([*cli, "--check"]) == 1
    assert "h2 (recorded: h1)" in capsys.readouterr().out
    assert main(cli) == 0
    assert _found(engine, family="Løen") == [9100001]
    with engine.connect() as conn:
        assert recorded_layouts(conn)["hpr_person"] == "h2"
