"""PREG SOAP benchmark: getPerson and searchPerson throughput and latency over a real socket.

Servers: gunicorn with the production worker options (server.runner.GUNICORN_OPTIONS), started as a
subprocess, once with pregbridge's real
application (HTTP Basic authentication with the per-process credential cache, store lookup, profile
masking, encoding, batched audit — everything a production call does) and once with the **baseline**:
the same gunicorn + SoapGuard + spyne stack answering a prebuilt response of the same size
(benchmarks/soap_apps.py). Load: ``wrk`` (C, Debian package ``wrk``) with keep-alive connections at
concurrency 1, 8 and 32, requests drawn from random identity numbers / (family name, birth year) pairs
of the store. Client and server share this machine's two cores, so absolute figures are a lower bound.

Store: the ``--num`` population's SQLite store left by ``bench_store`` (benchmarks/out/store-N.sqlite),
or ``--dburl``. Targets (issue 3): getPerson ≥ 40 % of the baseline and ≥ 1,000 req/s per worker process,
audit included; p99 ≤ 25 ms at concurrency 8.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import OUT, GunicornServer, Result, run_wrk, store_samples, wrk_post_script

__all__ = ["run"]

NS = "urn:no:pregbridge:personregister:v1"
PATH = "/preg/v1/Personregister"
USER = "bench"
ENVELOPE = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="' + NS + '"><s:Body>'
            '{body}</s:Body></s:Envelope>')


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
    }
    env = dict(os.environ, PREGBRIDGE_DATABASE_URL=url, PREGBRIDGE_DATA_DIR=str(tmp), BENCH_NUMBER=numbers[0],
               BENCH_FAMILY=pairs[0][0], BENCH_YEAR=str(pairs[0][1]), PYTHONWARNINGS="ignore")
    seconds = args.seconds
    plan = [(2, conc) for conc in (1, 8, 32)] + [(1, 8)]
    measured: dict[tuple[str, str, int, int], tuple[float, float, float, int]] = {}
    for app in ("static", "real"):
        for workers in sorted({w for w, _ in plan}):
            server = GunicornServer(f"benchmarks.soap_apps:{app}()", workers, env, f"{PATH}?wsdl")
            try:
                for op, script in scripts.items():
                    run_wrk(server.base + PATH, script, 8, 2)  # warm-up: caches, credential cache, page cache
                    for w, conc in plan:
                        if w == workers:
                            measured[(app, op, workers, conc)] = run_wrk(server.base + PATH, script, conc, seconds)
            finally:
                server.stop()
    for op in scripts:
        for workers, conc in plan:
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
