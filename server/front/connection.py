"""One client connection of the front: read a whole request under deadlines, then run the WSGI app on it.

An :class:`asyncio.Protocol` driven by h11's sans-I/O HTTP/1.1 state machine. Each connection moves
through these states, each with the one deadline that can end it::

    IDLE ──first byte──▶ HEAD ──headers complete──▶ BODY ──end of body──▶ RESPONDING ──▶ IDLE (kept alive)

    IDLE        header_timeout from connect (then 408), or keep_alive after a response (then closed)
    HEAD        header_timeout from connect, or from a kept-alive request's first byte: 408
    BODY        body_timeout + received bytes / body_min_rate, from the end of the headers: 408
    RESPONDING  send_timeout while the client does not read the response: aborted

The WSGI app runs only in RESPONDING, synchronously in the worker's one thread (as gunicorn's sync
worker runs it), on a request that is already whole: its body waits in memory, or in a temporary file
past ``spool_threshold`` bytes. So a client that sends a byte every few seconds holds a socket and a few
KiB, never the worker; other connections are served in between. A malformed, over-long or late request
is answered by :mod:`server.front.answers` and the connection closed. A response is written as fast as
the client reads it: the app's iterable is resumed only when the transport's buffer has drained.

A response goes to the socket in as few writes as it can: its head, its body chunks and its end are
gathered (up to :data:`_GATHER` bytes) into one ``writelines``, so a SOAP answer of a few KiB leaves in one
``send`` and one TCP segment. Each accepted socket also gets ``TCP_NODELAY``: asyncio sets it only on a
socket whose ``proto`` is ``IPPROTO_TCP``, and gunicorn's listeners are made with ``proto`` 0, which their
accepted sockets inherit. Written as a head and then a body, with Nagle's algorithm on, the body waited
for the client's ACK of the head, which a client in Linux's delayed-ACK ("pingpong") mode holds 40 ms or
more: measured on HPR HentPerson through the benchmark's static answer, a p99 of 97 ms (docs/benchmarks.md).

No request content reaches the log: a refusal logs the client address and a fixed reason; an exception
escaping the app (the faces catch their own) logs its type and answers a plain 500.
"""

from __future__ import annotations

import asyncio
import enum
import io
import logging
import re
import socket
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Final
from urllib.parse import unquote_to_bytes

import h11

from server.front.answers import Refusal, answer

if TYPE_CHECKING:
    from server.front.front import Front

__all__ = ["Connection"]

log = logging.getLogger("server.front")

_ERROR_BODY: Final = b"internal error\n"
_TEXT_500: Final = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"Content-Length", b"15"),
                    (b"Connection", b"close")]


# What a refusal hands to the front's refusal hook besides the peer (server/front/front.py): the headers that
# name the attempted account and the client behind trusted proxies, and the request's path. Nothing else of
# the request, never its body.
_AUDITED_HEADERS: Final = {b"authorization": "HTTP_AUTHORIZATION", b"x-forwarded-for": "HTTP_X_FORWARDED_FOR",
                           b"forwarded": "HTTP_FORWARDED"}
_REQUEST_LINE: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,20} ([^ \r\n]{1,8192})[ \r\n]")
_GATHER: Final = 64 * 1024
"""Body bytes of a response gathered before they are written (module docstring): one write for an ordinary
answer; past it, a large one is written in pieces, the flow control checked after each."""


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on the connection's TCP socket (module docstring); anything else is left."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # the peer already gone: connection_lost follows
            pass


def _origin_form(target: bytes) -> bytes:
    """A request target in origin form: an absolute form's path and query."""
    if target[:1] != b"/" and b"://" in target[:10]:
        return b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
    return target


def _path_of(target: bytes) -> str:
    """The path of a request target (origin or absolute form), without its query."""
    return _origin_form(target).partition(b"?")[0].decode("latin-1")


class _State(enum.Enum):
    IDLE = 1
    HEAD = 2
    BODY = 3
    RESPONDING = 4
    CLOSED = 5


def _refusal_of(exc: h11.RemoteProtocolError) -> Refusal:
    hint = exc.error_status_hint
    if hint == 431:
        return Refusal.HEADERS_TOO_LARGE
    if hint == 501:
        return Refusal.UNSUPPORTED
    return Refusal.MALFORMED


