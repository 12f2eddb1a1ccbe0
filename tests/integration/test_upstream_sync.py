"""``pregbridge sync`` against the fake Persontjenesten over loopback, on SQLite and PostgreSQL.

The reference is the file way: the same population (as Persontjenesten can carry it) loaded with
``pregbridge load`` and its feed ingested. A synced store must hold exactly the same rows for every person
(document, identifiers, search keys, wash brief, HL7 current view) and every face must answer the same:
PREG getPerson over SOAP for every person (canonical XML, server.replay.compare_xml) and the HL7 PID of every
person under every built-in profile (fast path and general encoder). Then the same under each injected fault,
after ``kill -9`` of the sync process, with a token expiring mid-run, continuing after a file load, and with
merges; a second syncer is refused with exit 3.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from adapters.hl7 import pid_segment
from server.access import BUILTIN_PROFILES, apply_profile
from server.hl7.pid import pid_from_current, pid_release
from server.replay.compare_xml import compare_xml
from store import schema as s
from store.document import load_stored
from store.repository import PersonRepository
from store.synthetic import generate_population
from tests.factories import meta, person_doc
from tests.integration.preg_support import ACCOUNTS, PASSWORD, running_preg
from tests.integration.sync_support import (
    add_persons,
    another_store,
    contract_copy,
    fake_of,
    feed_outcomes,
    loaded,
    position,
    snapshot,
    synced,
    with_special_persons,
)
from upstream.errors import UpstreamUnavailable
from upstream.fake import Faults
from upstream.sync import SyncLock, sync_status

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo population with its feed, plus shared residences and present addresses (as served)."""
    out = tmp_path_factory.mktemp("sync-population")
    generate_population(out, 220, 5, feed_days=4)
    return with_special_persons(out)


@pytest.fixture(scope="module")
def as_loaded(population: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same population as a file load must be given to equal a sync (what the contract can carry)."""
    return contract_copy(population, tmp_path_factory.mktemp("sync-contract") / "pop")


@pytest.fixture
def reference(db_url: str, as_loaded: Path, tmp_path: Path) -> Any:
    with another_store(db_url, tmp_path, "reference") as engine:
        yield loaded(engine, as_loaded)


def _pids(engine: Engine) -> dict[str, list[str]]:
    """Every person's PID under every built-in profile: from its stored view (the PDQ fast path) and from its
    document through the general encoder."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT p.person_key, p.doc, c.current FROM person p JOIN person_current c "
                                 "ON c.person_id = p.id")).all()
    for key, doc, current in rows:
        person = load_stored(doc)
        answers = []
        for profile in BUILTIN_PROFILES.values():
            fast = pid_from_current(current, pid_release(profile), 1)[0]
            assert fast == pid_segment(apply_profile(person, profile), 1)
            answers.append(fast)
        out[key] = answers
    return out


def _get_person_answers(engine: Engine, db_url: str, work: Path) -> dict[str, bytes]:
    """PREG getPerson over SOAP 1.1 for every person's current number, as the full account sees it."""
    with engine.connect() as conn:
        numbers = {key: PersonRepository(conn).get_by_key(key) for key in
                   conn.execute(select(s.person.c.person_key)).scalars()}
    out: dict[str, bytes] = {}
    work.mkdir()
    with running_preg(db_url, work, populated=False, engine=engine) as srv:
        for key, person in numbers.items():
            assert person is not None
            current = person.current_identifier
            if current is None:
                continue
            answer = srv.call("1.1", f"<p:getPerson><p:personnummer>{current.number}</p:personnummer></p:getPerson>",
                              auth=(ACCOUNTS["full"], PASSWORD))
            assert answer.status == 200, key
            out[key] = answer.body
        srv.close()
    return out


def assert_same_store(synced_engine: Engine, reference: Engine) -> None:
    got, want = snapshot(synced_engine), snapshot(reference)
    assert sorted(got) == sorted(want)
    for key, rows in want.items():
        assert got[key] == rows, key


