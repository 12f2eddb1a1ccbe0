"""PREG SOAP benchmark: getPerson and searchPerson throughput and latency over a real socket.

Servers: gunicorn with the production worker options (server.runner.GUNICORN_OPTIONS), started as a
subprocess, once with pregbridge's real
application (HTTP Basic authentication with the per-process credential cache, store lookup, profile
masking, encoding, batched audit — everything a production call does) and once with the **baseline**:
the same gunicorn + SoapGuard + spyne stack answering a prebuilt response of the same size
(benchmarks/soap_apps.py). Load: ``wrk`` (C, Debian package ``wrk``) with keep-alive connections at
concurrency 1, 8 and 32, requests drawn from random identity numbers / (family name, birth year) pairs
of the store; and searchPerson by (given name, family name, birth year) of random persons, at concurrency 8 on
2 workers: about one person answered at any store size, where a (family, year) request answers more persons
the larger the store (issue 19: the suite prints the hits each kind of request answers). Both servers run at
once and every variant is measured in ``--rounds`` alternating slices of ``--seconds`` (static, real, real,
static, …; ``harness.wrk_alternating``): measured one after the other, the baseline swung 772 → 2,148 req/s
between runs. Client and server share this machine's two cores, so absolute figures are a lower bound.

Store: the ``--num`` population's SQLite store left by ``bench_store`` (benchmarks/out/store-N.sqlite),
or ``--dburl``. Targets (issue 3): getPerson ≥ 40 % of the baseline and ≥ 1,000 req/s per worker process,
audit included; p99 ≤ 25 ms at concurrency 8.

``--slow-clients N`` (issue 13) measures instead getPerson at concurrency 8 on 2 workers in ``--rounds``
alternating slices of ``--seconds`` on servers running at once: the front (``server.runner.GUNICORN_OPTIONS``)
quiet, a second front held by N slow clients for the whole run (:mod:`benchmarks.slow_clients`: a byte every
2 s into headers or bodies, reconnecting when cut off, from 50 loopback addresses; measured in their steady
state, after the burst of opening them), and gunicorn's ``sync`` worker quiet — the
worker class ``serve`` used before the front, as the A/B baseline of the plain throughput; and the same
A/B with the static answer, where the transport's own cost is not hidden by the application's. A last
slice shows the sync worker with the same slow clients. Targets: with the slow clients ≥ 0.8 of the same
front quiet; the front quiet ≥ 0.95 of the sync worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import (
    OUT,
    GunicornServer,
    Result,
    run_wrk,
    store_name_triples,
    store_samples,
    wrk_alternating,
    wrk_post_script,
)

__all__ = ["run"]

NS = "urn:no:pregbridge:personregister:v1"
PATH = "/preg/v1/Personregister"
USER = "bench"
ENVELOPE = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="' + NS + '"><s:Body>'
            '{body}</s:Body></s:Envelope>')


_ALL_PLANS = ("getPerson", "searchPerson")  # measured at every concurrency; the others at 8 on 2 workers


def _lua(path: Path, bodies: list[str]) -> Path:
    return wrk_post_script(path, bodies, USER, "text/xml; charset=utf-8")


def run(args: argparse.Namespace) -> Iterator[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_soap needs wrk: apt-get install wrk")
    n = max(args.num)
    url = args.dburl or f"sqlite:///{OUT / f'store-{n}.sqlite'}"
    if not args.dburl and not (OUT / f"store-{n}.sqlite").is_file():
        raise SystemExit(f"no store for {n:,} persons: run `python -m benchmarks store --num {n}` first")
    numbers, pairs = store_samples(url, 2000, args.seed, USER)
    tmp = Path(tempfile.mkdtemp(prefix="bench-soap-"))
    scripts = {
        "getPerson": _lua(tmp / "get.lua", [ENVELOPE.format(body=f"<p:getPerson><p:personnummer>{x}</p:personnummer>"
                                                                 "</p:getPerson>") for x in numbers[:1000]]),
        "searchPerson": _lua(tmp / "search.lua", [
            ENVELOPE.format(body=f"<p:searchPerson><p:etternavn>{f}</p:etternavn><p:fodselsaar>{y}</p:fodselsaar>"
                                 "</p:searchPerson>") for f, y in pairs]),
        # about one person answered at any size (family + year answers more persons the larger the store)
        "searchPerson given": _lua(tmp / "search-given.lua", [
            ENVELOPE.format(body=f"<p:searchPerson><p:fornavn>{g}</p:fornavn><p:etternavn>{f}</p:etternavn>"
                                 f"<p:fodselsaar>{y}</p:fodselsaar></p:searchPerson>")
            for g, f, y in store_name_triples(url, 300, args.seed)]),
    }
    env = dict(os.environ, PREGBRIDGE_DATABASE_URL=url, PREGBRIDGE_DATA_DIR=str(tmp), BENCH_NUMBER=numbers[0],
               BENCH_FAMILY=pairs[0][0], BENCH_YEAR=str(pairs[0][1]), PYTHONWARNINGS="ignore")
    seconds = args.seconds
    if getattr(args, "metrics", False):
        yield from _run_metrics(args, scripts["getPerson"], env, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if args.slow_clients:
        yield from _run_slow(args, scripts["getPerson"], env)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    plan = [(2, conc) for conc in (1, 8, 32)] + [(1, 8)]
    measured: dict[tuple[str, str, int, int], tuple[float, float, float, int]] = {}
    for workers in sorted({w for w, _ in plan}):
        servers = {}
        try:
            for app in ("static", "real"):
                servers[app] = GunicornServer(f"benchmarks.soap_apps:{app}()", workers, env, f"{PATH}?wsdl")
            for op, script in scripts.items():
                for server in servers.values():
                    run_wrk(server.base + PATH, script, 8, 2)  # warm-up: caches, credential cache, page cache
                for w, conc in plan:
                    if w == workers and (op in _ALL_PLANS or (w, conc) == (2, 8)):
                        got = wrk_alternating({app: (server.base + PATH, script) for app, server in servers.items()},
                                              conc, seconds, args.rounds)
                        for app, figures in got.items():
                            measured[(app, op, workers, conc)] = figures
        finally:
            for server in servers.values():
                server.stop()
    for op in scripts:
        for workers, conc in plan:
            if ("real", op, workers, conc) not in measured:
                continue
            rps, p50, p99, errors = measured[("real", op, workers, conc)]
            base = measured[("static", op, workers, conc)][0]
            ok = None
            target = ""
            if op == "getPerson" and workers == 1:
                target, ok = "≥ 1,000 req/s per worker, ≥ 40 % of baseline", rps >= 1000 and rps / base >= 0.4
            elif op == "getPerson" and conc == 8:
                target, ok = "p99 ≤ 25 ms, ≥ 40 % of baseline", p99 <= 25 and rps / base >= 0.4
            yield Result(f"{op} workers={workers} conc={conc}", int(rps * seconds), float(seconds),
                         f"{rps:,.0f} req/s p50 {p50:.2f} p99 {p99:.2f} ms" + (f" {errors} non-2xx" if errors else ""),
                         ratio=rps / base, baseline=f"static {base:,.0f} req/s", target=target, ok=ok)
    shutil.rmtree(tmp, ignore_errors=True)


def _slices(servers: dict[str, GunicornServer], script: Path, rounds: int, seconds: int, rates: dict[str, list[float]],
            cpu: dict[str, list[float]], p99: dict[str, list[float]], loads: list[float]) -> None:
    """getPerson at concurrency 8 on each server in turn, ``rounds`` times, every other round in reverse order:
    requests/s, server CPU ms per request, p99 and the load average of each slice, appended."""
    for r in range(rounds):
        order = list(servers)
        for variant in order if r % 2 == 0 else order[::-1]:
            server = servers[variant]
            loads.append(os.getloadavg()[0])
            used = server.cpu_seconds()
            rps, _, q99, _ = run_wrk(server.base + PATH, script, 8, seconds)
            cpu[variant].append((server.cpu_seconds() - used) * 1000 / max(rps * seconds, 1))
            rates[variant].append(rps)
            p99[variant].append(q99)


def _observer_cost(tmp: Path, n: int = 20_000) -> Iterator[Result]:
    """The audit observer's own cost per call, in this process (steadier than a server's throughput on a loaded
    machine): nothing counted (the baseline), counted in multi-process files, counted with the text and the
    JSON request line (written to /dev/null)."""
    import logging

    from server.access.audit import AuditRecord
    from server.logs import configure_logging
    from server.metrics import MULTIPROC_ENV, CallMetrics, call_ended, call_started

    (tmp / "prom-micro").mkdir()
    os.environ[MULTIPROC_ENV] = str(tmp / "prom-micro")
    record = AuditRecord.now(account="bench", face="soap-preg", operation="getPerson", outcome="ok")
    counting, idle = CallMetrics(count=True), CallMetrics(count=False)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)

    def per_call(observer: CallMetrics) -> float:
        started = time.perf_counter()
        for _ in range(n):
            token = call_started("0123456789abcdef")
            observer.call(record)
            call_ended(token)
        return (time.perf_counter() - started) / n * 1e6

    try:
        root.setLevel(logging.WARNING)
        per_call(counting)  # warm-up: the label children, the files
        figures = {"nothing counted": per_call(idle), "counted": per_call(counting)}
        for fmt in ("text", "json"):
            configure_logging(fmt, "info")
            handler = root.handlers[0]
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - closed with the handler below
            figures[f"counted + {fmt} request line"] = per_call(counting)
            handler.stream.close()
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        logging.captureWarnings(False)
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])
    base = figures["nothing counted"]
    for variant, us in figures.items():
        yield Result(f"observer per call: {variant}", n, us * n / 1e6, f"{us:.1f} µs a call",
                     ratio=us / base if variant != "nothing counted" else None,
                     baseline=f"nothing counted {base:.1f} µs, load {os.getloadavg()[0]:.1f}")


def _run_metrics(args: argparse.Namespace, script: Path, env: dict[str, str], tmp: Path) -> Iterator[Result]:
    """getPerson at concurrency 8 on 2 workers, three servers running at once, in ``--rounds`` alternating
    slices: metrics on (prometheus_client's multi-process files, as ``pregbridge serve`` runs them), metrics
    off (the baseline), and metrics on with the JSON request log written to a file. Server CPU per request is
    the steadier figure on a shared machine."""
    yield from _observer_cost(tmp)
    seconds, rounds = args.seconds, max(args.rounds, 1)
    app = "benchmarks.soap_apps:real()"
    (tmp / "prom").mkdir()
    variants = {
        "metrics on": dict(env, PREGBRIDGE_METRICS_ENABLED="true", PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom")),
        "metrics off": dict(env, PREGBRIDGE_METRICS_ENABLED="false"),
        "metrics on + json request log": dict(env, PREGBRIDGE_METRICS_ENABLED="true", PREGBRIDGE_LOG_FORMAT="json",
                                              PROMETHEUS_MULTIPROC_DIR=str(tmp / "prom-log")),
    }
    (tmp / "prom-log").mkdir()
    servers = {name: GunicornServer(app, 2, e, f"{PATH}?wsdl", stderr=tmp / f"{name.replace(' ', '-')}.log")
               for name, e in variants.items()}
    rates: dict[str, list[float]] = {k: [] for k in servers}
    cpu: dict[str, list[float]] = {k: [] for k in servers}
    loads: list[float] = []
    try:
        for server in servers.values():
            run_wrk(server.base + PATH, script, 8, 2)  # warm-up: credential cache, page cache
        _slices(servers, script, rounds, seconds, rates, cpu, {k: [] for k in servers}, loads)
        with urllib.request.urlopen(servers["metrics on"].base + "/metrics", timeout=10) as answer:
            scraped = answer.read().decode()
    finally:
        for server in servers.values():
            server.stop()
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in scraped.splitlines()
                  if line.startswith('pregbridge_requests_total{face="soap-preg",operation="getPerson"'))
    print(f"#   metrics on: /metrics counted {counted:,.0f} getPerson calls over both workers", flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    load = f"load {min(loads):.1f}–{max(loads):.1f}"
    base = "metrics off"
    for variant in ("metrics on", "metrics on + json request log"):
        yield Result(f"getPerson {variant}", int(med[variant] * seconds), float(seconds),
                     f"{med[variant]:,.0f} req/s, {mcpu[variant]:.3f} ms server CPU a request "
                     f"(CPU ratio {mcpu[variant] / mcpu[base]:.3f})", ratio=med[variant] / med[base],
                     baseline=f"{base} {med[base]:,.0f} req/s, {mcpu[base]:.3f} ms CPU, {load}")


def _cpu_per_second(server: GunicornServer, seconds: float) -> float:
    used, started = server.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (server.cpu_seconds() - used) * 1000 / (time.monotonic() - started)


class _SlowClients:
    """``python -m benchmarks.slow_clients`` against ``port`` for ``seconds`` (it stops by itself)."""

    def __init__(self, port: int, n: int, seconds: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.slow_clients", "--port", str(port),
                                      "--connections", str(n), "--seconds", str(seconds)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"the slow clients did not start: {line!r}")

    def summary(self) -> dict[str, float]:
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return {}
        lines = out.strip().splitlines()
        return dict(json.loads(lines[-1])) if lines else {}


def _run_slow(args: argparse.Namespace, script: Path, env: dict[str, str]) -> Iterator[Result]:
    n, seconds, rounds = args.slow_clients, args.seconds, max(args.rounds, 1)
    app = "benchmarks.soap_apps:real()"
    front = GunicornServer(app, 2, env, f"{PATH}?wsdl")
    # A second front, the same code, held by the slow clients for the whole run: they are measured in their
    # steady state (connections cut off at their deadlines and opened again), not in the burst of opening 500.
    attacked = GunicornServer(app, 2, env, f"{PATH}?wsdl")
    sync = GunicornServer(app, 2, env, f"{PATH}?wsdl", worker_class="sync")
    static = "benchmarks.soap_apps:static()"  # the transport's own cost shows best without the application's
    servers = {"front": front, "front-slow": attacked, "sync": sync,
               "static-front": GunicornServer(static, 2, env, f"{PATH}?wsdl"),
               "static-sync": GunicornServer(static, 2, env, f"{PATH}?wsdl", worker_class="sync")}
    rates: dict[str, list[float]] = {name: [] for name in servers}
    p99: dict[str, list[float]] = {k: [] for k in rates}
    cpu: dict[str, list[float]] = {k: [] for k in rates}  # server CPU ms per request
    loads: list[float] = []
    holding: _SlowClients | None = None
    try:
        for server in set(servers.values()):
            run_wrk(server.base + PATH, script, 8, 2)  # warm-up: credential cache, page cache
        # What holding the slow clients costs the front, without requests: server CPU per second, which
        # does not swing with this VM's load as throughput does.
        idle_cpu = _cpu_per_second(attacked, seconds)
        lifetime = rounds * len(servers) * (seconds + 3) + 3 * seconds + 60  # they stop by themselves after
        holding = _SlowClients(attacked.port, n, lifetime)
        time.sleep(seconds)  # past the burst of opening them, into the cycle of deadlines and reconnections
        slow_cpu = _cpu_per_second(attacked, seconds)
        _slices(servers, script, rounds, seconds, rates, cpu, p99, loads)
        holding.proc.terminate()
        note = holding.summary()
        holding = None
        slow = _SlowClients(sync.port, n, seconds + 5)
        sync_slow, _, sync_slow_p99, _ = run_wrk(sync.base + PATH, script, 8, seconds)
        slow.proc.terminate()
        slow.summary()
    finally:
        if holding is not None:
            holding.proc.kill()
        for server in set(servers.values()):
            server.stop()
    med = {k: statistics.median(v) for k, v in rates.items()}
    opened = int(note.get("opened", 0))
    print(f"#   slow clients: {opened:,} connections opened in {note.get('seconds', 0):.0f} s, "
          f"{note.get('closed_by_server', 0):,.0f} cut off by the server at a deadline, "
          f"{note.get('cpu_seconds', 0):.1f} s CPU of their own", flush=True)
    load = f"load {min(loads):.1f}–{max(loads):.1f}"
    implied = 1 - (slow_cpu - idle_cpu) / 2000  # 2 workers: 2,000 ms of CPU a second when saturated
    yield Result(f"front holding {n} slow clients, no requests", n, float(seconds),
                 f"server CPU {slow_cpu:.1f} ms a second", ratio=implied,
                 baseline=f"idle {idle_cpu:.1f} ms a second: the share left to requests",
                 target=">= 0.8", ok=implied >= 0.8)
    yield Result(f"getPerson front, {n} slow clients open", int(med["front-slow"] * seconds), float(seconds),
                 f"{med['front-slow']:,.0f} req/s p99 {statistics.median(p99['front-slow']):.1f} ms",
                 ratio=med["front-slow"] / med["front"], baseline=f"front quiet {med['front']:,.0f} req/s, {load}",
                 target=f">= 0.8 of the front quiet ({rounds} rounds, medians)",
                 ok=med["front-slow"] / med["front"] >= 0.8)
    yield Result("getPerson front quiet (A/B)", int(med["front"] * seconds), float(seconds),
                 f"{med['front']:,.0f} req/s p99 {statistics.median(p99['front']):.1f} ms",
                 ratio=med["front"] / med["sync"], baseline=f"sync worker {med['sync']:,.0f} req/s",
                 target=">= 0.95 of the sync worker", ok=med["front"] / med["sync"] >= 0.95)
    yield Result("static answer, front quiet (A/B)", int(med["static-front"] * seconds), float(seconds),
                 f"{med['static-front']:,.0f} req/s, CPU {statistics.median(cpu['static-front']):.2f} ms a request",
                 ratio=med["static-front"] / med["static-sync"],
                 baseline=f"sync worker {med['static-sync']:,.0f} req/s, "
                          f"CPU {statistics.median(cpu['static-sync']):.2f} ms",
                 target=">= 0.95 of the sync worker", ok=med["static-front"] / med["static-sync"] >= 0.95)
    yield Result(f"getPerson sync worker, {n} slow clients open", int(sync_slow * seconds), float(seconds),
                 f"{sync_slow:,.0f} req/s p99 {sync_slow_p99:.1f} ms", ratio=sync_slow / med["sync"],
                 baseline=f"sync worker quiet {med['sync']:,.0f} req/s")
    for name, values in rates.items():
        print(f"#   {name}: " + ", ".join(f"{v:,.0f}" for v in values) + " req/s by round; server CPU "
              + ", ".join(f"{c:.2f}" for c in cpu[name]) + " ms a request", flush=True)
