"""HL7 MLLP benchmark: QBP^Q22 (PDQ) and QBP^Q23 (PIX) round trips over persistent connections.

Server: one listener process (``server.hl7.app.serve``, started here with ``python -c`` because the CLI
wiring is separate), once with pregbridge's real HL7 face (sender lookup, message reading, store
query, profile masking, PID encoding, batched audit — everything a production message does) and once as
the **baseline**: the same listener answering every frame with a prebuilt ACK (echo). With
``--processes N`` both run as N listener processes sharing the port with SO_REUSEPORT (as
``pregbridge listen-hl7 --reuse-port`` started N times), the kernel spreading the connections over them:
the baseline always has as many processes as the server it is compared with, so the ratio stays fair. Both run
the listener's **default** configuration (``MllpSettings().threads`` handler threads), as ``pregbridge
listen-hl7`` does; ``--threads N`` also measures the real face with N handler threads (0: handlers on the
event loop) in the same slices, its ratio taken to the default (docs/hl7.md "Threads"). Client: a separate process
with an asyncio client keeping 1 or 8 persistent connections, each sending one message and waiting for
its reply (like a broker), cycling through Q23 messages for random known numbers and Q22 messages for
(family name, birth year) pairs of the store that give 1–50 hits; and, at 8 connections, Q22 messages by
(family, given name, birth year) of random persons (``Q22+given``: about one person answered at any store
size, where a (family, year) query answers more persons the larger the store). Client and server share this
machine's cores, so absolute figures are a lower bound. Both servers run at once and are measured in
``--rounds`` alternating slices of the ``--seconds`` (echo, real, real, echo, …), each slice starting at a
different message: this VM's speed drifts by ±30 % within minutes, and measured one after the other the
two sides of a ratio saw different machines. The store file is read once first (page cache). Each line
also gives the server processes' CPU time per message (user + system, from /proc; the audit thread
included), steadier on this VM than the rates.

Store: the ``--num`` population's SQLite store left by ``bench_store`` (benchmarks/out/store-N.sqlite),
or ``--dburl``. Targets (issue): Q23 ≥ 30 % of the echo baseline; p99 ≤ 20 ms at 8 connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.harness import OUT, Result, free_port, percentiles, store_name_triples, store_samples, warm_sqlite

__all__ = ["run"]

USER = "bench-hl7"
MSH = "MSH|^~\\&|BENCH|BENCHFAC|PREGBRIDGE|NHN|20260101120000||{type}|{ctl}|P|2.5|||||NOR|UNICODE UTF-8"


def _messages(numbers: list[str], pairs: list[tuple[str, int]],
              triples: list[tuple[str, str, int]]) -> dict[str, list[bytes]]:
    q23 = [(MSH.format(type="QBP^Q23^QBP_Q21", ctl=f"X{i}") + f"\rQPD|IHE PIX Query|t{i}|{x}\rRCP|I\r").encode()
           for i, x in enumerate(numbers[:1000])]
    q22 = [(MSH.format(type="QBP^Q22^QBP_Q21", ctl=f"Y{i}")
            + f"\rQPD|IHE PDQ Query|t{i}|@PID.5.1^{f}~@PID.7^{y}\rRCP|I|50^RD\r").encode()
           for i, (f, y) in enumerate(pairs)]
    # about one person answered at any store size (family + year answers more persons the larger the store)
    q22_given = [(MSH.format(type="QBP^Q22^QBP_Q21", ctl=f"Z{i}")
                  + f"\rQPD|IHE PDQ Query|t{i}|@PID.5.1^{f}~@PID.5.2^{g}~@PID.7^{y}\rRCP|I|50^RD\r").encode()
                 for i, (g, f, y) in enumerate(triples)]
    return {"Q23": q23, "Q22": q22, GIVEN_OP: q22_given}


GIVEN_OP = "Q22+given"  # measured at 8 connections only


# -- server process ---------------------------------------------------------------------------------


def _settings(port: int, reuse_port: bool, threads: int | None = None) -> Any:
    """The listener's settings: its defaults (handler threads too, unless ``threads``) plus the bench peer."""
    from server.hl7.settings import MllpSettings

    settings = MllpSettings(port=port, peers={"BENCH^BENCHFAC": USER}, peer_match="sender", idle_timeout=0,
                            reuse_port=reuse_port)
    return settings if threads is None else replace(settings, threads=threads)


