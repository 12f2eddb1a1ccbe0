"""``pregbridge sync`` in read-through mode against the fake Persontjenesten over loopback, SQLite and PostgreSQL.

The oracle is a replica synced from the same feed: for every person the read-through store holds, its rows
(document, identifiers, search keys, wash brief, HL7 current view) are the replica's; the read-through store
fetched nobody else (the fake's served persons are counted), recorded no event of anybody else, and its position
reached the end. Merges touching a held person apply as in the replica; ``kill -9`` mid-page and a rerun converge.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from store.repository import PersonRepository
from store.retention import last_purge, purge, touch_asked
from tests.integration.sync_support import another_store, fake_of, feed_outcomes, position, snapshot
from tests.integration.test_upstream_sync import _merge_population
from tests.readthrough_feed.conftest import FetchCount, changed_ids, feed_person_ids, run_sync, seed
from upstream.fake import Faults, RunningFake
from upstream.readthrough_feed import HeldMeanwhile, ReadThroughFeed

REPO = Path(__file__).resolve().parents[2]


def _held_sample(fake: RunningFake, n: int) -> list[str]:
    """``n`` persons of the extract, half of them changed by the feed after it, half not."""
    extract = feed_person_ids(fake)[: fake.extract_size]
    changed = sorted(changed_ids(fake).intersection(extract))
    quiet = [k for k in extract if k not in set(changed)]
    rng = random.Random(18)
    some = rng.sample(changed, min(n // 2, len(changed)))
    return some + rng.sample(quiet, n - len(some))


def assert_held_as_replica(store: Engine, replica: Engine, held: list[str]) -> None:
    got, want = snapshot(store), snapshot(replica)
    assert sorted(got) == sorted(held)
    for key in held:
        assert got[key] == want[key], key


def test_only_held_persons_are_fetched_and_end_as_the_replica(db_url: str, engine: Engine, rt_population: Path,
                                                              tmp_path: Path) -> None:
    with fake_of(rt_population) as fake:
        held = _held_sample(fake, 12)
        everyone = feed_person_ids(fake)
        assert len(everyone) >= 240 and fake.latest_sequence > fake.extract_size
        seed(engine, fake, held, at=fake.extract_size)
        with FetchCount(fake).counting() as fetched:
            summary = run_sync(engine, fake, read_through=True, workers=2)
        with another_store(db_url, tmp_path, "replica") as replica:
            full = run_sync(replica, fake, read_through=False)
            assert full.applied >= len(everyone)
            # only held persons were asked for, each once per page naming it (one page here)
            assert set(fetched.counts) == set(held)
            assert all(n == 1 for n in fetched.counts.values())
            assert position(engine) == fake.latest_sequence == position(replica)
            assert summary.applied == len(held) and summary.skipped > 0
            assert summary.skipped + sum(1 for k, _ in feed_outcomes(engine).values() if k) == summary.events
            assert_held_as_replica(engine, replica, held)
            # the events recorded are exactly the held persons' ones, with the replica's outcomes
            theirs = {seq: o for seq, o in feed_outcomes(replica).items() if o[0] in set(held)}
            assert feed_outcomes(engine) == theirs != {}


def test_pages_skipped_whole_move_the_position_and_a_rerun_changes_nothing(engine: Engine,
                                                                          rt_population: Path) -> None:
    with fake_of(rt_population) as fake:
        with FetchCount(fake).counting() as fetched:
            summary = run_sync(engine, fake, read_through=True)  # an empty store: every event skipped
        assert fetched.counts == {} and summary.skipped == summary.events == fake.latest_sequence
        assert position(engine) == fake.latest_sequence and feed_outcomes(engine) == {}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM person")).scalar() == 0
        held = _held_sample(fake, 4)
        seed(engine, fake, held, at=fake.latest_sequence)
        before = snapshot(engine)
        with FetchCount(fake).counting() as fetched:
            again = run_sync(engine, fake, read_through=True)
        assert again.events == 0 and fetched.counts == {} and snapshot(engine) == before


def test_merges_touching_a_held_person_apply_as_in_the_replica(db_url: str, engine: Engine, tmp_path: Path) -> None:
    keep, dup_number, lonely_number = _merge_population(tmp_path / "pop")
    with fake_of(tmp_path / "pop") as fake:
        seed(engine, fake, ["duplicate"], at=fake.extract_size)  # this site knows the duplicate only
        with FetchCount(fake).counting() as fetched:
            summary = run_sync(engine, fake, read_through=True)
        assert set(fetched.counts) == {"duplicate", "survivor"}  # the survivor of a merge, to see what it touches
        assert summary.settled_numbers >= 1
        with another_store(db_url, tmp_path, "replica") as replica:
            run_sync(replica, fake, read_through=False)
            assert_held_as_replica(engine, replica, ["duplicate", "survivor"])
            with engine.connect() as conn, replica.connect() as rconn:
                mine, theirs = PersonRepository(conn).find(dup_number), PersonRepository(rconn).find(dup_number)
            assert mine is not None and theirs is not None
            assert mine.person.person_key == theirs.person.person_key == "survivor"
            assert mine.current is not None and mine.current.number == keep
        # a store that knows neither side of the merge: the survivor is fetched, touches nothing, is not stored
        with another_store(db_url, tmp_path, "lonely") as other:
            seed(other, fake, ["lonely"], at=fake.extract_size)
            run_sync(other, fake, read_through=True)
            assert sorted(snapshot(other)) == ["lonely"]
            with other.connect() as conn:
                found = PersonRepository(conn).find(lonely_number)
            assert found is not None and found.person.current_status == "opphoert"


class _Page:
    """A stand-in for upstream.sync's page (the hooks read these fields only)."""

    def __init__(self, rt: ReadThroughFeed, events: list[Any]) -> None:
        self.read_through = rt.select(events)
        self.seqs = {ev.person_id: ev.sequence_number for ev in events}
        self.persons: list[Any] = []
        self.settle: list[str] = []
        self.rejects: list[tuple[str, str, str]] = []
        self.missing: list[str] = []


