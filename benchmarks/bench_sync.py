"""``python -m benchmarks sync``: `pregbridge sync` from the fake Persontjenesten against `pregbridge load`.

Per size N, in the same run and on the same machine, through the real CLI (each its own process):

1. **load** (the baseline): ``pregbridge load`` of the N persons (a copy of the population directory
   without the register files, so both sides store the same persons) into an empty store;
2. **initial sync**: ``pregbridge sync --once`` into an empty store from ``pregbridge fake-persontjenesten``
   (its own process, serving the same directory: the null-day extract, one event per person, then the
   feed). Target: at most 2.0 × the load's time. The sync process's RSS (its worker processes included) is
   sampled every 0.5 s: target flat (the last quarter's mean within 25 % of the second quarter's) and
   ≤ 300 MB;
3. **steady feed**: the population loaded from its files (on SQLite the baseline's store, on PostgreSQL
   loaded again), then ``sync --once`` from the fake serving only
   the feed (``--no-extract``), at least 10,000 events (the population is generated with enough feed
   days). Target: ≥ 2,000 persons applied per second. The time is the one the sync reports for its run:
   the process's start (imports, its worker processes started with their imports done) is not in it, as it
   is not in a long-running syncer's steady state. Beside the rate, the CPU it cost per event: the sync's
   processes (main and workers; less what a run with nothing to apply costs, i.e. its start) and the
   fake's (while the sync ran). On a loaded machine the rate measures the share of the CPU the run got;
   the CPU per event hardly depends on it, and 2 cores / (CPU per event) is the most two free cores allow.

Stores are SQLite files in benchmarks/out (or ``--dburl``, a PostgreSQL database: each variant empties
it first). The fake's cost is part of the sync's time, as it would be with a slow real upstream.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.harness import OUT, Result

__all__ = ["run"]

FEED_EVENTS = 10_000
RATIO_TARGET = 2.0
RATE_TARGET = 2_000
RSS_TARGET_MB = 300


def _population(n: int, seed: int) -> Path:
    """N persons and at least FEED_EVENTS feed events (deterministic; generated once, then reused)."""
    from store.synthetic import generate_population
    from store.synthetic.feed import events_per_day

    days = math.ceil(FEED_EVENTS / events_per_day(n))
    out = OUT / f"sync-pop-{n}-{seed}-{days}d"
    if not (out / "manifest.json").is_file():
        t = time.perf_counter()
        generate_population(out, n, seed, feed_days=days)
        print(f"# generated {n:,} persons and {days} feed days in {time.perf_counter() - t:.1f} s -> {out}",
              flush=True)
    return out


def _persons_only(pop: Path) -> Path:
    """The population without its register files (manifest and persons only), for the load baseline."""
    out = pop.with_name(pop.name + "-persons")
    if not out.is_dir():
        out.mkdir()
        manifest = json.loads((pop / "manifest.json").read_text(encoding="utf-8"))
        manifest["files"] = {"persons": "persons.jsonl"}
        (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (out / "persons.jsonl").symlink_to(pop / "persons.jsonl")
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(dburl: str, *args: str, env: dict[str, str] | None = None) -> float:
    """Run ``pregbridge`` with ``args``; returns its wall time (raises when it fails)."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "server", "--database-url", dburl, *args], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return time.perf_counter() - t


def _children_cpu() -> float:
    """CPU seconds of this process's children that have been waited for (their own children included)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pid: int) -> float:
    """CPU seconds a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _fake(pop: Path, *extra: str) -> Iterator[tuple[str, int]]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "server", "fake-persontjenesten", "--population", str(pop),
                             "--port", str(port), *extra], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(url + "/_fake/info", timeout=2):
                    break
            except OSError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rss_mb(pid: int) -> float:
    """RSS of a process and its children (the sync's worker processes), MB."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    return sum(_rss_kb(p) for p in pids) / 1024


def _sync(dburl: str, upstream: str, main: list[float] | None = None) -> tuple[float, float, list[float]]:
    """``pregbridge sync --once`` against ``upstream``: (wall seconds, the seconds the sync itself reports —
    without the process's start —, RSS samples in MB every 0.5 s, the worker processes' included; ``main``
    gets the syncing process's own)."""
    samples: list[float] = []
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--database-url", dburl, "sync", "--once"],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PREGBRIDGE_UPSTREAM_URL": upstream, "COLUMNS": "400"})
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append(_rss_mb(proc.pid))
            if main is not None:
                main.append(_rss_kb(proc.pid) / 1024)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    seconds = time.perf_counter() - t
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"pregbridge sync exited {proc.returncode}")
    reported = re.findall(r"\(([0-9.]+) s\)", stdout)
    return seconds, float(reported[-1]) if reported else seconds, samples