def test_a_synced_population_answers_as_a_loaded_one(db_url: str, engine: Engine, population: Path,
                                                     reference: Engine, tmp_path: Path) -> None:
    with fake_of(population) as fake:
        summary = synced(engine, fake, workers=2)
        latest = fake.latest_sequence
    assert summary.position == latest == position(engine)
    assert summary.rejected == summary.missing == 0
    assert summary.applied >= len(snapshot(reference))
    assert_same_store(engine, reference)
    assert _pids(engine) == _pids(reference)
    got = _get_person_answers(engine, db_url, tmp_path / "a")
    want = _get_person_answers(reference, db_url, tmp_path / "b")
    assert sorted(got) == sorted(want) and len(got) > 200
    for key, body in want.items():
        assert compare_xml(body, got[key]).outcome.value == "identical", key
    shared = [b for b in got.values() if b"kontraktGyldigFra" in b]
    assert shared and any(b"oppholdAnnetSted" in b for b in got.values())  # the new elements reached the face
    outcomes = feed_outcomes(engine)
    assert sorted(outcomes) == list(range(1, latest + 1)) and {o for _, o in outcomes.values()} == {"applied"}


def test_a_rerun_changes_nothing(engine: Engine, population: Path) -> None:
    with fake_of(population) as fake:
        synced(engine, fake)
        before = snapshot(engine)
        again = synced(engine, fake)
    assert again.events == again.applied == 0
    assert snapshot(engine) == before


def test_sync_continues_after_a_file_load(db_url: str, engine: Engine, as_loaded: Path, reference: Engine) -> None:
    from store.loading import load_population

    summary = load_population(engine, as_loaded, workers=1)
    assert summary.feed_position == 0 and position(engine) == 0
    with fake_of(as_loaded, extract=False) as fake:  # the feed only, with the files' own sequence numbers
        result = synced(engine, fake)
    assert result.events == sum(1 for f in (as_loaded / "feed").glob("*.jsonl")
                                for line in f.read_text(encoding="utf-8").splitlines() if line)
    assert_same_store(engine, reference)