def _handler(url: str, mode: str, settings: Any) -> Any:
    """The echo handler, or the real HL7 face over the store (built in the process that serves)."""
    from server.access import BUILTIN_PROFILES, AccountStore, AuditWriter
    from server.hl7.app import Hl7App
    from server.hl7.framing import frame
    from server.hl7.listener import Peer
    from store.engine import make_engine

    if mode == "echo":
        ack = frame(b"MSH|^~\\&|PREGBRIDGE|NHN|BENCH|BENCHFAC|20260101120000||ACK^Q23^ACK|1|P|2.5\rMSA|AA|1\r")

        def handler(raw: bytes, peer: Peer) -> bytes:
            return ack

        return handler
    engine = make_engine(url)
    return Hl7App(engine, AccountStore(engine), BUILTIN_PROFILES, AuditWriter(engine, mode="batched"), settings)


def serve_process(url: str, mode: str, port: int = 0, threads: int | None = None) -> None:
    """Entry point of a server subprocess (one listener, SO_REUSEPORT when ``port``): prints ``ready <port>``
    then serves until killed."""
    import gc
    import logging

    from server.hl7.app import serve
    from server.hl7.listener import MllpListener

    logging.basicConfig(level=logging.WARNING)
    settings = _settings(port, port != 0, threads)
    handler = _handler(url, mode, settings)

    def started(listener: MllpListener) -> None:
        print(f"ready {listener.port}", flush=True)

    gc.freeze()  # as `pregbridge listen-hl7` does
    asyncio.run(serve(settings, handler, started=started))


