"""The MLLP listener's transport behaviour over real loopback sockets, with plain handlers (no store).

Each test runs the listener and its clients on one event loop (``asyncio.run``); clients that must block
(a peer that never reads) use a plain socket in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from server.hl7.framing import frame
from server.hl7.listener import MllpListener, Peer

END = b"\x1c\r"


@contextlib.asynccontextmanager
async def listening(handler: Callable[[bytes, Peer], bytes], **kw: Any) -> AsyncIterator[MllpListener]:
    listener = MllpListener(handler, **kw)
    server = await listener.start("127.0.0.1", 0)
    try:
        yield listener
    finally:
        server.close()
        listener.close_connections()
        await server.wait_closed()
        for _ in range(200):  # Python 3.11's wait_closed does not wait for the connections
            if not listener.connections:
                break
            await asyncio.sleep(0.01)


def reply_of(content: bytes, peer: Peer) -> bytes:
    return frame(b"R|" + content)


async def read_replies(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    return [(await reader.readuntil(END))[1:-2] for _ in range(n)]


async def exchange(port: int, data: bytes, n: int) -> list[bytes]:
    """Send ``data``, read ``n`` replies and expect the server to close."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    replies = await read_replies(reader, n)
    assert await reader.read() == b""
    writer.close()
    await writer.wait_closed()
    return replies


