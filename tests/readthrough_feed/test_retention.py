"""Retention in read-through mode (issue 18), SQLite and PostgreSQL: store.retention.purge deletes exactly the
persons not asked about for ``retention_days`` with every row of store.derived.DERIVED and person_asked, and
nothing else (the audit trail keeps its records); ``--dry-run`` deletes nothing and counts the same; the CLI is
refused in replica mode; the purge runs on its schedule inside ``sync``; ``sync --status --json``, the staleness
warning and the metrics show what happened, counts only."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, inspect, select, text, update

from store import schema as s
from store.derived import DERIVED
from store.document import from_document
from store.repository import PersonRepository
from store.retention import LOCAL_PREFIX, last_purge, purge, purged_total, touch_asked
from tests.factories import person_doc
from tests.integration.sync_support import ALL_PARTS, FAST_RETRIES, fake_of, position
from tests.readthrough_feed.conftest import feed_person_ids, run_sync, seed
from upstream.client import PersontjenestenClient
from upstream.fake import Faults
from upstream.sync import Syncer, SyncLock, SyncOptions

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 12, 1, 12, 0, 0)
DAY = dt.timedelta(days=1)

# name → (asked_at or None: never asked, updated_at, kept by a purge of 90 days at NOW)
CASES: dict[str, tuple[dt.datetime | None, dt.datetime, bool]] = {
    "asked-long-ago": (NOW - 100 * DAY, NOW - 100 * DAY, False),
    "asked-recently": (NOW - 10 * DAY, NOW - 200 * DAY, True),
    "asked-long-ago-updated-since": (NOW - 91 * DAY, NOW - DAY, False),  # the feed's updates do not extend it
    "asked-at-the-cutoff": (NOW - 90 * DAY, NOW - 300 * DAY, True),
    "never-asked-stored-long-ago": (None, NOW - 95 * DAY, False),
    "never-asked-stored-recently": (None, NOW - 5 * DAY, True),
    f"{LOCAL_PREFIX}00000000001": (None, NOW - 400 * DAY, True),  # a felles hjelpenummer allocated here
}


def _store(engine: Engine, at: dt.datetime = NOW) -> dict[str, int]:
    """The CASES persons, their clocks as of ``at`` (the CLI purges at the real time)."""
    shift = at - NOW
    ids: dict[str, int] = {}
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for n, (key, (asked, updated, _kept)) in enumerate(CASES.items()):
            doc = person_doc(key, born=f"19{50 + n}-0{1 + n % 9}-1{n % 9}")
            ids[key] = repo.save(from_document(doc), now=updated + shift)
            if asked is not None:
                touch_asked(conn, [ids[key]], asked + shift)
    return ids


def _numbers(engine: Engine, pids: list[int]) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(s.person_identifier.c.number)
                                 .where(s.person_identifier.c.person_id.in_(pids))).scalars())


def _audit(engine: Engine, numbers: list[str]) -> None:
    """Audit records naming the persons' numbers, as the faces write them."""
    with engine.begin() as conn:
        for k, number in enumerate(numbers, start=1):
            conn.execute(insert(s.audit_event).values(id=k, at=NOW, account="epj1", face="preg", operation="getPerson",
                                                      outcome="ok", asked=[number], returned=[number]))
            conn.execute(insert(s.audit_person).values(audit_id=k, number=number, role="asked", gen=0))


def _rows(engine: Engine) -> dict[str, dict[int, int]]:
    """table → person id → rows, for person, person_asked and every derived table."""
    out: dict[str, dict[int, int]] = {}
    with engine.connect() as conn:
        for table in (s.person, s.person_asked, *(d.table for d in DERIVED)):
            col = table.c.id if table is s.person else table.c.person_id
            out[table.name] = {pid: 0 for pid in []}
            for pid in conn.execute(select(col)).scalars():
                out[table.name][pid] = out[table.name].get(pid, 0) + 1
    return out


def _audit_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one(),
                conn.execute(text("SELECT count(*) FROM audit_person")).scalar_one())