class Connection(asyncio.Protocol):
    """One client connection (module docstring); ``front`` holds the app, the limits and the counters."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.limits = front.limits
        self.loop = front.loop
        self.state = _State.IDLE
        self.transport: asyncio.Transport | None = None
        self.address = ""
        self.port = 0
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)
        self.head = bytearray()  # the raw head of the current request, for refusals (at most max_header_bytes)
        self.request: h11.Request | None = None
        self.body: bytearray | IO[bytes] = bytearray()
        self.received = 0
        self.body_started = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False  # the transport's write buffer is full
        self.response: Iterator[bytes] | None = None
        self.result: Iterable[bytes] | None = None
        self.head_only = False
        self.headers_sent = False  # h11 has framed the response head (it may still wait in a gathered write)
        self.written = False  # a byte of the response has gone to the transport
        self.gathered: list[bytes] = []  # the response's bytes not yet written (module docstring)
        self.pending_headers: tuple[str, list[tuple[str, str]]] | None = None
        self.served = 0

    # -- asyncio callbacks ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.address, self.port = str(peer[0]), int(peer[1])
        busy = self.front.admit(self)
        if busy is not None:
            self.state = _State.CLOSED
            transport.write(busy)
            transport.close()
            return
        _no_delay(transport)
        self._arm(self.limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.state is _State.CLOSED:
            return
        if self.state is _State.IDLE:
            self.state = _State.HEAD
            if self.served:  # a kept-alive connection: the headers' deadline starts at their first byte
                self._arm(self.limits.header_timeout)
        if self.state is _State.HEAD:
            room = self.limits.max_header_bytes + 1 - len(self.head)
            if room > 0:
                self.head += data[:room]
        try:
            self.h11.receive_data(data)
        except RuntimeError:  # data after the client closed its side: nothing to do with it
            return
        if self.state is _State.RESPONDING:  # a pipelined request while a response waits for the client
            if self.transport is not None:
                self.transport.pause_reading()
            return
        self._process()

    def eof_received(self) -> bool:
        if self.state is not _State.RESPONDING:  # idle, or a request cut short: nobody to answer
            self._close()
            return False
        try:
            self.h11.receive_data(b"")
        except RuntimeError:
            pass
        return True  # a response is still being written: this connection closes when it is done

    def pause_writing(self) -> None:
        self.paused = True
        self._arm(self.limits.send_timeout)

    def resume_writing(self) -> None:
        self.paused = False
        if self.state is _State.RESPONDING and self.response is not None:
            self._cancel_timer()
            if self._pump():
                self._next_cycle()
                self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = _State.CLOSED
        self._cancel_timer()
        self._close_result()
        self._drop_body()
        self.front.release(self)

    # -- reading -------------------------------------------------------------------------------------

    def _process(self) -> None:
        """Feed h11's events to the request handling until it needs more bytes (or the connection ends)."""
        while self.state in (_State.IDLE, _State.HEAD, _State.BODY):
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(_refusal_of(exc))
                return
            if event is h11.NEED_DATA:
                if self.state is _State.HEAD and b"\n" not in self.head[: self.limits.max_request_line + 2] \
                        and len(self.head) > self.limits.max_request_line:
                    self._refuse(Refusal.LINE_TOO_LONG)
                return
            kind = type(event)
            if kind is h11.Data:
                self._on_data(event.data)  # type: ignore[union-attr]
            elif kind is h11.Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is h11.EndOfMessage:
                if not self._respond():
                    return  # waiting for the client to read, or closed
                self._next_cycle()
            elif kind is h11.ConnectionClosed:
                self._close()
                return
            else:  # PAUSED: h11 waits for the end of our response
                return

    def _on_request(self, request: h11.Request) -> None:
        limits = self.limits
        if len(request.target) > limits.max_request_line:
            self._refuse(Refusal.LINE_TOO_LONG, request)
            return
        size = len(request.target) + sum(len(name) + len(value) + 4 for name, value in request.headers)
        if len(request.headers) > limits.max_header_fields or size > limits.max_header_bytes:
            self._refuse(Refusal.HEADERS_TOO_LARGE, request)
            return
        declared = 0
        for name, value in request.headers:
            if name == b"content-length":
                declared = int(value)  # h11 has checked it is a number
        if declared > limits.max_body:
            self._refuse(Refusal.BODY_TOO_LARGE, request)
            return
        self.request = request
        self.received = 0
        self.body = bytearray() if declared <= limits.spool_threshold else self._spool()
        self.state = _State.BODY
        self.body_started = self.loop.time()
        self._arm(limits.body_timeout + declared / limits.body_min_rate)
        if self.h11.they_are_waiting_for_100_continue and self.transport is not None:
            self.transport.write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[])))

    def _spool(self) -> IO[bytes]:
        return tempfile.TemporaryFile(dir=self.front.spool_dir)  # noqa: SIM115 - closed in _drop_body

    def _on_data(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limits.max_body:
            self._refuse(Refusal.BODY_TOO_LARGE)
            return
        body = self.body
        if isinstance(body, bytearray):
            body += data
            if len(body) > self.limits.spool_threshold:
                spool = self._spool()
                spool.write(body)
                self.body = spool
        else:
            body.write(data)

    # -- deadlines -----------------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(seconds, self._expired)

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        state = self.state
        if state is _State.BODY:
            limits = self.limits
            deadline = self.body_started + limits.body_timeout + self.received / limits.body_min_rate
            now = self.loop.time()
            if now < deadline:  # the body kept coming at the minimum rate: it has until then
                self.timer = self.loop.call_at(deadline, self._expired)
                return
            self._refuse(Refusal.BODY_TIMEOUT)
        elif state is _State.HEAD or (state is _State.IDLE and not self.served):
            self._refuse(Refusal.HEADER_TIMEOUT)
        elif state is _State.IDLE:  # a kept-alive connection idle for keep_alive seconds
            self._close()
        elif state is _State.RESPONDING:  # the client stopped reading the response
            self.front.note("send timeout", self.address)
            self._abort()

    # -- answering -----------------------------------------------------------------------------------

    def _respond(self) -> bool:
        """Run the app on the whole request; True when its response is written and the connection stays."""
        self.state = _State.RESPONDING
        self._cancel_timer()
        request = self.request
        assert request is not None
        self.head_only = request.method == b"HEAD"
        self.headers_sent = False
        self.written = False
        self.gathered = []
        self.pending_headers = None
        environ = self._environ(request)
        self.head = bytearray()
        try:
            self.result = self.front.app(environ, self._start_response)
            self.response = iter(self.result)
        except Exception as exc:  # noqa: BLE001 - every face catches its own; this is the last net
            self._internal_error(exc)
            return False
        return self._pump()

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.headers_sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.pending_headers = (status, headers)  # h11 checks them when they are sent
        return self._write

    def _write(self, data: bytes) -> None:  # WSGI's legacy write(): send at once, after what is gathered
        self.gathered += self._framed(data)
        self._flush()

    def _framed(self, data: bytes) -> list[bytes]:
        """What puts ``data`` on the wire: the response head when not yet framed, then ``data`` in the
        response's framing (none for a HEAD request)."""
        out = [] if self.headers_sent else self._head()
        if data and not self.head_only:
            out += self._wire(h11.Data(data=data))
        return out

    def _wire(self, event: h11.Response | h11.Data | h11.EndOfMessage) -> list[bytes]:
        """h11's bytes for ``event``, a body chunk passed through uncopied."""
        out = self.h11.send_with_data_passthrough(event)
        assert out is not None  # None only for ConnectionClosed
        return out

    def _flush(self) -> None:
        out, self.gathered = self.gathered, []
        if out:
            assert self.transport is not None
            self.transport.writelines(out)
            self.written = True

    def _head(self) -> list[bytes]:
        pending = self.pending_headers
        if pending is None:
            raise RuntimeError("the app sent a body before calling start_response")
        status, given = pending
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in given]
        headers.append((b"Date", self.front.date()))
        result = self.result
        if isinstance(result, (list, tuple)) and not any(k.lower() == "content-length" for k, _ in given):
            headers.append((b"Content-Length", str(sum(len(chunk) for chunk in result)).encode()))  # keep-alive
        code, _, reason = status.partition(" ")
        response = h11.Response(status_code=int(code), reason=reason.encode("latin-1"), headers=headers)
        self.headers_sent = True
        return self._wire(response)

    def _pump(self) -> bool:
        """Write the app's chunks until its iterable ends (True) or the client must read first (False), gathered
        into as few writes as :data:`_GATHER` allows (module docstring)."""
        response = self.response
        assert response is not None
        gathered = 0
        try:
            for chunk in response:
                if chunk:
                    self.gathered += self._framed(chunk)
                    gathered += len(chunk)
                if gathered >= _GATHER or self.paused:
                    self._flush()
                    gathered = 0
                    if self.paused:
                        return False
            if not self.headers_sent:
                self.gathered += self._head()
            self.gathered += self._wire(h11.EndOfMessage())
            self._flush()
        except Exception as exc:  # noqa: BLE001 - as in _respond
            self._internal_error(exc)
            return False
        self.served += 1
        self.front.served += 1
        self._close_result()
        self._drop_body()
        return True

    def _next_cycle(self) -> None:
        """After a whole response: close, or wait for the next request on this connection."""
        if self.state is _State.CLOSED:
            return
        if self.h11.our_state is h11.MUST_CLOSE or self.front.stopping:
            self._close()
            return
        try:
            self.h11.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        self.state = _State.IDLE
        self.request = None
        self._arm(self.limits.keep_alive)
        buffered, _closed = self.h11.trailing_data
        if buffered:
            self.state = _State.HEAD
            self.head += buffered[: self.limits.max_header_bytes + 1]
            self._arm(self.limits.header_timeout)
        if self.transport is not None:
            self.transport.resume_reading()

    def _environ(self, request: h11.Request) -> dict[str, Any]:
        path, _, query = _origin_form(request.target).partition(b"?")
        body = self.body
        if isinstance(body, bytearray):
            stream: IO[bytes] = io.BytesIO(body)
        else:
            body.seek(0)
            stream = body
        front = self.front
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method.decode("ascii"),
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "SERVER_NAME": front.server_name,
            "SERVER_PORT": front.server_port,
            "SERVER_PROTOCOL": "HTTP/" + request.http_version.decode("ascii"),
            "REMOTE_ADDR": self.address,
            "REMOTE_PORT": str(self.port),
            "CONTENT_LENGTH": str(self.received),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": front.scheme,
            "wsgi.input": stream,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
        }
        for raw_name, raw_value in request.headers:  # h11 gives names lower-cased
            if raw_name == b"content-length":
                continue
            value = raw_value.decode("latin-1")
            if raw_name == b"content-type":
                environ["CONTENT_TYPE"] = value
                continue
            if b"_" in raw_name:  # HTTP_X_A could come from X-A or X_A: drop the ambiguous form (as gunicorn does)
                continue
            key = "HTTP_" + raw_name.decode("ascii").upper().replace("-", "_")
            environ[key] = environ[key] + "," + value if key in environ else value
        return environ

    # -- ending --------------------------------------------------------------------------------------

    def _refuse(self, refusal: Refusal, request: h11.Request | None = None) -> None:
        request = request or self.request
        environ = {"REMOTE_ADDR": self.address}
        if request is not None:
            for name, value in request.headers:
                key = _AUDITED_HEADERS.get(name)
                if key is not None:
                    environ[key] = value.decode("latin-1")
            path: str | None = _path_of(request.target)
        else:
            line = _REQUEST_LINE.match(self.head)
            path = _path_of(line[1]) if line else None
        self.front.refuse(f"{refusal.status.partition(' ')[0]} {refusal.name.lower().replace('_', ' ')}",
                          self.address, environ, path)
        if self.transport is not None and self.state is not _State.CLOSED:
            self.transport.write(answer(refusal, bytes(self.head)))
        self._close()

    def _internal_error(self, exc: Exception) -> None:
        log.error("request from %s: %s.%s escaped the app; answered 500", self.address,
                  type(exc).__module__, type(exc).__qualname__)
        self._close_result()
        self.gathered = []  # a response cut short: what it had gathered is not sent
        if self.transport is not None and not self.written:
            self.transport.write(b"HTTP/1.1 500 Internal Server Error\r\n"
                                 + b"".join(k + b": " + v + b"\r\n" for k, v in _TEXT_500) + b"\r\n" + _ERROR_BODY)
            self._close()
        else:
            self._abort()

    def _close_result(self) -> None:
        result, self.result, self.response = self.result, None, None
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - a failing close() must not take the worker down
                log.error("closing a response raised %s", type(exc).__qualname__)

    def _drop_body(self) -> None:
        body, self.body = self.body, bytearray()
        if not isinstance(body, bytearray):
            body.close()

    def _close(self) -> None:
        self.state = _State.CLOSED
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def _abort(self) -> None:
        self.state = _State.CLOSED
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    def close_if_idle(self) -> bool:
        """Close now if no request body or response is in progress (the worker is stopping): an idle
        connection or one still sending headers; True when closed."""
        if self.state in (_State.IDLE, _State.HEAD):
            self._close()
            return True
        return self.state is _State.CLOSED

    def abort(self) -> None:
        self._abort()
