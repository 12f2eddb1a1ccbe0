"""``FrontWorker``: a gunicorn worker class that serves its pre-forked process's WSGI app through the front.

gunicorn still does everything around the worker: binding, pre-forking, the ``post_fork`` and
``worker_exit`` hooks (the audit flush and the Filematch washers' stop in server/runner.py), building the
app after the fork (``load``), restarting a dead worker, and killing one that stops calling ``notify``
for ``timeout`` seconds. The worker itself runs one asyncio event loop: every listening socket gunicorn
gives it is served with :class:`server.front.connection.Connection`, and a tick once a second tells the
arbiter the worker is alive, checks that the arbiter still is, and notices a stop. On SIGTERM the worker
stops accepting, closes idle connections, and gives requests in progress ``graceful_timeout`` seconds.

The limits are the ``[http]`` settings (docs/config.md): those of the gunicorn application when it is
pregbridge's own (``pregbridge serve``), else built from the environment and ``PREGBRIDGE_CONFIG``
(``gunicorn --worker-class server.front.worker.FrontWorker 'module:app()'``, as the benchmarks run it).
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import ssl
from types import FrameType
from typing import Any

from gunicorn.sock import ssl_context
from gunicorn.workers.base import Worker

from server.config import HttpSettings, Settings, load_settings
from server.front.connection import Connection
from server.front.front import REFUSAL_HOOK, Front

__all__ = ["FrontWorker"]

_TICK = 1.0


def _raise_open_files(wanted: int) -> None:
    """Raise this process's soft limit on open files towards ``wanted`` (never past the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class FrontWorker(Worker):  # type: ignore[misc]
    """A pre-forked gunicorn worker reading requests with the front (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.fronts: list[Front] = []
        self._starting: set[asyncio.Task[Any]] = set()

    def settings(self) -> HttpSettings:
        settings = getattr(self.app, "settings", None)
        return settings.http if isinstance(settings, Settings) else load_settings().http

    def init_process(self) -> None:
        _raise_open_files(self.settings().max_connections + 64)
        super().init_process()

    def run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        limits = self.settings()
        tls = ssl_context(self.cfg) if self.cfg.is_ssl else None
        listening: list[socket.socket] = []
        for listener in self.sockets:
            sock: socket.socket = listener.sock
            sock.setblocking(False)
            name = sock.getsockname()
            host, port = (str(name[0]), str(name[1])) if isinstance(name, tuple) else ("localhost", "80")
            front = Front(self.wsgi, limits, loop, scheme="https" if tls else "http", server_name=host,
                          server_port=port, on_refusal=getattr(self.wsgi, REFUSAL_HOOK, None))
            self.fronts.append(front)
            loop.add_reader(sock, self._accept, loop, sock, front, tls)
            listening.append(sock)
        while self.alive:
            self.notify()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            try:
                await asyncio.wait_for(self._stop.wait(), _TICK)
            except TimeoutError:
                pass
        for sock in listening:
            loop.remove_reader(sock)
        await asyncio.gather(*(front.shutdown(float(self.cfg.graceful_timeout)) for front in self.fronts))

    def _accept(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, front: Front,
                tls: ssl.SSLContext | None) -> None:
        """Accept one connection per wake-up. asyncio's own servers accept up to ``backlog`` at once: the
        worker that woke first took a whole burst (wrk's 8 connections, all kept alive), and the other
        workers idled (measured: 0.74 of the sync worker's throughput on 2 workers)."""
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it
        except OSError as exc:  # out of file descriptors, mostly: the connection waits in the backlog
            self.log.warning("accept failed: %s", exc.strerror or type(exc).__name__)
            loop.remove_reader(sock)  # level-triggered: do not spin; try again in a moment
            loop.call_later(0.1, loop.add_reader, sock, self._accept, loop, sock, front, tls)
            return
        conn.setblocking(False)
        limits = front.limits
        task = loop.create_task(loop.connect_accepted_socket(
            lambda: Connection(front), conn, ssl=tls, ssl_handshake_timeout=limits.header_timeout if tls else None))
        self._starting.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._started)

    def _started(self, task: asyncio.Task[Any]) -> None:
        self._starting.discard(task)
        if not task.cancelled() and task.exception() is not None:  # a TLS handshake that failed or timed out
            self.log.debug("a connection did not start: %s", type(task.exception()).__name__)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.alive = False
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)

    def init_signals(self) -> None:
        super().init_signals()
        signal.siginterrupt(signal.SIGTERM, True)  # wake the loop's select at once

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        if cfg.threads > 1:
            log.warning("FrontWorker runs the app in one thread per process: threads is ignored")