def test_retention_deletes_exactly_the_persons_past_it_and_the_audit_trail_stays(engine: Engine) -> None:
    ids = _store(engine)
    expired = {ids[k] for k, (_a, _u, kept) in CASES.items() if not kept}
    kept = set(ids.values()) - expired
    _audit(engine, _numbers(engine, sorted(ids.values())))
    before, audit_before = _rows(engine), _audit_counts(engine)
    for d in DERIVED:  # every purged person has rows in every derived table before
        assert expired <= set(before[d.name])
    with engine.connect() as conn:
        docs_before = {pid: doc for pid, doc in conn.execute(select(s.person.c.id, s.person.c.doc))}

    dry = purge(engine, 90, now=NOW, dry_run=True, batch=2)
    assert (dry.persons, dry.adopted, dry.batches) == (len(expired), 0, 0)
    assert _rows(engine) == before  # nothing deleted, nothing adopted

    done = purge(engine, 90, now=NOW, batch=2)
    assert done.persons == dry.persons == 3 and done.seen == len(ids) and done.batches >= 2
    after = _rows(engine)
    for table, counts in after.items():
        assert not expired & set(counts), table  # no row of a purged person is left, in any table
        assert {p: n for p, n in counts.items() if p in kept} == \
            {p: n for p, n in before[table].items() if p in kept} | ({ids["never-asked-stored-recently"]: 1}
                                                                     if table == "person_asked" else {}), table
    with engine.connect() as conn:
        assert {pid: doc for pid, doc in conn.execute(select(s.person.c.id, s.person.c.doc))} == \
            {pid: doc for pid, doc in docs_before.items() if pid in kept}
        # the never-asked person kept adopted its stored time as its clock; the local FH person was left alone
        asked = dict(conn.execute(select(s.person_asked.c.person_id, s.person_asked.c.asked_at)).all())
        assert asked[ids["never-asked-stored-recently"]] == CASES["never-asked-stored-recently"][1]
        assert ids[f"{LOCAL_PREFIX}00000000001"] not in asked
        assert purged_total(conn) == 3 and last_purge(conn) == (NOW, 3)
    assert _audit_counts(engine) == audit_before  # the audit trail keeps every record

    # the adopted clock holds: the feed updating the person later does not extend its life
    with engine.begin() as conn:
        conn.execute(update(s.person).where(s.person.c.id == ids["never-asked-stored-recently"])
                     .values(updated_at=NOW + 80 * DAY))
    later = NOW + 86 * DAY  # past 90 days for the one stored at NOW - 5 days (and two asked about before)
    assert purge(engine, 90, now=later, dry_run=True).persons == 3
    assert purge(engine, 90, now=later).persons == 3
    with engine.connect() as conn:
        assert purged_total(conn) == 6
        assert set(conn.execute(select(s.person.c.person_key)).scalars()) == {f"{LOCAL_PREFIX}00000000001"}


def test_foreign_keys_cascade_from_person_and_never_reach_the_audit_trail(engine: Engine) -> None:
    insp = inspect(engine)
    for table in (*(d.table.name for d in DERIVED), "person_asked"):
        fks = [fk for fk in insp.get_foreign_keys(table) if fk["referred_table"] == "person"]
        assert len(fks) == 1 and (fks[0]["options"] or {}).get("ondelete", "").upper() == "CASCADE", table
    for table in ("audit_event", "audit_person", "audit_export"):
        assert all(fk["referred_table"] != "person" for fk in insp.get_foreign_keys(table)), table
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    ids = _store(engine)
    _audit(engine, _numbers(engine, [ids["asked-recently"]]))
    with engine.begin() as conn:  # the database's own cascade, without store.retention's explicit deletes
        conn.execute(text("DELETE FROM person WHERE id = :id"), {"id": ids["asked-recently"]})
    rows = _rows(engine)
    assert all(ids["asked-recently"] not in counts for counts in rows.values())
    assert _audit_counts(engine) == (1, 1)


# -- the CLI ------------------------------------------------------------------------------------------------


