"""Shared pieces of the benchmark suites: results, percentiles, printing, profiling."""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out"


@dataclass
class Result:
    variant: str
    n: int
    seconds: float
    figure: str = ""
    ratio: float | None = None
    baseline: str = ""
    target: str = ""
    ok: bool | None = None
    checks: tuple[tuple[str, bool], ...] = ()  # several targets, each with its own verdict

    def line(self) -> str:
        ratio = f"ratio {self.ratio:.2f} vs {self.baseline}" if self.ratio is not None else ""
        verdict = "" if self.ok is None else ("  [meets " if self.ok else "  [MISSES ") + self.target + "]"
        if self.checks:
            verdict += "  [" + "; ".join(("meets " if ok else "MISSES ") + t for t, ok in self.checks) + "]"
        return f"{self.variant:<38} n={self.n:<9,} {self.seconds:9.2f} s  {self.figure:<34} {ratio}{verdict}"


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds."""
    qs = statistics.quantiles(samples_s, n=100, method="inclusive")
    return qs[49] * 1000, qs[98] * 1000


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


@contextmanager
def maybe_profile(enabled: bool, name: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        OUT.mkdir(exist_ok=True)
        path = OUT / f"{name}.prof"
        prof.dump_stats(path)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        print(f"profile written to {path}")


# -- shared by the server benchmarks (soap, ar, mllp) ------------------------------------------------

BENCH_PASSWORD = "bench-password-123"


def bench_account(engine: Any, username: str, *, key_path: Path | None = None) -> None:
    """Make sure the benchmark's service account exists with the benchmark password (profile full)."""
    from server.access import AccountStore
    from store.errors import PregbridgeError

    accounts = AccountStore(engine, key_path=key_path)
    try:
        accounts.add(username, BENCH_PASSWORD, "full")
    except PregbridgeError:
        accounts.passwd(username, BENCH_PASSWORD)


def store_samples(url: str, n: int, seed: int, username: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Random identity numbers, and (family name, birth year) pairs answering 1–50 hits, from the store at
    ``url`` (printing how many hits they answer and how many were left out as too broad); also creates the
    benchmark account ``username``."""
    import random

    from sqlalchemy import select

    from store import schema as s
    from store.engine import make_engine, migrate
    from store.errors import PregbridgeError, TooManyHits
    from store.search import ALL_RELEASABLE, SearchCriteria, search

    engine = make_engine(url)
    migrate(engine)
    bench_account(engine, username)
    rng = random.Random(seed)
    with engine.connect() as conn:
        top = conn.execute(select(s.person.c.id).order_by(s.person.c.id.desc()).limit(1)).scalar_one()
        ids = [rng.randint(1, top) for _ in range(n)]
        t = s.person_identifier
        numbers = [r[0] for r in conn.execute(select(t.c.number).where(t.c.person_id.in_(ids[:900])))]
        ps = s.person_search
        rows = conn.execute(select(ps.c.family_key, ps.c.birth_year).where(ps.c.person_id.in_(ids[:900]))).all()
        pairs: list[tuple[str, int]] = []
        hits = too_broad = tried = 0
        for family, year in rows:
            if len(family) >= 3 and year and len(pairs) < 300:
                tried += 1
                try:
                    criteria = SearchCriteria(family=family, birth_year=year)
                    found = len(search(conn, criteria, limit=50, scope=ALL_RELEASABLE))
                    if 0 < found:
                        pairs.append((family, year))
                        hits += found
                except TooManyHits:
                    too_broad += 1
                except PregbridgeError:
                    pass
    engine.dispose()
    # what the search requests of a suite answer: a larger store answers more persons to the same kind of request
    print(f"# search requests: (family name, birth year) of {tried:,} random persons: {len(pairs):,} kept "
          f"({hits / max(1, len(pairs)):.1f} hits each), {too_broad:,} too broad (> 50 hits) left out", flush=True)
    return numbers, pairs


def store_name_triples(url: str, n: int, seed: int) -> list[tuple[str, str, int]]:
    """(first given name, family name, birth year) of ``n`` random persons of the store at ``url`` whose search
    answers 1–50 hits (printing how many hits they answer): requests whose answer is about one person at any
    store size, where (family, year) answers more persons the larger the store."""
    import random

    from sqlalchemy import select

    from store import schema as s
    from store.engine import make_engine, read_connection
    from store.errors import PregbridgeError
    from store.search import ALL_RELEASABLE, SearchCriteria, search

    engine = make_engine(url)
    rng = random.Random(seed + 1)
    out: list[tuple[str, str, int]] = []
    hits = 0
    with read_connection(engine) as conn:
        top = conn.execute(select(s.person.c.id).order_by(s.person.c.id.desc()).limit(1)).scalar_one()
        ps = s.person_search
        ids = [rng.randint(1, top) for _ in range(n)]
        rows = conn.execute(select(ps.c.given_key, ps.c.family_key, ps.c.birth_year).where(ps.c.person_id.in_(ids)))
        for given, family, year in rows:
            first = (given or "").split(" ")[0]
            if not (first and len(family) >= 3 and year):
                continue
            try:
                found = len(search(conn, SearchCriteria(given=first, family=family, birth_year=year), limit=50,
                                   scope=ALL_RELEASABLE))
            except PregbridgeError:  # too broad or below the minimum
                continue
            if found:
                out.append((first, family, year))
                hits += found
    engine.dispose()
    print(f"# search requests: (given, family name, birth year) of {n:,} random persons: {len(out):,} kept "
          f"({hits / max(1, len(out)):.1f} hits each)", flush=True)
    return out


def fresh_store(args: Any, tmp: Path, name: str) -> str:
    """``--dburl``; else the store suite's SQLite store of the ``--num`` population (benchmarks/out/store-N.sqlite)
    when there is one — at national size a fresh load takes the better part of an hour; else a fresh store in
    ``tmp`` loaded with a ``--num`` synthetic population. Migrated."""
    from store.engine import make_engine, migrate

    cached = OUT / f"store-{max(args.num)}.sqlite"
    if args.dburl:
        url = str(args.dburl)
    elif cached.is_file():
        url = f"sqlite:///{cached}"
    else:
        from store.loading import load_population
        from store.synthetic import generate_population

        generate_population(tmp / "pop", max(args.num), args.seed, feed_days=0)
        url = f"sqlite:///{tmp / f'{name}.sqlite'}"
        engine = make_engine(url)
        migrate(engine)
        load_population(engine, tmp / "pop")
        engine.dispose()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


def warm_sqlite(url: str) -> None:
    """Read a SQLite store file once, so the OS page cache holds it as a running server's would: the figures
    then measure the store, not the first touch of a multi-GB file on this disk (this VM's page cache does not
    keep a file for long: a 1M Q22 run on a cold file answered 9 msg/s instead of ~900)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database:
        with open(u.database, "rb") as f:
            while f.read(1 << 24):
                pass


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GunicornServer:
    """``app_spec`` (``module:factory()``) served by gunicorn with the production worker options (or another
    ``worker_class``), in its own process group; ready when GET ``ready_path`` answers."""

    def __init__(self, app_spec: str, workers: int, env: dict[str, str], ready_path: str, *,
                 worker_class: str | None = None, stderr: Path | None = None) -> None:
        import subprocess
        import sys
        import urllib.request

        from server.runner import GUNICORN_OPTIONS

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        given = dict(GUNICORN_OPTIONS, **({"worker_class": worker_class} if worker_class else {}))
        options = [f"--{k.replace('_', '-')}={v}" for k, v in given.items()]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{self.port}",
             "--log-level", "warning", *options, app_spec], env=env, start_new_session=True,
            stderr=stderr.open("ab") if stderr is not None else None)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.base + ready_path, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"gunicorn ({app_spec}) did not start") from None
                time.sleep(0.3)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's worker processes (Linux /proc)."""
        import os

        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # ppid: a worker of this arbiter
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self) -> None:
        import os
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)


