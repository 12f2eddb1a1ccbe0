"""How the front writes a response (issue 15, the HPR HentPerson tail): in one TCP segment when it fits, and
with Nagle's algorithm off on every accepted socket (server/front/connection.py's docstring tells why).

gunicorn makes its listening sockets with ``proto`` 0, their accepted sockets inherit it, and asyncio sets
``TCP_NODELAY`` only where ``proto`` is ``IPPROTO_TCP``: so the front wrote each answer as a head and then a
body, the body held back until the client acknowledged the head — 40 ms and more under a client's delayed
ACK. The cases here serve a :class:`~server.front.front.Front` from an asyncio loop on a listening socket
made as gunicorn makes it, and count the TCP data segments the client received for each response (Linux's
``TCP_INFO``, ``tcpi_data_segs_in``; skipped where the kernel does not report it); the last case does the
same against a real ``pregbridge serve`` (SQLite only: the front does not depend on the store).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import h11
import pytest

from server.config import HttpSettings
from server.front.connection import Connection
from server.front.front import Front
from tests.hostile.served import PASSWORD, USER, served
from tests.integration.preg_support import CT11, PATH, envelope

App = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
BODY = b"<answer>" + "Søk påTidspunkt ".encode() * 180 + b"</answer>"  # ~3 KiB, HentPerson's size

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts segments with Linux TCP_INFO")


def _data_segments_in(sock: socket.socket) -> int:
    """TCP data segments this socket has received (``tcpi_data_segs_in``, Linux 4.6 and later)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 160:
        pytest.skip("this kernel's TCP_INFO has no tcpi_data_segs_in")
    return int(struct.unpack_from("I", info, 152)[0])