def test_the_transaction_checks_again_what_the_store_holds(engine: Engine, rt_population: Path) -> None:
    """A person stored after the filter makes the page be fetched again; one deleted after it is not written back."""
    with fake_of(rt_population) as fake:
        first, second, third = _held_sample(fake, 3)
        seed(engine, fake, [first, second], at=fake.latest_sequence)
        events = [fake.app.population.event(n) for n in range(1, fake.latest_sequence + 1)]
        page_events = [ev for ev in events if ev is not None and ev.person_id in (first, second, third)]
        rt = ReadThroughFeed(engine)
        page = _Page(rt, page_events)
        assert page.read_through.held == {first, second} and page.read_through.fetch == sorted([first, second])
        seed(engine, fake, [third], at=fake.latest_sequence)  # a face stores the third meanwhile
        with engine.begin() as conn, pytest.raises(HeldMeanwhile):
            rt.recheck(conn, page)
        page = _Page(rt, page_events)
        assert page.read_through.held == {first, second, third}
        with engine.begin() as conn:  # the second is purged meanwhile
            pid = PersonRepository(conn).id_for_key(second)
            assert pid is not None
            touch_asked(conn, [pid], dt.datetime(2000, 1, 1))
        assert purge(engine, 90).persons == 1
        with engine.begin() as conn:
            rt.recheck(conn, page)
        assert page.read_through.held == {first, third}
        assert {ev.person_id for ev in ReadThroughFeed.recorded(page, page_events)} == {first, third}


def _config(path: Path, fake_url: str, **extra: Any) -> Path:
    import json

    lines = ["[upstream]", f'base_url = "{fake_url}"', "backoff_initial = 0.01", "backoff_max = 0.05",
             "read_timeout = 5.0", "poll_interval = 0.5", 'mode = "read-through"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli(db_url: str, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "server", "--config", str(config), "--database-url", db_url,
            "--data-dir", str(config.parent), *args]


def test_kill_9_mid_page_then_a_rerun_converges(db_url: str, engine: Engine, rt_population: Path,
                                               tmp_path: Path) -> None:
    rng = random.Random(18)
    with fake_of(rt_population, faults=Faults(slow_every=2, slow_seconds=0.6)) as fake:
        held = _held_sample(fake, 40)
        seed(engine, fake, held, at=fake.extract_size)
        config = _config(tmp_path / "pregbridge.toml", fake.base_url, parallelism=2)
        kills = 0
        for _ in range(3):
            before = position(engine)
            proc = subprocess.Popen(_cli(db_url, config, "sync", "--once"), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=REPO)
            time.sleep(1.0 + rng.random() * 2.0)  # the CLI starts, then fetches, maps and applies its page
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
            assert position(engine) >= before
        assert kills >= 1
        done = subprocess.run(_cli(db_url, config, "sync", "--once"), capture_output=True, text=True, cwd=REPO,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert "skipped (persons not held)" in done.stdout
        with engine.connect() as conn:  # the CLI's syncer ran the retention purge (nothing expired here)
            assert last_purge(conn) is not None and last_purge(conn)[1] == 0  # type: ignore[index]
        with another_store(db_url, tmp_path, "replica") as replica:
            run_sync(replica, fake, read_through=False)
            assert position(engine) == fake.latest_sequence
            assert_held_as_replica(engine, replica, held)
            theirs = {seq: o for seq, o in feed_outcomes(replica).items() if o[0] in set(held)}
            assert feed_outcomes(engine) == theirs  # every held person's event once: none twice, none skipped
