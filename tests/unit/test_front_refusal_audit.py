"""The front's refusal hook (issue 13, item 8): what a real front hands it, and the audit record it becomes.

The first part serves a :class:`server.front.front.Front` on a loopback socket from an asyncio loop and
sends it requests it must refuse: the hook gets the outcome, the request's path when its line was read,
and of the headers only ``Authorization`` and the proxy headers. The second part checks the composition's
hook (:func:`server.bootstrap.front_refusal_audit`): the Basic username (never the password), the client
address with trusted proxies applied, the path cut and sanitised, on a real audit writer and store.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.access import AuditWriter, TrustedProxies
from server.bootstrap import front_refusal_audit
from server.config import HttpSettings
from server.front.connection import Connection
from server.front.front import Front
from store import schema as s
from store.engine import make_engine, migrate

Seen = tuple[str, dict[str, str], str | None]


def _never(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise AssertionError("a refused request must not reach the app")


def _refused(requests: list[bytes], limits: HttpSettings, hook: Any = None) -> tuple[list[Seen], list[bytes]]:
    """Send each request on its own connection to a front served on loopback; what the hook saw, and the answers."""
    seen: list[Seen] = []

    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        front = Front(_never, limits, loop, on_refusal=hook or (lambda *args: seen.append(args)))
        server = await loop.create_server(lambda: Connection(front), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        def exchange(request: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(request)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                return data

        try:
            return [await asyncio.to_thread(exchange, r) for r in requests]
        finally:
            server.close()
            await server.wait_closed()

    return seen, asyncio.run(run())


AUTH = "Basic " + base64.b64encode(b"clinic-a:s3cret-pw").decode()


def test_the_hook_gets_the_outcome_the_path_and_only_the_audited_headers() -> None:
    seen, answers = _refused([
        b"GARBAGE\r\n\r\n",
        b"POST /preg/v1/Personregister?x=1 HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH.encode()
        + b"\r\nX-Forwarded-For: 192.0.2.7\r\nX-Secret: 01018012345\r\nContent-Length: 999999\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    ], HttpSettings(max_body=1000))
    assert [a.split(b"\r\n")[0] for a in answers] == [b"HTTP/1.1 400 Bad Request", b"HTTP/1.1 413 Content Too Large",
                                                      b"HTTP/1.1 400 Bad Request"]
    assert seen == [
        ("400 malformed", {"REMOTE_ADDR": "127.0.0.1"}, None),
        ("413 body too large", {"REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": AUTH,
                                "HTTP_X_FORWARDED_FOR": "192.0.2.7"}, "/preg/v1/Personregister"),
        ("400 malformed", {"REMOTE_ADDR": "127.0.0.1"}, "/health"),  # the line was read, the headers not
    ]


def test_a_header_deadline_is_handed_to_the_hook_with_the_path_so_far() -> None:
    seen: list[Seen] = []

    async def run() -> None:
        loop = asyncio.get_running_loop()
        front = Front(_never, HttpSettings(header_timeout=0.3), loop, on_refusal=lambda *a: seen.append(a))
        server = await loop.create_server(lambda: Connection(front), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/AR HTTP/1.1\r\nHost: x\r\nAuthorization: " + AUTH.encode() + b"\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        server.close()
        await server.wait_closed()
        assert answer.startswith(b"HTTP/1.1 408 ")

    asyncio.run(run())
    assert seen == [("408 header timeout", {"REMOTE_ADDR": "127.0.0.1"}, "/v1/AR")]  # headers unread: no account


def test_a_failing_hook_is_logged_and_the_refusal_still_answered(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("audit writer is closed")

    with caplog.at_level(logging.ERROR, "server.front"):
        seen, answers = _refused([b"GARBAGE\r\n\r\n"], HttpSettings(), broken)
    assert answers[0].startswith(b"HTTP/1.1 400 ")
    assert "was not audited: RuntimeError" in caplog.text


def test_the_composition_hook_writes_one_sanitised_record(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.sqlite'}")
    migrate(engine)
    try:
        writer = AuditWriter(engine, mode="sync")
        hook = front_refusal_audit(writer, TrustedProxies(["10.0.0.0/8"]))
        hook("408 header timeout", {"REMOTE_ADDR": "::ffff:192.0.2.9"}, None)
        hook("413 body too large", {"REMOTE_ADDR": "10.1.1.1", "HTTP_AUTHORIZATION": AUTH,
                                    "HTTP_X_FORWARDED_FOR": "198.51.100.4, 10.2.2.2"},
             "/p/01018012345/\x1b[31m" + "x" * 200)
        hook("503 connection cap", {"REMOTE_ADDR": "198.51.100.5", "HTTP_X_FORWARDED_FOR": "203.0.113.1"}, "/")
        e = s.audit_event
        with engine.connect() as conn:
            rows = conn.execute(select(e.c.face, e.c.operation, e.c.outcome, e.c.account, e.c.source)
                                .order_by(e.c.id)).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows[:1]] == [("http-front", "?", "408 header timeout", None, "192.0.2.9")]
    face, operation, outcome, account, source = rows[1]
    assert (face, outcome, account, source) == ("http-front", "413 body too large", "clinic-a", "198.51.100.4")
    assert operation == "/p/***********/\\x1b[31m" + "x" * 57 and len(operation) == 80
    assert "s3cret" not in repr(rows)
    assert tuple(rows[2]) == ("http-front", "/", "503 connection cap", None, "198.51.100.5")  # untrusted peer