async def eventually(check: Callable[[], bool], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_executor_keeps_the_order_of_many_pipelined_frames() -> None:
    running: dict[int, int] = {}
    overlap = []
    lock = threading.Lock()

    def handler(content: bytes, peer: Peer) -> bytes:
        with lock:
            running[peer.connection] = running.get(peer.connection, 0) + 1
            if running[peer.connection] > 1:
                overlap.append(peer.connection)
        time.sleep(random.random() / 5000)
        with lock:
            running[peer.connection] -= 1
        return reply_of(content, peer)

    async def main() -> None:
        with ThreadPoolExecutor(4) as executor:
            async with listening(handler, executor=executor) as listener:
                async def client(k: int) -> None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                    sent = [f"MSH|{k}|{i}".encode() for i in range(2000)]
                    data = b"".join(frame(m) for m in sent)
                    for start in range(0, len(data), 4093):  # many frames per write, split at odd offsets
                        writer.write(data[start:start + 4093])
                    assert await read_replies(reader, len(sent)) == [b"R|" + m for m in sent]
                    writer.close()
                    await writer.wait_closed()

                await asyncio.gather(*(client(k) for k in range(4)))
                await eventually(lambda: listener.connections == 0)
    asyncio.run(main())
    assert not overlap  # one frame at a time per connection


def test_executor_backlog_pauses_reading_then_everything_is_answered_in_order() -> None:
    gate = threading.Event()

    def handler(content: bytes, peer: Peer) -> bytes:
        gate.wait(10)
        return reply_of(content, peer)

    async def main() -> None:
        with ThreadPoolExecutor(2) as executor:
            async with listening(handler, executor=executor) as listener:
                reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
                sent = [f"MSH|{i}|".encode() + b"p" * 200 for i in range(20000)]
                writer.write(b"".join(frame(m) for m in sent))
                await eventually(lambda: len(listener._open) == 1)
                (conn,) = listener._open
                await eventually(lambda: not conn.reading)
                await asyncio.sleep(0.2)
                # at most one read (256 KiB, ~1,250 frames) past the limit; the rest waits in the kernel
                assert not conn.reading and len(conn._queue) < 2000
                gate.set()
                assert await read_replies(reader, len(sent)) == [b"R|" + m for m in sent]
                assert conn.reading
                writer.close()
                await writer.wait_closed()
    asyncio.run(main())


@pytest.mark.parametrize("threads", [0, 2])
def test_a_peer_that_never_reads_does_not_make_the_server_buffer(threads: int) -> None:
    big = frame(b"R|" + b"x" * 8000)  # each small request gets an 8 KB reply

    def handler(content: bytes, peer: Peer) -> bytes:
        return big

    def flood(port: int) -> int:
        request = frame(b"MSH|" + b"q" * 90) * 64
        sent = 0
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(1)
            try:
                while sent < 200_000_000:
                    sent += sock.send(request)
            except TimeoutError:
                pass
            return sent

    async def main() -> None:
        executor = ThreadPoolExecutor(threads) if threads else None
        try:
            async with listening(handler, executor=executor) as listener:
                sending = asyncio.create_task(asyncio.to_thread(flood, listener.port))
                await eventually(lambda: len(listener._open) == 1)
                (conn,) = listener._open
                sent = await sending  # the send blocked: the server stopped reading
                assert conn.transport is not None
                assert conn.write_paused and not conn.reading and not conn.transport.is_reading()
                high = conn.transport.get_write_buffer_limits()[1]
                assert conn.transport.get_write_buffer_size() <= high + len(big)
                # what the peer could send is bounded by the kernel's buffers, not by the server's memory
                assert sent < 100_000_000
                await eventually(lambda: listener.connections == 0)  # the flooding socket is closed
        finally:
            if executor is not None:
                executor.shutdown()
    asyncio.run(main())


def test_idle_timeout_is_reset_by_every_byte(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pregbridge.hl7")
    closed: list[Peer] = []

    async def main() -> None:
        async with listening(reply_of, idle_timeout=0.4, on_close=closed.append) as listener:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
            started = time.monotonic()
            message = frame(b"MSH|slow")
            while time.monotonic() - started < 1.2:  # three idle periods, one byte at a time
                for byte in message:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.02)
                assert await read_replies(reader, 1) == [b"R|MSH|slow"]
            assert not closed
            quiet = time.monotonic()
            assert await reader.read() == b""
            assert 0.3 < time.monotonic() - quiet < 2
            writer.close()
            await writer.wait_closed()
            await eventually(lambda: len(closed) == 1)
    asyncio.run(main())
    assert "idle for 0.4s, closing" in caplog.text


def test_on_close_once_per_connection_however_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pregbridge.hl7")
    closed: list[Peer] = []

    async def main() -> None:
        with ThreadPoolExecutor(2) as executor:
            for ex in (None, executor):
                closed.clear()
                async with listening(reply_of, executor=ex, on_close=closed.append, max_frame=1000) as listener:
                    port = listener.port

                    # junk between frames is skipped: both frames answered, the connection stays open
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(frame(b"MSH|1") + b"junk" + frame(b"MSH|2"))
                    assert await read_replies(reader, 2) == [b"R|MSH|1", b"R|MSH|2"]
                    writer.write(b"\x00junk 01018012345" + frame(b"MSH|3"))
                    assert await read_replies(reader, 1) == [b"R|MSH|3"]
                    writer.write_eof()
                    assert await reader.read() == b""
                    writer.close()
                    await writer.wait_closed()
                    # frames before a framing error are answered, then the connection closes
                    assert await exchange(port, frame(b"MSH|1") + b"\x0bMSH|2\x1cX", 2) == [b"R|MSH|1", b"R|MSH|2"]
                    assert await exchange(port, frame(b"MSH|1") + b"\x0b" + b"x" * 2000, 1) == [b"R|MSH|1"]
                    # half-close after pipelining: every frame is answered, then the server closes
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.write(b"".join(frame(b"MSH|%d" % i) for i in range(50)) + b"\x0bMSH|partial")
                    writer.write_eof()
                    assert await read_replies(reader, 50) == [b"R|MSH|%d" % i for i in range(50)]
                    assert await reader.read() == b""
                    writer.close()
                    await writer.wait_closed()
                    # a reset by the peer
                    with socket.create_connection(("127.0.0.1", port)) as sock:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        sock.sendall(frame(b"MSH|1")[:-3])
                        await eventually(lambda: listener.connections == 1)
                    await eventually(lambda: len(closed) == 5)
                    # open ones closed by the listener on shutdown
                    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
                    await eventually(lambda: listener.connections == 3)
                assert listener.connections == 0
                for r, w in streams:
                    assert await r.read() == b""
                    w.close()
                    await w.wait_closed()
                assert len(closed) == 8 and len({p.connection for p in closed}) == 8
    asyncio.run(main())
    text = caplog.text
    assert "junk before a start block skipped (1 run(s), 4 byte(s) on this connection)" in text
    assert "closed after 2 run(s) of junk, 20 byte(s) skipped" in text and "01018012345" not in text
    assert "MissingTrailingCR" in text and "FrameTooLarge" in text
    assert "connection lost (ConnectionResetError)" in text and "peer closed inside a frame" in text
