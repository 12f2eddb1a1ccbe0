"""Durable Filematch jobs on SQLite and PostgreSQL: lifecycle, audit, cancel, purge, lost claims, and
crash-and-resume with a real worker process killed with SIGKILL mid-job (every record exactly once)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from filematch.jobs import JobEvent, JobSettings, JobStateError, JobStore
from filematch.worker import Worker
from tests.integration.test_filematch_pipeline import EXPECTED, FIX, load_persons

ROOT = Path(__file__).parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 22, 12, 0, 0)

    def __call__(self) -> dt.datetime:
        return self.now


def run_all(jobs: JobStore) -> None:
    worker = Worker(jobs, worker_id="w1")
    while worker.run_once():
        pass


def codes(data: bytes) -> list[tuple[str, str]]:
    return [(r["ref"], r["code"]) for r in csv.DictReader(io.StringIO(data.decode(), newline=""), delimiter=";")]


def test_job_lifecycle_and_audit(engine: Engine) -> None:
    load_persons(engine)
    events: list[JobEvent] = []
    clock = Clock()
    jobs = JobStore(engine, JobSettings(chunk_size=4), audit=events.append, clock=clock)
    info = jobs.submit(FIX / "wash-crlf.csv", "csv", account="kari", profile="full")
    assert (info.status, info.records, info.chunks) == ("queued", 15, 4)
    with pytest.raises(JobStateError):
        jobs.result(info.id)
    run_all(jobs)
    done = jobs.get(info.id)
    assert done is not None and done.status == "done" and done.progress == 1.0
    data = b"".join(jobs.result(info.id, account="kari"))
    assert dict(codes(data)) == EXPECTED and data.count(b"\r\n") == 16
    report = jobs.report(info.id)
    assert report.records == 15 and report.counts["PROTECTED"] == 2 and report.counts["INVALID"] == 3
    assert [e.operation for e in events] == ["filematch.submit", "filematch.wash", "filematch.fetch"]
    assert events[1].account == "kari" and events[1].records == 15 and len(events[1].numbers) >= 10
    with pytest.raises(JobStateError):
        jobs.cancel(info.id)
    clock.now += dt.timedelta(days=8)
    assert jobs.purge() == 1 and jobs.get(info.id) is None


def test_cancel_and_bad_file(engine: Engine) -> None:
    jobs = JobStore(engine, JobSettings(chunk_size=4))
    info = jobs.submit(FIX / "wash-lf.csv", "csv", account="a", profile="full")
    assert jobs.cancel(info.id).status == "cancelled"
    assert jobs.claim("w") is None
    from filematch.records import FileFormatError

    with pytest.raises(FileFormatError):
        jobs.submit(FIX / "bad" / "missing-column.csv", "csv", account="a", profile="full")
    with pytest.raises(FileFormatError):
        jobs.submit(FIX / "bad" / "truncated.xml", "xml", account="a", profile="full")
    from sqlalchemy import func, select

    from store import schema as s

    with engine.connect() as conn:  # a refused file leaves nothing behind
        assert conn.execute(select(func.count()).select_from(s.filematch_job)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(s.filematch_chunk)
                            .where(s.filematch_chunk.c.job_id != info.id)).scalar_one() == 0


def test_lost_claim_cannot_write_twice(engine: Engine) -> None:
    load_persons(engine)
    clock = Clock()
    jobs = JobStore(engine, JobSettings(chunk_size=100, lease_seconds=60), clock=clock)
    info = jobs.submit(FIX / "wash-lf.csv", "csv", account="a", profile="full")
    first = jobs.claim("A")
    assert first is not None and jobs.claim("B") is None  # leased
    clock.now += dt.timedelta(seconds=61)
    second = jobs.claim("B")
    assert second is not None and second.chunk_no == first.chunk_no
    from collections import Counter

    assert jobs.complete(first, b"stale\n", Counter(), []) is False
    assert jobs.complete(second, b"fresh\n", Counter({"UNCHANGED": 15}), []) is True
    assert b"".join(jobs.result(info.id)).endswith(b"fresh\n")


def test_failing_chunk_fails_the_job_after_max_attempts(engine: Engine) -> None:
    jobs = JobStore(engine, JobSettings(chunk_size=100, max_attempts=2))
    info = jobs.submit(FIX / "wash-lf.csv", "csv", account="a", profile="nosuchprofile")

    def release_for(name: str):  # type: ignore[no-untyped-def]
        raise LookupError(name)

    worker = Worker(jobs, release_for, worker_id="w")
    while worker.run_once():
        pass
    failed = jobs.get(info.id)
    assert failed is not None and failed.status == "failed" and "failed 2 times" in (failed.error or "")


def _worker(db_url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "server.filematch_cli", "--database-url", db_url, "filematch",
                             "worker", "--lease", "1", "--idle", "0.05"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def test_kill_9_mid_job_then_resume_answers_every_record_once(db_url: str, engine: Engine, tmp_path: Path) -> None:
    load_persons(engine)
    lines = (FIX / "wash-lf.csv").read_text(encoding="utf-8").splitlines()
    src = tmp_path / "big.csv"
    with src.open("w", encoding="utf-8", newline="\n") as f:
        f.write(lines[0] + "\n")
        for i in range(40):
            for line in lines[1:]:
                f.write(f"{i:03d}{line}\n")
    jobs = JobStore(engine, JobSettings(chunk_size=5))
    info = jobs.submit(src, "csv", account="a", profile="full")
    assert info.records == 600 and info.chunks == 120
    proc = _worker(db_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = jobs.get(info.id)
            assert now is not None
            if now.done_chunks >= 3:
                break
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    mid = jobs.get(info.id)
    assert mid is not None and mid.status == "running" and 3 <= mid.done_chunks < info.chunks
    proc = _worker(db_url)
    try:
        deadline = time.monotonic() + 60
        while (cur := jobs.get(info.id)) is not None and cur.status != "done" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert cur is not None and cur.status == "done", jobs.chunk_states(info.id)
    answered = codes(b"".join(jobs.result(info.id)))
    refs = [ref for ref, _ in answered]
    expected_refs = [f"{i:03d}{line.split(';')[0]}" for i in range(40) for line in lines[1:]]
    assert refs == expected_refs  # every record exactly once, in input order
    assert all(code == EXPECTED[ref[3:]] for ref, code in answered)