def wrk_post_script(path: Path, bodies: list[str], username: str, content_type: str,
                    headers: dict[str, str] | None = None) -> Path:
    """A wrk Lua script POSTing ``bodies`` round-robin (from a random start) with HTTP Basic auth (and
    ``headers``, e.g. a SOAPAction)."""
    import base64

    auth = base64.b64encode(f"{username}:{BENCH_PASSWORD}".encode()).decode()
    quoted = ",\n".join("[[" + b + "]]" for b in bodies)
    extra = "".join(f'wrk.headers["{k}"] = "{v.replace(chr(34), chr(92) + chr(34))}"\n'
                    for k, v in (headers or {}).items())
    path.write_text(f"""
local bodies = {{ {quoted} }}
local i = math.random(#bodies)
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
wrk.headers["Authorization"] = "Basic {auth}"
{extra}request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
""")
    return path


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url: str, script: Path, conc: int, seconds: int) -> tuple[float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, non-2xx responses) of one wrk run with ``conc`` keep-alive connections.

    wrk's ``--timeout`` is 30 s: at its default (2 s) an answer slower than that is counted as a timeout and
    left out of the latency figures, so a stall longer than 2 s vanished from the p99 (measured under load:
    a slice whose servers stalled 2 s at its start reported p99 72 ms)."""
    import re
    import subprocess

    out = subprocess.run(["wrk", f"-t{min(conc, 2)}", f"-c{conc}", f"-d{seconds}s", "--timeout", "30s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {m[0]: _ms(m[1], m[2]) for m in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    nan = float("nan")  # no latency lines when nothing was answered (a server held by slow clients)
    return rps, pct.get("50", nan), pct.get("99", nan), int(errors.group(1)) if errors else 0


def wrk_alternating(targets: dict[str, tuple[str, Path]], conc: int, seconds: int, rounds: int
                    ) -> dict[str, tuple[float, float, float, int]]:
    """``run_wrk`` on servers running at once, in ``rounds`` alternating slices of ``seconds`` in all (a, b, b,
    a, …), so a change in this VM's speed during the run weighs on every side of a ratio alike (measured one
    after the other, a soap baseline once swung 772 → 2,148 req/s between runs). ``targets`` maps a name to
    (url, wrk script). Per name: (requests/s over all its slices, median slice p50 ms, median slice p99 ms,
    non-2xx responses)."""
    rounds = max(1, rounds)
    part = max(1, round(seconds / rounds))
    names = list(targets)
    done: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            url, script = targets[name]
            done[name].append(run_wrk(url, script, conc, part))
    out = {}
    for name, parts in done.items():
        out[name] = (sum(p[0] for p in parts) / len(parts), statistics.median(p[1] for p in parts),
                     statistics.median(p[2] for p in parts), sum(p[3] for p in parts))
    return out