def _config(path: Path, mode: str, fake_url: str = "http://127.0.0.1:9", **extra: Any) -> Path:
    lines = ["[upstream]", f'base_url = "{fake_url}"', f'mode = "{mode}"', "backoff_initial = 0.01",
             "backoff_max = 0.05", "read_timeout = 5.0", "poll_interval = 0.5"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli(db_url: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", "--config", str(config), "--database-url", db_url,
                           "--data-dir", str(config.parent), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=180)


def _aged(engine: Engine) -> tuple[dict[str, int], list[str]]:
    ids = _store(engine, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    return ids, _numbers(engine, sorted(ids.values()))


def test_purge_cli_dry_run_counts_then_purges_and_replica_mode_is_refused(db_url: str, engine: Engine,
                                                                         tmp_path: Path) -> None:
    ids, numbers = _aged(engine)
    before = _rows(engine)
    replica = _cli(db_url, _config(tmp_path / "replica.toml", "replica"), "purge")
    assert replica.returncode == 2 and "read-through mode only" in replica.stderr
    assert _rows(engine) == before
    config = _config(tmp_path / "rt.toml", "read-through")
    dry = _cli(db_url, config, "purge", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    got = json.loads(dry.stdout)
    # the three of the CASES, and the one asked about exactly 90 days before: the real clock has moved on since
    assert got["dry_run"] is True and got["persons"] == 4 and got["retention_days"] == 90
    assert _rows(engine) == before
    done = _cli(db_url, config, "purge")
    assert done.returncode == 0, done.stderr
    assert "deleted 4 of 7 persons not asked about for 90 days" in done.stdout
    again = _cli(db_url, config, "purge", "--json")
    assert json.loads(again.stdout)["persons"] == 0
    for out in (replica, dry, done, again):  # counts only: no number, no person key
        assert not any(n in out.stdout + out.stderr for n in numbers)
        assert not any(k in out.stdout + out.stderr for k in CASES)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM person")).scalar_one() == 3


def test_the_purge_runs_on_its_schedule_inside_sync_and_status_shows_it(db_url: str, engine: Engine,
                                                                        rt_population: Path, tmp_path: Path) -> None:
    with fake_of(rt_population) as fake:
        everyone = feed_person_ids(fake)[: fake.extract_size]
        old, recent = everyone[:3], everyone[3:5]
        seed(engine, fake, old + recent, at=fake.latest_sequence)
        with engine.begin() as conn:
            repo = PersonRepository(conn)
            long_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - 120 * DAY
            touch_asked(conn, [repo.id_for_key(k) or 0 for k in old], long_ago)
        summary = run_sync(engine, fake, read_through=True, purge_interval=3600.0)
        assert summary.applied == 2  # the purge ran first (its first tick): the expired three were not fetched
        with engine.connect() as conn:
            keys = set(conn.execute(select(s.person.c.person_key)).scalars())
            ran = last_purge(conn)
        assert keys == set(recent) and ran is not None and ran[1] == 3
        # a syncer started again within the interval does not purge again at once
        client = PersontjenestenClient(fake.client_settings(**FAST_RETRIES))
        with SyncLock(engine):
            syncer = Syncer(engine, client, SyncOptions(ALL_PARTS, read_through=True, purge_interval=3600.0))
            try:
                assert syncer._purge is not None and syncer._purge.tick() is False
            finally:
                syncer.close()
        config = _config(tmp_path / "rt.toml", "read-through", fake.base_url)
        status = _cli(db_url, config, "sync", "--status", "--json")
        text_status = _cli(db_url, config, "sync", "--status")
        replica_status = _cli(db_url, _config(tmp_path / "replica.toml", "replica", fake.base_url), "sync",
                              "--status", "--json")
    assert status.returncode == 0, status.stderr
    doc = json.loads(status.stdout)
    assert doc["mode"] == "read-through" and doc["position"] == position(engine) == doc["latest"]
    rt = doc["read_through"]
    assert rt["held_persons"] == 2 and rt["last_purge_persons"] == 3 and rt["purged_total"] == 3
    assert rt["last_successful_read"] is not None and 0 <= rt["staleness_seconds"] < 120
    assert rt["last_purge"] is not None and rt["retention_days"] == 90
    assert "held persons:    2" in text_status.stdout and "last purge:" in text_status.stdout
    assert json.loads(replica_status.stdout)["read_through"] is None
    wrong = _cli(db_url, config, "sync", "--json")
    assert wrong.returncode == 2 and "--json goes with --status" in wrong.stderr


def test_a_failing_feed_is_warned_about_past_the_threshold_and_shows_as_stale(engine: Engine, rt_population: Path,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    from server.bootstrap import sync_figures
    from server.config import load_settings
    from server.http.health import health_app
    from server.metrics import MetricsSettings
    from tests.unit.test_metrics_logs import _get, _sample

    with fake_of(rt_population, faults=Faults(unavailable_every=1, retry_after=0)) as fake:
        client = PersontjenestenClient(fake.client_settings(retries=0, deadline=1.0))
        stop = threading.Event()
        with SyncLock(engine):
            syncer = Syncer(engine, client, SyncOptions(ALL_PARTS, read_through=True, poll_interval=0.1,
                                                        stale_after=1.0))
            thread = threading.Thread(target=syncer.run, kwargs={"once": False, "stop": stop})
            with caplog.at_level("WARNING", logger="pregbridge.sync"):
                thread.start()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and "has been failing for" not in caplog.text:
                    time.sleep(0.1)
                stop.set()
                thread.join(30)
            syncer.close()
    warned = [r.getMessage() for r in caplog.records if "has been failing for" in r.getMessage()]
    assert warned and "(threshold 1 s)" in warned[0] and "out of date" in warned[0]
    # the metrics: staleness since the last successful read, and the persons purged (a counter)
    with engine.begin() as conn:
        from store.state import set_state

        ten_minutes_ago = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(seconds=600)
        set_state(conn, "sync.last_run", f"{ten_minutes_ago:%Y-%m-%dT%H:%M:%S}Z")
        set_state(conn, "retention.purged_total", "7")
    settings = load_settings(None, env={})
    settings = replace(settings, upstream=replace(settings.upstream, base_url="http://127.0.0.1:9"))
    app = health_app(engine, metrics=MetricsSettings(cache_seconds=0), sync_status=sync_figures(settings, engine))
    status, body = _get(app, "/metrics")
    assert status == "200 OK"
    stale = _sample(body.decode(), "pregbridge_sync_staleness_seconds")
    assert 600 <= stale < 700
    assert _sample(body.decode(), "pregbridge_retention_persons_purged_total") == 7