@contextlib.contextmanager
def _front(app: App, limits: HttpSettings | None = None) -> Iterator[tuple[int, Front, asyncio.AbstractEventLoop]]:
    """``app`` behind a front served from a loop in a thread, on a listener made as gunicorn makes its own."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, as gunicorn.sock.BaseSocket
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    loop = asyncio.new_event_loop()
    front = Front(app, limits or HttpSettings(), loop)
    server = loop.run_until_complete(loop.create_server(lambda: Connection(front), sock=listener))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], front, loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


class Client:
    """One kept-alive client connection that reads whole responses with h11 and counts their segments."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.h11 = h11.Connection(h11.CLIENT)

    def exchange(self, method: str = "POST", path: str = "/", body: bytes = b"<ask/>",
                 headers: Iterable[tuple[str, str]] = (), *, pause: float = 0.0) -> tuple[int, bytes, int]:
        """(status, body, data segments) of one request; ``pause`` seconds between reads (a slow reader)."""
        before = _data_segments_in(self.sock)
        sent = [("Host", "127.0.0.1"), *headers] + ([("Content-Length", str(len(body)))] if method != "GET" else [])
        self.sock.sendall(self.h11.send(h11.Request(method=method, target=path, headers=sent)))
        if method != "GET":
            self.sock.sendall(self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage()))
        else:
            self.sock.sendall(self.h11.send(h11.EndOfMessage()))
        status, received = 0, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                time.sleep(pause)
                self.h11.receive_data(self.sock.recv(16384 if pause else 65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                received += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        return status, received, _data_segments_in(self.sock) - before

    def close(self) -> None:
        self.sock.close()


def _answers(chunks: Callable[[], Iterable[bytes]], headers: list[tuple[str, str]] | None = None) -> App:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8"), *(headers or [])])
        return chunks()

    return app


def _generated() -> Iterator[bytes]:
    yield from (BODY[i:i + 500] for i in range(0, len(BODY), 500))


APPS: dict[str, App] = {
    "one chunk": _answers(lambda: [BODY]),
    "several chunks": _answers(lambda: [BODY[:100], BODY[100:2000], BODY[2000:]]),
    "a generator with Content-Length": _answers(_generated, [("Content-Length", str(len(BODY)))]),
    "a generator, chunked": _answers(_generated),
}


@pytest.mark.parametrize("shape", list(APPS))
def test_an_answer_of_a_few_kib_leaves_in_one_segment(shape: str) -> None:
    with _front(APPS[shape]) as (port, _, _):
        client = Client(port)
        try:
            for _ in range(3):  # kept alive: every response, not only the first
                status, body, segments = client.exchange()
                assert (status, body) == (200, BODY)
                assert segments == 1, f"{shape}: the response came in {segments} TCP segments"
        finally:
            client.close()


def test_accepted_sockets_have_nagle_off() -> None:
    async def nodelay_of(front: Front) -> list[tuple[int, int]]:
        socks = [c.transport.get_extra_info("socket") for c in front.connections if c.transport is not None]
        return [(s.proto, s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) for s in socks]

    with _front(APPS["one chunk"]) as (port, front, loop):
        client = Client(port)
        try:
            assert client.exchange()[0] == 200
            seen = asyncio.run_coroutine_threadsafe(nodelay_of(front), loop).result(5)
        finally:
            client.close()
    assert len(seen) == 1
    proto, nodelay = seen[0]
    assert proto == 0  # the case asyncio leaves alone (module docstring)
    assert nodelay != 0


def test_a_head_request_gets_the_head_alone_in_one_segment() -> None:
    with _front(APPS["one chunk"]) as (port, _, _):
        client = Client(port)
        try:
            status, body, segments = client.exchange("HEAD", body=b"")
            assert (status, body, segments) == (200, b"", 1)
            assert client.exchange()[:2] == (200, BODY)  # the connection goes on
        finally:
            client.close()


def test_a_large_answer_is_written_in_pieces_as_the_client_reads() -> None:
    """Past the gathering limit the front writes piece by piece under the transport's flow control: a slow
    reader gets every byte, in order, and the connection serves the next request."""
    big = bytes(range(256)) * 4096 * 6  # 6 MiB in 96 KiB chunks
    app = _answers(lambda: (big[i:i + 98304] for i in range(0, len(big), 98304)))
    with _front(app, HttpSettings(send_timeout=20.0)) as (port, _, _):
        client = Client(port)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        try:
            status, body, segments = client.exchange(pause=0.0005)
            assert status == 200 and len(body) == len(big) and body == big
            assert segments > 1
            assert client.exchange()[:2] == (200, big)
        finally:
            client.close()


def test_write_during_the_iterable_keeps_the_order_of_the_bytes() -> None:
    """WSGI's legacy ``write()`` called while the front is gathering the iterable's chunks: what was gathered
    goes first."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        environ["wsgi.input"].read()
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        yield b"one "
        write(b"two ")
        yield b"3"

    with _front(app) as (port, _, _):
        client = Client(port)
        try:
            assert client.exchange()[:2] == (200, b"one two 3")
        finally:
            client.close()


def test_an_app_failing_before_a_byte_is_written_gets_a_plain_500() -> None:
    """The head gathered with a first chunk is not yet written when the app's iterable raises: the client gets
    the front's plain 500, not a cut-off 200."""

    def failing() -> Iterator[bytes]:
        yield b"<partial"
        raise RuntimeError("the answer could not be built")

    with _front(_answers(failing)) as (port, _, _):
        client = Client(port)
        try:
            status, body, _ = client.exchange()
        finally:
            client.close()
    assert (status, body) == (500, b"internal error\n")


def test_pregbridge_serve_writes_each_answer_in_one_segment(tmp_path: Path) -> None:
    """Through gunicorn's own listener and :class:`~server.front.worker.FrontWorker`: /health and a PREG
    getPerson, each in one segment."""
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with served(f"sqlite:///{tmp_path / 'store.sqlite'}", tmp_path, {}, workers=1) as srv:
        client = Client(srv.port)
        try:
            status, body, segments = client.exchange("GET", "/health")
            assert (status, segments) == (200, 1), body[:200]
            request = envelope("1.1", f"<p:getPerson><p:personnummer>{srv.pop.ordinary}</p:personnummer>"
                                      "</p:getPerson>")
            for _ in range(3):
                status, body, segments = client.exchange(
                    "POST", PATH, request, [("Content-Type", CT11), ("Authorization", f"Basic {auth}")])
                assert status == 200 and b"getPersonResponse" in body, body[:300]
                assert segments == 1, f"getPerson came in {segments} TCP segments"
        finally:
            client.close()
