"""Slow HTTP clients for the SOAP benchmark's ``--slow-clients N`` (``python -m benchmarks.slow_clients``).

Opens ``--connections`` connections to ``127.0.0.1:PORT`` from ``--addresses`` loopback source addresses
(127.0.0.10 and up, so that a per-address cap does not simply refuse them), half of them dripping a
request's headers and half a request's body (``Content-Length: 1000000``), one byte every
``--interval`` seconds each — the attack of issue 13. A connection the server closes (a deadline, a cap)
is opened again at once, as an attacker would. Prints ``ready`` once every connection is open, and a
JSON summary when it stops by itself after ``--seconds`` or on SIGTERM (loopback only, bounded in time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time

HEAD = b"POST /preg/v1/Personregister HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
BODY_HEAD = HEAD + b"Content-Length: 1000000\r\n\r\n<"


class Stats:
    def __init__(self) -> None:
        self.opened = 0
        self.closed_by_server = 0
        self.failed = 0
        self.bytes_sent = 0


async def _client(port: int, source: str, body: bool, interval: float, stats: Stats, ready: asyncio.Event,
                  started: list[int], stop: asyncio.Event) -> None:
    first = True
    while not stop.is_set():  # not only cancellation: Python 3.11's wait_for can swallow a cancel
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        except OSError:
            stats.failed += 1
            await asyncio.sleep(interval)
            continue
        stats.opened += 1
        if first:
            first = False
            started[0] += 1
            if started[0] == started[1]:
                ready.set()
        try:
            writer.write(BODY_HEAD if body else HEAD)
            while not stop.is_set():
                await writer.drain()
                try:  # the server answered (a refusal) or closed: open again
                    data = await asyncio.wait_for(reader.read(4096), interval)
                except TimeoutError:
                    writer.write(b" " if body else b"X")
                    stats.bytes_sent += 1
                    continue
                if not data:
                    stats.closed_by_server += 1
                    break
        except OSError:
            stats.closed_by_server += 1
        finally:
            writer.close()


async def _main(args: argparse.Namespace) -> Stats:
    stats = Stats()
    ready = asyncio.Event()
    stop = asyncio.Event()
    started = [0, args.connections]
    tasks = [asyncio.create_task(_client(args.port, f"127.0.0.{10 + i % args.addresses}", i % 2 == 1, args.interval,
                                         stats, ready, started, stop)) for i in range(args.connections)]

    async def announce() -> None:
        await ready.wait()
        print("ready", flush=True)

    announcer = asyncio.create_task(announce())
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # stop early, still summarise
    try:
        await asyncio.wait_for(stop.wait(), args.seconds)
    except TimeoutError:
        pass
    stop.set()
    for task in [*tasks, announcer]:
        task.cancel()
    await asyncio.wait([*tasks, announcer], timeout=5)
    return stats


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.slow_clients", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--addresses", type=int, default=50, help="loopback source addresses (127.0.0.10 and up)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between one connection's bytes")
    p.add_argument("--seconds", type=float, default=30.0, help="stop after this long (always bounded)")
    args = p.parse_args()
    if not 1 <= args.addresses <= 200:
        raise SystemExit("--addresses must be 1..200")
    started = time.monotonic()
    loop = asyncio.new_event_loop()
    stats = loop.run_until_complete(_main(args))
    print(json.dumps({"connections": args.connections, "opened": stats.opened,
                      "closed_by_server": stats.closed_by_server, "connect_failed": stats.failed,
                      "bytes_sent": stats.bytes_sent, "seconds": round(time.monotonic() - started, 1),
                      "cpu_seconds": round(time.process_time(), 2)}), flush=True)
    os._exit(0)  # bounded in time whatever a stuck task does: the sockets close with the process


if __name__ == "__main__":
    sys.exit(main())
