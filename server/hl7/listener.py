"""The MLLP listener: asyncio, moves bytes only. Framing is :mod:`server.hl7.framing`, meaning is the handler's.

Per connection: read whatever arrives, feed the framer, hand each complete frame to the handler (one at a
time, in order, so replies keep the order of requests) and write back what it returns (zero, one or two
MLLP frames). Connections are persistent and many are served at once; a connection is closed when the
peer closes it, after ``idle_timeout`` seconds without a byte, or on a framing error where no reply is
possible (junk before the start block, a frame over the size limit) — with one log line naming the peer
and the error, never message content. An end block not followed by CR still gets its reply, then the
connection closes (the stream is out of sync). Other connections are unaffected by any of this.

The handler is synchronous (store calls are); with an ``executor`` it runs in that thread pool, so a
slow query does not stall the other connections, else on the event loop (fastest for SQLite).

TLS: pass an :class:`ssl.SSLContext`. Several processes on one port: ``reuse_port=True`` binds with
SO_REUSEPORT, and the kernel spreads new connections over every process bound to the port (docs/hl7.md).

Own listener rather than hl7apy's (one message per connection, byte-by-byte reads, UTF-8 only) or
python-hl7's (one codec per server, 64 KiB limit, a decode error kills the connection): research/libraries.md §2.3.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from server.hl7.framing import FramingError, MissingTrailingCR, MllpFramer

__all__ = ["Handler", "MllpListener", "Peer"]

log = logging.getLogger("pregbridge.hl7")
_READ = 1 << 16


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end of one connection; ``connection`` is unique per listener process."""

    host: str
    port: int
    connection: int
    tls: bool = False

    def __str__(self) -> str:
        return f"{self.host}:{self.port}#{self.connection}"


Handler = Callable[[bytes, Peer], bytes]


class MllpListener:
    def __init__(self, handler: Handler, *, max_frame: int = 1 << 20, idle_timeout: float = 300,
                 ssl_context: ssl.SSLContext | None = None, executor: Executor | None = None,
                 on_close: Callable[[Peer], None] | None = None) -> None:
        self.handler = handler
        self.max_frame = max_frame
        self.idle_timeout = idle_timeout or None
        self.ssl_context = ssl_context
        self.executor = executor
        self.on_close = on_close
        self._ids = itertools.count(1)
        self.server: asyncio.Server | None = None
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
        self.server = await asyncio.start_server(self._connection, host, port, ssl=self.ssl_context,
                                                 reuse_port=reuse_port or None, limit=_READ)
        return self.server

    def close_connections(self) -> None:
        """Close every open connection (on shutdown; ``Server.wait_closed`` waits for them from Python 3.12)."""
        for writer in list(self._writers):
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])

    async def _reply(self, frame: bytes, peer: Peer) -> bytes:
        if self.executor is None:
            return self.handler(frame, peer)
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.handler, frame, peer)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        addr = writer.get_extra_info("peername") or ("?", 0)
        peer = Peer(str(addr[0]), int(addr[1]), next(self._ids), writer.get_extra_info("sslcontext") is not None)
        framer = MllpFramer(self.max_frame)
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        data = await reader.read(_READ)
                except TimeoutError:
                    log.info("mllp %s: idle for %ss, closing", peer, self.idle_timeout)
                    break
                if not data:
                    if not framer.idle:
                        log.warning("mllp %s: peer closed inside a frame", peer)
                    break
                try:
                    frames = framer.feed(data)
                except MissingTrailingCR as exc:
                    writer.write(await self._reply(exc.content, peer))
                    await writer.drain()
                    log.warning("mllp %s: closing connection: %s: %s", peer, type(exc).__name__, exc)
                    break
                except FramingError as exc:
                    log.warning("mllp %s: closing connection: %s: %s", peer, type(exc).__name__, exc)
                    break
                for frame in frames:
                    writer.write(await self._reply(frame, peer))
                await writer.drain()
                pending = framer.error
                if pending is not None:
                    if isinstance(pending, MissingTrailingCR):
                        writer.write(await self._reply(pending.content, peer))
                        await writer.drain()
                    log.warning("mllp %s: closing connection: %s: %s", peer, type(pending).__name__, pending)
                    break
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("mllp %s: connection lost (%s)", peer, type(exc).__name__)
        finally:
            self.connections -= 1
            self._writers.discard(writer)
            if self.on_close is not None:
                self.on_close(peer)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