FAULTS = {
    "429": Faults(rate_limit_every=6, retry_after=1),
    "503": Faults(unavailable_every=7, retry_after=1),
    "500": Faults(error_every=4),
    "dropped": Faults(drop_every=5),
    "slow": Faults(slow_every=5, slow_seconds=0.3),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_injected_fault_converges(fault: str, sqlite_url: str, population: Path, as_loaded: Path,
                                       tmp_path: Path) -> None:
    from store.engine import make_engine, migrate

    engine = make_engine(sqlite_url)
    migrate(engine)
    with fake_of(population, faults=FAULTS[fault]) as fake:
        summary = synced(engine, fake, read_timeout=5.0)
        assert fake.app.calls.n > summary.pages  # the faults were hit (more calls than pages)
    with another_store(sqlite_url, tmp_path, "ref") as ref:
        assert_same_store(engine, loaded(ref, as_loaded))
    engine.dispose()


def test_every_fault_at_once_on_postgres(pg_url: str, population: Path, as_loaded: Path, tmp_path: Path) -> None:
    from store.engine import make_engine, migrate

    engine = make_engine(pg_url)
    migrate(engine)
    faults = Faults(rate_limit_every=11, unavailable_every=13, error_every=7, drop_every=9, slow_every=17,
                    slow_seconds=0.2, retry_after=1)
    with fake_of(population, faults=faults) as fake:
        synced(engine, fake, read_timeout=5.0)
    with another_store(pg_url, tmp_path, "ref") as ref:
        assert_same_store(engine, loaded(ref, as_loaded))
    engine.dispose()


def test_an_outage_stops_once_records_the_error_and_a_rerun_converges(engine: Engine, population: Path,
                                                                       reference: Engine) -> None:
    with fake_of(population) as fake:
        fake.app.faults = Faults(error_every=1)  # every call fails: the client's retries run out
        with pytest.raises(UpstreamUnavailable):
            synced(engine, fake, retries=1)
        status = sync_status(engine)
        assert status.position == 0 and status.last_error and "UpstreamUnavailable" in status.last_error
        fake.app.faults = Faults()
        synced(engine, fake)
        assert sync_status(engine).last_error in ("", None)
    assert_same_store(engine, reference)


def test_a_person_gone_upstream_is_recorded_and_the_sync_moves_on(engine: Engine, population: Path,
                                                                  reference: Engine) -> None:
    with fake_of(population, faults=Faults(gone_every=25)) as fake:
        summary = synced(engine, fake)
        latest = fake.latest_sequence
    assert summary.missing > 0 and position(engine) == latest
    outcomes = feed_outcomes(engine)
    gone = {key for key, outcome in outcomes.values() if outcome == "missing"}
    assert len(gone) == summary.missing
    got, want = snapshot(engine), snapshot(reference)
    assert sorted(got) == sorted(set(want) - gone)  # an empty store had them not: they stay absent
    assert all(got[k] == want[k] for k in got)
    with engine.connect() as conn:
        rejects = conn.execute(select(s.reject.c.origin, s.reject.c.record_key, s.reject.c.reason)).all()
    assert {r.record_key for r in rejects} == gone and all("404" in r.reason and r.origin == "sync" for r in rejects)


def test_a_person_breaking_a_rule_is_rejected_and_the_sync_moves_on(engine: Engine, population: Path,
                                                                    tmp_path: Path) -> None:
    pop = tmp_path / "pop"
    import shutil

    shutil.copytree(population, pop)
    bad = person_doc("bad-person", given="Kari")
    bad["names"][0]["given"] = None  # Persontjenesten sends a name without a given name
    add_persons(pop, [bad])
    with fake_of(pop) as fake:
        summary = synced(engine, fake)
    assert summary.rejected == 1 and position(engine) == summary.position
    with engine.connect() as conn:
        reject = conn.execute(select(s.reject)).one()
    assert reject.record_key == "bad-person" and "names[0].given" in reject.reason and "Kari" not in reject.reason
    assert "bad-person" not in snapshot(engine)


# -- merges: every ceased number findable on the surviving person ---------------------------------------------


def _merge_population(directory: Path) -> tuple[str, str, str]:
    """Two persons, then a feed: the second is discontinued as a duplicate of the first, the first continues
    with the duplicate's number as a ceased one; a third is discontinued (no survivor)."""
    generate_population(directory, 10, 3, feed_days=0)
    survivor = person_doc("survivor", given="Kari", gender="kvinne")
    keep = survivor["identifiers"][0]["number"]
    duplicate = person_doc("duplicate", given="Kari", gender="kvinne")
    dup_number = duplicate["identifiers"][0]["number"]
    lonely = person_doc("lonely")
    lonely_number = lonely["identifiers"][0]["number"]
    add_persons(directory, [survivor, duplicate, lonely])
    merged = json.loads(json.dumps(survivor))
    merged["identifiers"].append({"number": dup_number, "kind": "fnr", "status": "opphoert",
                                  **meta(False, "1980-05-17", "2026-11-21")})
    gone = json.loads(json.dumps(duplicate))
    gone["identifiers"][0].update(status="opphoert", current=False, validTo="2026-11-21")
    gone["status"] = [{"value": "bosatt", **meta(False)}, {"value": "opphoert", **meta(True, "2026-11-21")}]
    ended = json.loads(json.dumps(lonely))
    ended["identifiers"][0].update(status="opphoert", current=False, validTo="2026-11-22")
    ended["status"] = [{"value": "opphoert", **meta(True, "2026-11-22")}]
    events = [("personErOpphoertSomDublett", gone), ("personErViderefoertPaaAnnetIdentifikasjonsnummer", merged),
              ("personErOpphoert", ended)]
    (directory / "feed").mkdir(exist_ok=True)
    with (directory / "feed" / "0001.jsonl").open("w", encoding="utf-8") as f:
        for n, (kind, doc) in enumerate(events, start=1):
            f.write(json.dumps({"sequenceNumber": n, "eventType": kind, "personId": doc["personId"],
                                "registeredAt": "2026-11-21T08:00:00Z", "person": doc}) + "\n")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["feed"] = ["feed/0001.jsonl"]
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return keep, dup_number, lonely_number


@pytest.mark.parametrize("order", ["duplicate first", "survivor first"])
def test_merges_keep_every_ceased_number_findable_on_the_survivor(engine: Engine, tmp_path: Path,
                                                                  order: str) -> None:
    keep, dup_number, lonely_number = _merge_population(tmp_path / "pop")
    if order == "survivor first":  # the two events the other way round
        feed = tmp_path / "pop" / "feed" / "0001.jsonl"
        lines = feed.read_text().splitlines()
        first, second = json.loads(lines[0]), json.loads(lines[1])
        first["sequenceNumber"], second["sequenceNumber"] = 2, 1
        feed.write_text("\n".join([json.dumps(second), json.dumps(first), lines[2]]) + "\n")
    with fake_of(tmp_path / "pop") as fake:
        summary = synced(engine, fake)
        served = [fake.app.population.event(n) for n in range(1, fake.latest_sequence + 1)]
        event_types = Counter(e.event_type for e in served if e is not None)
    assert event_types["personErOpphoertSomDublett"] == 1
    assert summary.settled_numbers >= 1
    with engine.connect() as conn:
        repo = PersonRepository(conn)
        by_dup, by_keep, by_lonely = repo.find(dup_number), repo.find(keep), repo.find(lonely_number)
    assert by_dup is not None and by_dup.person.person_key == "survivor"
    assert by_dup.matched.status == "opphoert" and by_dup.current is not None and by_dup.current.number == keep
    assert by_keep is not None and by_keep.person.person_key == "survivor"
    assert by_lonely is not None and by_lonely.person.person_key == "lonely"  # no survivor: findable as it is
    assert by_lonely.person.current_status == "opphoert"


# -- the CLI: kill -9, a second syncer, status, token expiry --------------------------------------------------


def _config(path: Path, fake_url: str, **extra: Any) -> Path:
    lines = ["[upstream]", f'base_url = "{fake_url}"', "backoff_initial = 0.01", "backoff_max = 0.05",
             "read_timeout = 5.0", "poll_interval = 0.5"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cli(db_url: str, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "server", "--config", str(config), "--database-url", db_url,
            "--data-dir", str(config.parent), *args]


def test_kill_9_mid_page_then_a_rerun_converges(db_url: str, engine: Engine, population: Path, reference: Engine,
                                               tmp_path: Path) -> None:
    rng = random.Random(14)
    with fake_of(population, faults=Faults(slow_every=3, slow_seconds=0.25)) as fake:
        config = _config(tmp_path / "pregbridge.toml", fake.base_url, parallelism=2)
        kills = 0
        for _ in range(3):
            before = position(engine)
            proc = subprocess.Popen(_cli(db_url, config, "sync", "--once"), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, cwd=REPO)
            time.sleep(1.0 + rng.random() * 2.0)  # the CLI starts, then fetches, maps and applies pages
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(30)
            assert position(engine) >= before
        assert kills >= 1
        done = subprocess.run(_cli(db_url, config, "sync", "--once"), capture_output=True, text=True, cwd=REPO,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        latest = fake.latest_sequence
    assert position(engine) == latest
    outcomes = feed_outcomes(engine)
    assert sorted(outcomes) == list(range(1, latest + 1))  # every event recorded once: none twice, none skipped
    assert_same_store(engine, reference)


def test_a_second_syncer_is_refused_with_exit_3(db_url: str, engine: Engine, population: Path,
                                                tmp_path: Path) -> None:
    with fake_of(population) as fake:
        config = _config(tmp_path / "pregbridge.toml", fake.base_url)
        with SyncLock(engine):
            second = subprocess.run(_cli(db_url, config, "sync", "--once"), capture_output=True, text=True,
                                    cwd=REPO, timeout=120)
            status = subprocess.run(_cli(db_url, config, "sync", "--status"), capture_output=True, text=True,
                                    cwd=REPO, timeout=120)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "another syncer" in second.stdout + second.stderr
        assert position(engine) == 0
        assert "syncer:          running" in status.stdout
        first = subprocess.run(_cli(db_url, config, "sync", "--once"), capture_output=True, text=True, cwd=REPO,
                               timeout=300)
        assert first.returncode == 0, first.stderr
        status = subprocess.run(_cli(db_url, config, "sync", "--status"), capture_output=True, text=True, cwd=REPO,
                                timeout=120)
        latest = fake.latest_sequence
    assert status.returncode == 0
    assert f"position:        {latest}" in status.stdout and f"upstream latest: {latest}" in status.stdout
    assert "lag:             0 events" in status.stdout and "syncer:          not running" in status.stdout
    assert "last error:      none" in status.stdout


def test_a_token_expiring_mid_run_is_renewed(engine: Engine, population: Path, reference: Engine,
                                             tmp_path: Path) -> None:
    from tests.upstream.conftest import ClientKey
    from upstream.fake import FakeAuth
    from upstream.spec import SCOPES

    key = ClientKey(tmp_path, "EC")
    auth = FakeAuth({key.client_id: (key.public, frozenset(SCOPES.values()))}, token_lifetime=3600)
    with fake_of(population, auth=auth, faults=Faults(slow_every=4, slow_seconds=0.1)) as fake:
        helseid = fake.app.helseid
        assert helseid is not None
        original, issue = fake.app.population.version, helseid.token
        calls = {"versions": 0, "tokens": 0}

        def version(person_id: str, upto: int) -> Any:
            calls["versions"] += 1
            if calls["versions"] == 100:  # mid-page: every token issued so far now answers 401 as expired
                helseid.expire_tokens()
            return original(person_id, upto)

        def token(*args: Any, **kwargs: Any) -> Any:
            issued = issue(*args, **kwargs)  # a refusal (the DPoP nonce challenge first) raises: not counted
            calls["tokens"] += 1
            return issued

        fake.app.population.version = version  # type: ignore[method-assign]
        helseid.token = token  # type: ignore[method-assign]
        synced(engine, fake, **key.settings(fake))
    # one token, then one renewal after the 401, shared by every request that was in flight with the old token
    assert calls["versions"] > 100 and calls["tokens"] == 2
    assert_same_store(engine, reference)


def test_unknown_values_are_logged_by_type_only(engine: Engine, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from upstream import mapping

    generate_population(tmp_path / "pop", 5, 2, feed_days=0)
    doc = person_doc("odd", given="Oddveig")
    add_persons(tmp_path / "pop", [doc])
    real = mapping.person_json

    def odd(d: Any, **kw: Any) -> dict[str, Any]:
        out = real(d, **kw)
        if d["personId"] == "odd":
            out["maritalStatus"][0]["status"] = "SecretValue"
        return out

    with pytest.MonkeyPatch.context() as mp, fake_of(tmp_path / "pop") as fake:
        mp.setattr(mapping, "person_json", odd)
        with caplog.at_level("INFO"):
            summary = synced(engine, fake)
    assert summary.unknown == Counter({"MaritalStatusType": 1})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "MaritalStatusType" in logged
    assert "SecretValue" not in logged and "Oddveig" not in logged
    with engine.connect() as conn:
        person = PersonRepository(conn).get_by_key("odd")
    assert person is not None and person.marital_status[0].value == "uoppgitt"


def test_serve_with_sync_runs_the_syncer_beside_the_server(sqlite_url: str, population: Path,
                                                            tmp_path: Path) -> None:
    import socket
    import urllib.request

    from store.engine import make_engine, migrate

    engine = make_engine(sqlite_url)
    migrate(engine)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with fake_of(population) as fake:
        config = _config(tmp_path / "pregbridge.toml", fake.base_url)
        serve = subprocess.Popen(_cli(sqlite_url, config, "serve", "--sync", "--port", str(port), "--workers", "1"),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            deadline = time.monotonic() + 240
            while position(engine) < fake.latest_sequence and time.monotonic() < deadline:
                time.sleep(0.5)
            assert position(engine) == fake.latest_sequence
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as answer:
                assert answer.status == 200
            assert SyncLock(engine).held_elsewhere()  # the syncer still follows the feed
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(120)
    assert not SyncLock(engine).held_elsewhere()  # stopped with the server: the lock is free
    engine.dispose()