class _Server:
    """``processes`` listener processes on one port (SO_REUSEPORT when more than one)."""

    def __init__(self, url: str, mode: str, processes: int = 1, threads: int | None = None) -> None:
        port = free_port() if processes > 1 else 0
        self.procs: list[subprocess.Popen[str]] = []
        code = (f"from benchmarks.bench_mllp import serve_process; "
                f"serve_process({url!r}, {mode!r}, {port}, {threads!r})")
        try:
            for _ in range(processes):
                proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                        env=dict(os.environ, PYTHONWARNINGS="ignore"))
                self.procs.append(proc)
                assert proc.stdout is not None
                line = proc.stdout.readline()
                if not line.startswith("ready "):
                    raise RuntimeError(f"MLLP server ({mode}) did not start")
                self.port = int(line.split()[1])
        except BaseException:
            self.stop()
            raise

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server processes have used so far; 0 where /proc is not there."""
        total = 0.0
        for proc in self.procs:
            try:
                with open(f"/proc/{proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                return 0.0
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=30)


# -- client process -----------------------------------------------------------------------------------


async def _load(port: int, messages: list[bytes], conc: int, seconds: float, start: int = 0) -> dict[str, Any]:
    frames = [b"\x0b" + m + b"\x1c\r" for m in messages]
    latencies: list[float] = []
    bad = 0
    deadline = time.perf_counter() + seconds

    async def one(k: int) -> None:
        nonlocal bad
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        i = start + k * 7919
        while time.perf_counter() < deadline:
            msg = frames[i % len(frames)]
            i += 1
            t = time.perf_counter()
            writer.write(msg)
            reply = await reader.readuntil(b"\x1c\r")
            latencies.append(time.perf_counter() - t)
            if b"MSA|AA" not in reply:
                bad += 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(conc)))
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "bad": bad, "latencies": latencies}  # run() merges the slices' latencies


def client_process(port: int, path: str, conc: int, seconds: float, start: int = 0) -> None:
    with open(path, "rb") as f:
        messages = f.read().split(b"\x00")
    print(json.dumps(asyncio.run(_load(port, messages, conc, seconds, start))), flush=True)


def _drive(port: int, path: str, conc: int, seconds: float, start: int = 0) -> dict[str, Any]:
    code = (f"from benchmarks.bench_mllp import client_process; "
            f"client_process({port}, {path!r}, {conc}, {seconds}, {start})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONWARNINGS="ignore")).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def run(args: argparse.Namespace) -> Iterator[Result]:
    n = max(args.num)
    url = args.dburl or f"sqlite:///{OUT / f'store-{n}.sqlite'}"
    if not args.dburl and not (OUT / f"store-{n}.sqlite").is_file():
        raise SystemExit(f"no store for {n:,} persons: run `python -m benchmarks store --num {n}` first")
    numbers, pairs = store_samples(url, 2000, args.seed, USER)
    triples = store_name_triples(url, 300, args.seed)
    warm_sqlite(url)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mllp-"))
    paths = {}
    for op, msgs in _messages(numbers, pairs, triples).items():
        paths[op] = str(tmp / f"{op}.bin")
        with open(paths[op], "wb") as f:
            f.write(b"\x00".join(msgs))
    seconds, rounds = args.seconds, max(1, args.rounds)
    measured: dict[tuple[str, str, int], dict[str, Any]] = {}
    servers = {mode: _Server(url, mode, args.processes) for mode in ("echo", "real")}
    if args.threads is not None:
        servers["threads"] = _Server(url, "real", args.processes, args.threads)
    modes = list(servers)
    try:
        for op, path in paths.items():
            for server in servers.values():
                _drive(server.port, path, 8, 2)  # warm-up: page cache, account cache
            for conc in (8,) if op == GIVEN_OP else (1, 8):
                # echo and real in alternating slices, so that a change in this VM's speed during the run
                # (measured: ±30 % within minutes) weighs on both sides of the ratio alike
                parts: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
                for rnd in range(rounds):
                    order = modes if rnd % 2 == 0 else modes[::-1]
                    for mode in order:
                        cpu = servers[mode].cpu_seconds()
                        part = _drive(servers[mode].port, path, conc, seconds / rounds, rnd * 104729)
                        part["cpu"] = servers[mode].cpu_seconds() - cpu
                        parts[mode].append(part)
                for mode, runs in parts.items():
                    latencies = [x for r in runs for x in r["latencies"]]
                    p50, p99 = percentiles(latencies)
                    measured[(mode, op, conc)] = {"n": len(latencies), "seconds": sum(r["seconds"] for r in runs),
                                                  "p50": p50, "p99": p99, "bad": sum(r["bad"] for r in runs),
                                                  "cpu_us": sum(r["cpu"] for r in runs) / len(latencies) * 1e6}
    finally:
        for server in servers.values():
            server.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    for op in paths:
        for conc in (1, 8):
            if ("real", op, conc) not in measured:
                continue
            r = measured[("real", op, conc)]
            e = measured[("echo", op, conc)]
            rps, base = r["n"] / r["seconds"], e["n"] / e["seconds"]
            checks: list[tuple[str, bool]] = []
            if op == "Q23":
                checks.append(("≥ 30 % of echo", rps / base >= 0.3))
            if conc == 8:
                checks.append(("p99 ≤ 20 ms", r["p99"] <= 20))
            bad = f" {r['bad']} not AA" if r["bad"] else ""
            procs = f" procs={args.processes}" if args.processes > 1 else ""
            yield Result(f"QBP^{op} conn={conc}{procs}", r["n"], r["seconds"],
                         f"{rps:,.0f} msg/s p50 {r['p50']:.2f} p99 {r['p99']:.2f} ms, "
                         f"server CPU {r['cpu_us']:.0f} µs/msg{bad}", ratio=rps / base,
                         baseline=f"echo {base:,.0f} msg/s (p99 {e['p99']:.2f} ms, "
                                  f"server CPU {e['cpu_us']:.0f} µs/msg)", checks=tuple(checks))
            if ("threads", op, conc) in measured:
                t = measured[("threads", op, conc)]
                trps = t["n"] / t["seconds"]
                yield Result(f"QBP^{op} conn={conc}{procs} threads={args.threads}", t["n"], t["seconds"],
                             f"{trps:,.0f} msg/s p50 {t['p50']:.2f} p99 {t['p99']:.2f} ms, "
                             f"server CPU {t['cpu_us']:.0f} µs/msg", ratio=trps / rps,
                             baseline=f"the default (threads={_settings(0, False).threads}) {rps:,.0f} msg/s")