def _empty(dburl: str | None, name: str) -> str:
    if dburl:
        from sqlalchemy import create_engine, text

        eng = create_engine(dburl)
        with eng.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        eng.dispose()
        return dburl
    db = OUT / f"{name}.sqlite"
    for suffix in ("", "-wal", "-shm", "-sync.lock"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{db}"


def _count(dburl: str, sql: str) -> int:
    from sqlalchemy import create_engine, text

    eng = create_engine(dburl)
    with eng.connect() as conn:
        value = int(conn.execute(text(sql)).scalar_one())
    eng.dispose()
    return value


def run(args: argparse.Namespace) -> Iterator[Result]:
    OUT.mkdir(exist_ok=True)
    for n in args.num:
        pop = _population(n, args.seed)
        persons = _persons_only(pop)
        load_url = _empty(args.dburl, f"sync-load-{n}")
        load_s = _cli(load_url, "load", str(persons))
        yield Result("load (baseline)", n, load_s, f"{n / load_s:,.0f} persons/s  load {_loadavg()}")

        sync_url = _empty(args.dburl, f"sync-initial-{n}")
        main: list[float] = []
        with _fake(pop) as (upstream, _pid):
            sync_s, _, rss = _sync(sync_url, upstream, main)
        stored = _count(sync_url, "SELECT count(*) FROM person")
        q = max(1, len(rss) // 4)
        early, late = (sum(rss[q : 2 * q]) / q if len(rss) >= 4 else rss[0]), sum(rss[-q:]) / q if rss else 0.0
        peak = max(rss, default=0.0)
        flat = late <= early * 1.25
        ratio = sync_s / load_s
        yield Result("initial sync from the fake", n, sync_s,
                     f"{stored:,} persons, RSS peak {peak:.0f} MB ({early:.0f}→{late:.0f}; the syncing process "
                     f"alone: peak {max(main, default=0):.0f} MB)  load {_loadavg()}",
                     ratio, "load", checks=((f"ratio ≤ {RATIO_TARGET}", ratio <= RATIO_TARGET),
                                            (f"RSS ≤ {RSS_TARGET_MB} MB", peak <= RSS_TARGET_MB),
                                            ("RSS flat", flat)))

        if args.dburl:  # one database, emptied for each variant: load the persons again
            feed_url = _empty(args.dburl, f"sync-feed-{n}")
            _cli(feed_url, "load", str(persons))
        else:  # the baseline's store is what the feed needs (the persons loaded from their files): no second load
            feed_url = load_url
        with _fake(pop, "--no-extract") as (upstream, fake_pid):
            cpu1, fake1 = _children_cpu(), _proc_cpu(fake_pid)
            _, feed_s, rss = _sync(feed_url, upstream)
            cpu2, fake2 = _children_cpu(), _proc_cpu(fake_pid)
            _sync(feed_url, upstream)  # nothing left to apply: what the sync's start costs
            cpu3 = _children_cpu()
        fake_cpu = fake2 - fake1
        sync_cpu = (cpu2 - cpu1) - (cpu3 - cpu2)
        events = _count(feed_url, "SELECT count(*) FROM feed_event")
        distinct = _count(feed_url, "SELECT count(DISTINCT person_key) FROM feed_event")
        rate = events / feed_s  # each event is one person fetched and written (a person twice in a page: once)
        per_event = (sync_cpu + fake_cpu) / events
        yield Result("steady feed from the fake", events, feed_s,
                     f"{rate:,.0f} persons/s ({distinct:,} distinct), RSS peak {max(rss, default=0):.0f} MB  "
                     f"CPU per event: sync {sync_cpu / events * 1e6:.0f} µs + fake "
                     f"{fake_cpu / events * 1e6:.0f} µs (2 cores: ≤ {2 / per_event:,.0f}/s)  load {_loadavg()}",
                     checks=((f"≥ {RATE_TARGET:,} persons/s", rate >= RATE_TARGET),))
        for path in OUT.glob(f"sync-*-{n}.sqlite*"):
            path.unlink(missing_ok=True)
        shutil.rmtree(persons, ignore_errors=True)


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
