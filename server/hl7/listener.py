"""The MLLP listener: asyncio, moves bytes only. Framing is :mod:`server.hl7.framing`, meaning is the handler's.

Per connection: take whatever arrives, feed the framer, hand each complete frame to the handler (one at a
time, in order, so replies keep the order of requests) and write back what it returns (zero, one or two
MLLP frames). Connections are persistent and many are served at once; a connection is closed when the
peer closes it, after ``idle_timeout`` seconds without a byte from the peer, or on a framing error where no
reply is possible (a frame over the size limit) — with one log line naming the peer and the error, never
message content. Junk before a start block is skipped by the framer and the next frame answered; the
log gets the framer's counters (runs and bytes of junk), never the bytes. An end block not followed by CR
still gets its reply, then the connection closes (the stream is out of sync). Frames completed before
any of these errors are answered first. Other connections are unaffected by any of this.

The handler is synchronous (store calls are); with an ``executor`` it runs in that thread pool, so a
slow query does not stall the other connections, else on the event loop (fastest for SQLite). With an
executor each connection keeps a FIFO of frames and runs one at a time, so replies keep their order
however many frames a peer pipelines; past ``_MAX_PENDING`` waiting frames the connection stops reading
until the FIFO is half drained.

Backpressure: when a peer does not read its replies and the transport's write buffer passes its high-water
mark (asyncio's ``pause_writing``), the connection stops answering (frames wait in its FIFO) and stops
reading until the buffer drains, so such a peer costs at most one reply past the high-water mark plus one
read of frames; the kernel's buffers then push back on the peer. It still counts as idle if it sends
nothing, and is then aborted (its unread replies could never be flushed); so it is on shutdown.

TLS: pass an :class:`ssl.SSLContext`. Several processes on one port: ``reuse_port=True`` binds with
SO_REUSEPORT, and the kernel spreads new connections over every process bound to the port (docs/hl7.md).

asyncio's Protocol/Transport API rather than its streams: a stream connection costs a task wake-up per
read, a copy into the StreamReader's buffer and out again, an ``asyncio.timeout`` context (a timer
scheduled and cancelled per read) and a ``drain`` per batch. Here the transport calls
:meth:`_Connection.data_received` directly, each reply is one ``write``, and the idle timer is rearmed
only when it fires (it compares the time of the last byte). Measured as the server process's CPU per
message under ``python -m benchmarks mllp``'s load (docs/hl7.md, Performance): echo 14.8 → 8.4 µs at eight
connections and 42 → 31 µs at one (where the wake-up dominates); a PIX answer 192 → 173 µs, audit included.

Own listener rather than hl7apy's (one message per connection, byte-by-byte reads, UTF-8 only) or
python-hl7's (one codec per server, 64 KiB limit, a decode error kills the connection).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import itertools
import logging
import ssl
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from server.hl7.framing import FramingError, MissingTrailingCR, MllpFramer
from server.logsafe import describe

__all__ = ["Handler", "MllpListener", "Peer", "describe"]

log = logging.getLogger("pregbridge.hl7")
_MAX_PENDING = 32  # frames waiting for the executor before a connection stops reading


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
        self._open: set[_Connection] = set()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port, ssl=self.ssl_context,
                                               reuse_port=reuse_port or None)
        return self.server

    def close_connections(self) -> None:
        """Close every open connection (on shutdown; ``Server.wait_closed`` waits for them from Python 3.12)."""
        for conn in list(self._open):
            conn.close(flush=not conn.write_paused)

    @property
    def port(self) -> int:
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])


class _Connection(asyncio.Protocol):
    """One MLLP connection: framer in, handler, replies out, in order.

    Frames go through a FIFO: :meth:`_pump` answers them in order, on the loop or one at a time in the
    executor, and stops while the transport's write buffer is over its high-water mark. Reading is paused
    while writing is, while too many frames wait, and once the connection is to close.
    """

    def __init__(self, listener: MllpListener) -> None:
        self.listener = listener
        self.handler = listener.handler
        self.executor = listener.executor
        self.idle_timeout = listener.idle_timeout
        self.loop = asyncio.get_running_loop()
        self.framer = MllpFramer(listener.max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = Peer("?", 0, 0)
        self.closed = False
        self.write_paused = False
        self.reading = True
        self._queue: collections.deque[bytes] = collections.deque()  # frames not yet answered
        self._running = False  # a frame is in the executor
        self._final: FramingError | None = None  # close with this error once the queue is answered
        self._eof = False  # the peer half-closed: close once the queue is answered
        self._last = 0.0  # loop time of the last byte received (or of the last reply, with an executor)
        self._timer: asyncio.TimerHandle | None = None
        self._junk_logged = 0  # the framer's junk_runs when last logged

    # -- asyncio callbacks ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        addr = transport.get_extra_info("peername") or ("?", 0)
        self.peer = Peer(str(addr[0]), int(addr[1]), next(self.listener._ids),
                         transport.get_extra_info("sslcontext") is not None)
        self.listener.connections += 1
        self.listener._open.add(self)
        if self.idle_timeout is not None:
            self._last = self.loop.time()
            self._timer = self.loop.call_at(self._last + self.idle_timeout, self._idle)

    def data_received(self, data: bytes) -> None:
        if self.closed or self._final is not None:
            return
        if self._timer is not None:
            self._last = self.loop.time()
        try:
            frames = self.framer.feed(data)
        except MissingTrailingCR as exc:
            self._fail(exc, exc.content)
            return
        except FramingError as exc:
            self._fail(exc, None)
            return
        if self.framer.junk_runs != self._junk_logged:
            self._junk_logged = self.framer.junk_runs
            log.warning("mllp %s: junk before a start block skipped (%d run(s), %d byte(s) on this connection)",
                        self.peer, self.framer.junk_runs, self.framer.junk_bytes)
        self._queue.extend(frames)
        pending = self.framer.error
        if pending is not None:
            self._fail(pending, pending.content if isinstance(pending, MissingTrailingCR) else None)
            return
        self._pump()
        if len(self._queue) >= _MAX_PENDING:
            self._update_reading()

    def eof_received(self) -> bool:
        if not self.framer.idle:
            log.warning("mllp %s: peer closed inside a frame", self.peer)
        if self._running or self._queue:
            # half-closed: answer what is queued, then close (TLS cannot stay half-open)
            self._eof = True
            self._update_reading()
            return not self.peer.tls
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.info("mllp %s: connection lost (%s)", self.peer, type(exc).__name__)
        if self.framer.junk_runs:
            log.info("mllp %s: closed after %d run(s) of junk, %d byte(s) skipped", self.peer, self.framer.junk_runs,
                     self.framer.junk_bytes)
        self.closed = True
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self in self.listener._open:
            self.listener._open.discard(self)
            self.listener.connections -= 1
            if self.listener.on_close is not None:
                self.listener.on_close(self.peer)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._pump()

    # -- internals -------------------------------------------------------------------------------------

    def close(self, *, flush: bool = True) -> None:
        if self.transport is not None and not self.closed:
            if flush:
                self.transport.close()
            else:
                self.transport.abort()

    def _pump(self) -> None:
        """Answer queued frames in order until the queue is empty, the executor has one, or writing is paused;
        with the queue answered, close if that is due, else make sure the connection is reading."""
        if self.closed or self._running:
            return
        queue = self._queue
        if self.executor is not None:
            if queue and not self.write_paused:
                self._running = True
                future = self.executor.submit(self.handler, queue.popleft(), self.peer)
                future.add_done_callback(self._finished_in_thread)
                if not self.reading:
                    self._update_reading()
                return
        else:
            handler, peer, transport = self.handler, self.peer, self.transport
            assert transport is not None
            while queue and not self.write_paused:
                try:
                    reply = handler(queue.popleft(), peer)
                except Exception as exc:
                    self._handler_failed(exc)
                    return
                transport.write(reply)
        if queue:  # writing is paused; resume_writing pumps again
            return
        if self._final is not None:
            log.warning("mllp %s: closing connection: %s: %s", self.peer, type(self._final).__name__, self._final)
            self.close()
        elif self._eof:
            self.close()
        else:
            if self._timer is not None and self.executor is not None:
                self._last = self.loop.time()
            if not self.reading:
                self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        want = not (self.write_paused or self._final is not None or self._eof) and len(self._queue) < (
            _MAX_PENDING if self.reading else _MAX_PENDING // 2)
        if want != self.reading:
            self.reading = want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    def _fail(self, exc: FramingError, content: bytes | None) -> None:
        """Answer every earlier frame and then ``content`` (if any), then log and close."""
        if content is not None:
            self._queue.append(content)
        self._final = exc
        self._update_reading()
        self._pump()

    def _handler_failed(self, exc: Exception) -> None:
        log.error("mllp %s: handler failed (%s), closing connection", self.peer, describe(exc))
        self.close()

    def _finished_in_thread(self, future: concurrent.futures.Future[bytes]) -> None:
        try:
            self.loop.call_soon_threadsafe(self._finished, future)
        except RuntimeError:  # the loop is closed: nobody to answer
            pass

    def _finished(self, future: concurrent.futures.Future[bytes]) -> None:
        self._running = False
        if self.closed:
            return
        try:
            reply = future.result()
        except Exception as exc:
            self._handler_failed(exc)
            return
        assert self.transport is not None
        self.transport.write(reply)
        self._pump()

    def _idle(self) -> None:
        """Timer: close if no byte arrived for ``idle_timeout`` seconds (not while the executor has a frame)."""
        self._timer = None
        if self.closed or self.idle_timeout is None:
            return
        now = self.loop.time()
        if self._running:
            due = now + self.idle_timeout
        else:
            due = self._last + self.idle_timeout
            if due <= now + 0.001:
                log.info("mllp %s: idle for %ss, closing", self.peer, self.idle_timeout)
                self.close(flush=not self.write_paused)
                return
        self._timer = self.loop.call_at(due, self._idle)
