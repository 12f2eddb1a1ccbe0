"""Filematch over HTTP at full scale: the issue's "done when" — a file of ``max(--num)`` records uploaded over
HTTP is washed, survives a ``kill -9`` of a worker, and is downloaded complete.

On the store ``benchmarks/out/store-<n>.sqlite`` (or ``--dburl``) with the input CSV of bench_filematch
(``filematch-in-<n>-<seed>-draw<d>.csv``: ``--draw`` persons at random, made by its ``_input`` from
``pop-<n>-<seed>/persons.jsonl``):

1. **server**: gunicorn (production worker options, ``--timeout 60`` as server.runner, 2 processes) serving
   pregbridge's own application (server.bootstrap, :func:`app`) with ``filematch.background_workers = 0``
   (``PREGBRIDGE_FILEMATCH_WORKERS=0``), so that only separate ``pregbridge filematch worker`` processes
   wash; account ``bench-filematch``, profile ``full``;
2. **upload**: the file as multipart/form-data with ``http.client``, streamed from disk; timed until the
   202, which includes spooling and splitting into chunks in the store (the time until the body was sent
   is printed too);
3. **wash**: ``WORKERS`` worker processes (one per core, at most 2; ``--lease LEASE``), the job polled over
   HTTP; once 30 % of its chunks are done one worker's process group gets SIGKILL and a replacement is
   started; the chunk it had claimed is washed again after the lease. Timed from the 202 until ``done``;
4. **download**: ``GET …/result`` streamed to a temporary file, then checked streaming it against the input
   line by line (memory stays flat): every input ``ref`` exactly once, in input order; the counts per code
   equal ``GET …/report``; the total equals the input's record count;
5. the job is then deleted over HTTP (``DELETE`` of a finished job: 204), or with SQL when the run broke off
   before it finished. Its audit records stay, as they must. SQLite reuses the freed pages; the file does
   not shrink (no VACUUM on a shared store).

Also, for comparison, a local wash (``filematch.local.wash_file``, 2 processes) of the first 100k records.
Client, server and workers share the machine's cores, so the figures are a lower bound. The wash time runs
from the 202 to the first poll that sees ``done``: it includes the workers' start (~2 s), the lease the
killed worker's chunk waits out, and the wait of status polls for SQLite's write lock (printed: median and
largest poll, and how long after the job's own finish time ``done`` was seen).

Run: ``python -m benchmarks filematch-http --num 1000000`` (suite ``filematch-http``), or on its own
``python -m benchmarks.bench_filematch_http 1000000``.
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import gc
import http.client
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from benchmarks.harness import BENCH_PASSWORD, OUT, GunicornServer, Result, bench_account

__all__ = ["app", "run"]

ROOT = Path(__file__).parents[1]
USER = "bench-filematch"
PREFIX = "/filematch/v1"
WORKERS = min(2, os.cpu_count() or 1)
SERVER_PROCESSES = 2  # http.workers' default
LEASE = 10.0  # seconds before the killed worker's chunk is taken again
KILL_AT = 0.30  # fraction of chunks done when a worker is killed
BLOCK = 1 << 16
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def app() -> WsgiApp:
    """gunicorn factory: pregbridge's own HTTP application (server.bootstrap), with the settings of the
    environment (PREGBRIDGE_FILEMATCH_WORKERS=0: no washer threads in the server processes)."""
    from server.bootstrap import build_wsgi_app
    from server.config import load_settings

    wsgi = build_wsgi_app(load_settings())
    gc.freeze()  # as server.runner does in every worker
    return wsgi


class _Client:
    """HTTP Basic requests to the server, one connection each (gunicorn's sync workers close it anyway)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.auth = "Basic " + base64.b64encode(f"{USER}:{BENCH_PASSWORD}".encode()).decode()

    def connect(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def json(self, method: str, path: str) -> Any:
        conn = self.connect()
        try:
            conn.request(method, PREFIX + path, headers={"Authorization": self.auth})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {body[:200]!r}")
            return json.loads(body)
        finally:
            conn.close()

    def delete(self, job: str) -> bool:
        """DELETE a finished job (204); False if the server did not delete it."""
        conn = self.connect()
        try:
            conn.request("DELETE", f"{PREFIX}/jobs/{job}", headers={"Authorization": self.auth})
            resp = conn.getresponse()
            resp.read()
            return resp.status == 204
        except OSError:
            return False
        finally:
            conn.close()

    def upload(self, src: Path) -> tuple[dict[str, Any], float, float]:
        """POST the file as multipart/form-data, streamed; (job JSON, seconds until sent, seconds until 202)."""
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\ncsv\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{src.name}\"\r\n"
                "Content-Type: text/csv\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        conn = self.connect(timeout=1800)
        t = time.perf_counter()
        try:
            conn.putrequest("POST", PREFIX + "/jobs")
            conn.putheader("Authorization", self.auth)
            conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
            conn.putheader("Content-Length", str(len(head) + src.stat().st_size + len(tail)))
            conn.endheaders()
            conn.send(head)
            with src.open("rb") as f:
                while block := f.read(BLOCK):
                    conn.send(block)
            conn.send(tail)
            sent = time.perf_counter() - t
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 202:
                raise RuntimeError(f"upload: {resp.status} {body[:300]!r}")
            return json.loads(body), sent, time.perf_counter() - t
        finally:
            conn.close()

    def download(self, job: str, sink: IO[bytes]) -> int:
        conn = self.connect(timeout=600)
        try:
            conn.request("GET", f"{PREFIX}/jobs/{job}/result", headers={"Authorization": self.auth})
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(f"download: {resp.status} {resp.read()[:300]!r}")
            size = 0
            while block := resp.read(BLOCK):
                sink.write(block)
                size += len(block)
            return size
        finally:
            conn.close()


def _worker(url: str, data_dir: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A ``pregbridge filematch worker`` process in its own process group (as tests/integration do)."""
    return subprocess.Popen([sys.executable, "-m", "server.filematch_cli", "--database-url", url, "--data-dir",
                             str(data_dir), "filematch", "worker", "--lease", str(LEASE), "--idle", "0.2"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _verify(src: Path, answer: Path, report_counts: dict[str, int]) -> tuple[int, list[str]]:
    """Stream the input and the answer side by side: (records answered, problems found)."""
    problems: list[str] = []
    counts: Counter[str] = Counter()
    n = 0
    with src.open(encoding="utf-8", newline="") as fi, answer.open(encoding="utf-8", newline="") as fo:
        rin, rout = csv.reader(fi, delimiter=";"), csv.reader(fo, delimiter=";")
        hin, hout = next(rin), next(rout)
        iref, oref, ocode = hin.index("ref"), hout.index("ref"), hout.index("code")
        for row_in, row_out in zip(rin, rout, strict=False):
            n += 1
            if row_in[iref] != row_out[oref] and len(problems) < 5:
                problems.append(f"record {n}: ref {row_in[iref]!r} answered as {row_out[oref]!r}")
            counts[row_out[ocode]] += 1
        extra_in, extra_out = sum(1 for _ in rin), sum(1 for _ in rout)
    if extra_in or extra_out:
        problems.append(f"{extra_in} input records unanswered, {extra_out} answers beyond the input")
    if +counts != +Counter(report_counts):
        problems.append(f"counts of the answer {dict(counts)} differ from the report {report_counts}")
    return n + extra_out, problems


def _records(src: Path) -> int:
    with src.open("rb") as f:
        return sum(1 for line in f if line.strip()) - 1


def _claimed_by(url: str, job: str, pid: int) -> list[int]:
    """The job's chunks left ``running`` by the worker process ``pid`` (its worker id is host:pid:random)."""
    from sqlalchemy import select

    from store import schema as s
    from store.engine import make_engine

    engine = make_engine(url)
    c = s.filematch_chunk
    with engine.connect() as conn:
        rows = conn.execute(select(c.c.chunk_no).where(c.c.job_id == job, c.c.status == "running",
                                                       c.c.locked_by.like(f"%:{pid}:%"))).scalars().all()
    engine.dispose()
    return [int(r) for r in rows]


def _chunks(url: str, job: str) -> tuple[dict[int, int], dict[str, int]]:
    """(attempts of each chunk claimed more than once, chunks per state) of the job, read from the store."""
    from sqlalchemy import func, select

    from store import schema as s
    from store.engine import make_engine

    engine = make_engine(url)
    c = s.filematch_chunk
    with engine.connect() as conn:
        again = {int(k): int(v) for k, v in conn.execute(select(c.c.chunk_no, c.c.attempts)
                                                         .where(c.c.job_id == job, c.c.attempts > 1))}
        states = {str(k): int(v) for k, v in conn.execute(select(c.c.status, func.count())
                                                          .where(c.c.job_id == job).group_by(c.c.status))}
    engine.dispose()
    return again, states


def _delete_job(url: str, job: str) -> None:
    from sqlalchemy import delete

    from store import schema as s
    from store.engine import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(s.filematch_chunk).where(s.filematch_chunk.c.job_id == job))
        conn.execute(delete(s.filematch_job).where(s.filematch_job.c.id == job))
    engine.dispose()


def run(args: argparse.Namespace) -> Iterator[Result]:
    from benchmarks.bench_filematch import _head, _input, _wash
    from store.engine import make_engine, migrate

    n = max(args.num)
    store = OUT / f"store-{n}.sqlite"
    persons = OUT / f"pop-{n}-{args.seed}" / "persons.jsonl"
    if (not args.dburl and not store.is_file()) or not persons.is_file():
        raise SystemExit(f"{store} / {persons} missing: run `python -m benchmarks store --num {n}` first")
    url = args.dburl or f"sqlite:///{store}"
    src = _input(n, args.seed, persons, min(n, args.draw or 1_000_000))
    records, size_mb = _records(src), src.stat().st_size / 1e6
    engine = make_engine(url)
    migrate(engine)
    bench_account(engine, USER)
    engine.dispose()

    tmp = Path(tempfile.mkdtemp(prefix="bench-filematch-http-"))
    env = dict(os.environ, PREGBRIDGE_DATABASE_URL=url, PREGBRIDGE_DATA_DIR=str(tmp), PYTHONWARNINGS="ignore",
               PREGBRIDGE_FILEMATCH_WORKERS="0",
               GUNICORN_CMD_ARGS="--timeout 60")  # server.runner's timeout
    server = GunicornServer("benchmarks.bench_filematch_http:app()", SERVER_PROCESSES, env, "/health")
    client = _Client(server.port)
    workers: list[subprocess.Popen[bytes]] = []
    job: str | None = None
    log = (tmp / "workers.log").open("wb")
    try:
        info, sent, up = client.upload(src)
        job = str(info["job"])
        t_wash = time.perf_counter()
        print(f"# job {job}: {info['records']:,} records in {info['chunks']:,} chunks; body sent in {sent:.1f} s, "
              f"split and answered 202 {up - sent:.1f} s later", flush=True)
        yield Result("upload (multipart, split into chunks)", records, up,
                     f"{size_mb / up:.1f} MB/s ({size_mb:.0f} MB)")

        workers = [_worker(url, tmp, log) for _ in range(WORKERS)]
        killed_at: dict[str, Any] | None = None
        lost: list[int] = []
        after_kill: list[tuple[float, int]] = []
        polls: list[float] = []  # latency of each status request
        while True:
            t = time.perf_counter()
            now = client.json("GET", f"/jobs/{job}")
            polls.append(time.perf_counter() - t)
            if now["status"] in ("done", "failed", "cancelled"):
                break
            if killed_at is None and now["doneChunks"] >= KILL_AT * now["chunks"]:
                victim = workers.pop(0)
                os.killpg(victim.pid, signal.SIGKILL)
                victim.wait(10)
                killed_at = dict(now, at=time.perf_counter() - t_wash)
                workers.append(_worker(url, tmp, log))
                lost = _claimed_by(url, job, victim.pid)
                print(f"# SIGKILL worker pid {victim.pid} at {now['doneChunks']:,}/{now['chunks']:,} chunks "
                      f"({now['progress'] * 100:.1f} %, {killed_at['at']:.1f} s into the wash), holding chunk(s) "
                      f"{lost}; replacement started", flush=True)
            elif killed_at is not None and len(after_kill) < 3 and now["doneChunks"] > killed_at["doneChunks"]:
                after_kill.append((time.perf_counter() - t_wash, now["doneChunks"]))
            time.sleep(0.2)
        wash_s = time.perf_counter() - t_wash
        seen = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if now["status"] != "done":
            raise RuntimeError(f"the job ended {now['status']}: {now.get('error')}")
        finished = dt.datetime.fromisoformat(str(now["finished"]).rstrip("Z"))
        polls.sort()
        print(f"#   {len(polls)} status polls: median {polls[len(polls) // 2] * 1000:.0f} ms, "
              f"max {polls[-1] * 1000:.0f} ms; done seen {(seen - finished).total_seconds():.1f} s after the job's "
              f"finish time (whole seconds)", flush=True)
        again, states = _chunks(url, job)
        # the job went on after the kill, and the chunk the killed worker held was washed again
        went_on = killed_at is not None and bool(after_kill) and all(again.get(c, 0) >= 2 for c in lost)
        kill_note = (f"kill at {killed_at['progress'] * 100:.0f} %" + (f", its chunk {lost} redone" if lost else
                                                                         ", it held no chunk")
                     if killed_at else "no kill (too fast?)")
        yield Result("wash over HTTP (2 workers, 1 killed)", records, wash_s,
                     f"{records / wash_s:,.0f} rec/s, {kill_note}",
                     target="job resumes after kill -9", ok=went_on)
        print(f"#   after the kill: done chunks {[c for _, c in after_kill]} at "
              f"{[round(t, 1) for t, _ in after_kill]} s; chunks claimed more than once (chunk: attempts): {again}; "
              f"chunk states {states}", flush=True)

        report = client.json("GET", f"/jobs/{job}/report")
        answer = tmp / "answer.csv"
        t = time.perf_counter()
        with answer.open("wb") as sink:
            size = client.download(job, sink)
        down = time.perf_counter() - t
        yield Result("download (streamed)", records, down, f"{size / 1e6 / down:.1f} MB/s ({size / 1e6:.0f} MB)")

        t = time.perf_counter()
        answered, problems = _verify(src, answer, report["counts"])
        ok = not problems and answered == records == report["records"]
        for p in problems:
            print(f"#   PROBLEM: {p}", flush=True)
        print(f"#   report: {report['records']:,} records, {report.get('rowsPerSecond')} rows/s as the server "
              f"saw it; counts {({k: v for k, v in report['counts'].items() if v})}", flush=True)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"#   this process's peak RSS {rss:.0f} MB", flush=True)
        yield Result(f"complete: {answered:,} records, each once", answered, time.perf_counter() - t,
                     "refs in input order, counts = report", target="every record exactly once", ok=ok)
    finally:
        _stop(workers)
        deleted = job is not None and client.delete(job)
        server.stop()
        log.close()
        if job is not None and not deleted:
            _delete_job(url, job)
        if job is not None:
            print(f"# job {job} deleted from the store ({'DELETE' if deleted else 'SQL'})", flush=True)
        errors = (tmp / "workers.log").read_text(errors="replace").strip()
        if errors:
            print("# worker stderr (tail):\n" + "\n".join("#   " + ln for ln in errors.splitlines()[-10:]))
        shutil.rmtree(tmp, ignore_errors=True)

    res = _wash(url, _head(src, 100_000) if records > 100_000 else src)
    secs, rows = float(res["seconds"]), int(res["records"])  # type: ignore[arg-type,call-overload]
    yield Result(f"local wash, first {rows:,} (reference)", rows, secs, f"{rows / secs:,.0f} rec/s")


if __name__ == "__main__":  # pragma: no cover - a quick run without the suite registry
    ns = argparse.Namespace(num=[int(sys.argv[1]) if len(sys.argv) > 1 else 100_000], dburl=None, seed=7,
                            seconds=10, queries=1000)
    for r in run(ns):
        print(r.line(), flush=True)
