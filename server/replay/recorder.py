"""Recording proxies: stand between an EPJ (or broker) and the legacy service and write each exchange to a corpus.

- :class:`HttpRecorder` — a threaded ``http.server`` reverse proxy. Each request is forwarded to the
  upstream with its body byte for byte and its headers unchanged (except the hop-by-hop ones and
  ``Host``); the upstream's status, headers and body go back to the client unchanged. Every POST is
  recorded as a SOAP case. An upstream that refuses the connection, times out, or answers 5xx without
  a SOAP envelope is recorded as ``upstreamError`` (the client gets 502/504, or the upstream's own 5xx);
  a SOAP fault with HTTP 500 is an ordinary answer (``fault``).
- :class:`MllpRecorder` — asyncio: accepts MLLP connections, opens one upstream connection per client
  connection, forwards each frame, waits for the replies (up to the application response: a commit ACK
  ``CA``/``CE``/``CR`` is followed by one more reply when it comes within ``reply_timeout``), returns them
  and records the pair. An upstream that refuses, closes or stays silent is recorded as
  ``upstreamError``, and the client's connection is closed (MLLP has no way to say "upstream failed").
- :class:`Redactor` — with ``--redact``, what is *recorded* (never what is forwarded) has identity
  numbers and names replaced, consistently within a corpus: the same number or name always gets the
  same pseudonym, in requests and answers alike. A number becomes a valid synthetic number of the same
  kind (fødselsnummer, D-nummer, H-nummer, felles hjelpenummer) with the same birth date and gender,
  made by :func:`store.identity.generate` with a ``random.Random`` seeded from HMAC-SHA256(key, number);
  a name word becomes a word of a fixed list, chosen by the same HMAC. The key is
  ``PREGBRIDGE_REPLAY_REDACT_KEY`` or random per recording run; it is never written to the corpus.

WS-Security: a ``wsse:Password`` (PasswordText) in a recorded request is replaced by ``{{password}}``
and ``wsse:Username`` by ``{{username}}``; the runner puts the account's credentials back. Logs name
cases and outcomes, never bodies.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import logging
import os
import random
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from server.hl7.framing import FramingError, MllpFramer, frame
from server.logsafe import loggable
from server.replay.compare_xml import parse_xml
from server.replay.corpus import Case, Corpus, Expected
from store import identity

__all__ = ["GIVEN_NAMES", "FAMILY_NAMES", "HttpRecorder", "MllpRecorder", "Redactor", "parse_hostport",
           "soap_operation", "strip_wsse_secrets"]

log = logging.getLogger("pregbridge.replay")

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                        "transfer-encoding", "upgrade", "host", "content-length"})
GIVEN_NAMES = ("Anne", "Bjarne", "Cecilie", "Dag", "Eli", "Frode", "Gro", "Hallvard", "Ingrid", "Jon", "Kari",
               "Leif", "Marit", "Nils", "Oda", "Per", "Ragnhild", "Sverre", "Tone", "Ulf", "Vigdis", "Aslak")
FAMILY_NAMES = ("Andersen", "Berg", "Dahl", "Eide", "Fjeld", "Grande", "Haugen", "Iversen", "Jensen", "Lie",
                "Moen", "Nygaard", "Olsen", "Pedersen", "Rud", "Solberg", "Strand", "Tangen", "Vik", "Aasen")
GIVEN_ELEMENTS = frozenset({"fornavn", "mellomnavn", "FirstName", "MiddleName", "GivenName"})
FAMILY_ELEMENTS = frozenset({"etternavn", "LastName", "FamilyName"})
FULL_NAME_ELEMENTS = frozenset({"navn"})  # searchPerson's whole-name criterion (a leaf); the container is skipped
_NUMBER = re.compile(r"(?<![0-9])[0-9]{11}(?![0-9])")
_NAME_ELEMENT = re.compile(r"<((?:[A-Za-z_][\w.-]*:)?)([A-Za-z_][\w.-]*)((?:\s[^<>]*)?)>([^<>]+)</\1\2\s*>")
_WORD = re.compile(r"[^\W\d_]+(?:[-'][^\W\d_]+)*")
_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_PASSWORD = re.compile(r"(<(?:[\w.-]+:)?Password\b[^>]*>)([^<]*)(</(?:[\w.-]+:)?Password\s*>)")
_USERNAME = re.compile(r"(<(?:[\w.-]+:)?Username\b[^>]*>)([^<]*)(</(?:[\w.-]+:)?Username\s*>)")
_COMMIT = ("CA", "CE", "CR")


def parse_hostport(value: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``) → (host, port)."""
    text = value.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_port is None:
            raise ValueError(f"not host:port: {value!r}")
        return text, default_port
    if not port.isdigit():
        raise ValueError(f"not host:port: {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def soap_operation(body: bytes) -> str:
    """The local name of the first Body child (the operation), or ``request`` when it cannot be read."""
    try:
        root = parse_xml(body)
    except (ValueError, etree.XMLSyntaxError):
        return "request"
    for el in root:
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "Body":
            for child in el:
                if isinstance(child.tag, str):
                    return child.tag.rsplit("}", 1)[-1]
    return "request"


def _is_fault(body: bytes) -> bool | None:
    """True for a SOAP fault, False for another envelope, None when the body is no SOAP envelope."""
    try:
        root = parse_xml(body)
    except (ValueError, etree.XMLSyntaxError):
        return None
    if not isinstance(root.tag, str) or root.tag.rsplit("}", 1)[-1] != "Envelope":
        return None
    return any(isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] == "Fault"
               for body_el in root if isinstance(body_el.tag, str) and body_el.tag.endswith("Body")
               for el in body_el)


def _xml_codec(body: bytes, content_type: str | None) -> str:
    m = re.search(r"charset\s*=\s*\"?([A-Za-z0-9._-]+)", content_type or "")
    if m:
        return m.group(1)
    d = _ENCODING.match(body.lstrip())
    return d.group(1).decode("ascii") if d else "utf-8"


def strip_wsse_secrets(body: bytes, content_type: str | None = None) -> bytes:
    """``wsse:Username``/``wsse:Password`` values → ``{{username}}``/``{{password}}`` (the runner fills them)."""
    if b"Password" not in body:
        return body
    codec = _xml_codec(body, content_type)
    try:
        text = body.decode(codec)
    except (LookupError, UnicodeDecodeError):
        return body
    text = _PASSWORD.sub(lambda m: m.group(1) + "{{password}}" + m.group(3), text)
    text = _USERNAME.sub(lambda m: m.group(1) + "{{username}}" + m.group(3), text)
    return text.encode(codec)


class Redactor:
    """Consistent pseudonyms for identity numbers and names (see the module docstring)."""

    def __init__(self, key: bytes | None = None) -> None:
        env = os.environ.get("PREGBRIDGE_REPLAY_REDACT_KEY")
        self.key = key if key is not None else (env.encode() if env else os.urandom(32))
        self._numbers: dict[str, str] = {}
        self._used: set[str] = set()
        self._lock = threading.Lock()

    def _rng(self, kind: str, value: str) -> random.Random:
        digest = hmac.new(self.key, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()
        return random.Random(int.from_bytes(digest, "big"))

    def number(self, number: str) -> str:
        """A valid synthetic number of the same kind for a valid identity number; anything else unchanged."""
        try:
            parsed = identity.parse(number)
        except identity.InvalidIdentifier:
            return number
        with self._lock:
            if number in self._numbers:
                return self._numbers[number]
            rng = self._rng("number", number)
            female = int(number[8]) % 2 == 0
            birth = parsed.birth_date
            if parsed.kind != identity.IdKind.FH and birth is None:  # century unknown: keep day and month
                day, month = parsed.day_month or (1, 1)
                birth = dt.date(1940 + rng.randrange(60), month, min(day, 28 if month == 2 else 30))
            for _ in range(1000):
                fake = identity.generate(parsed.kind, birth, rng, female=female)
                if fake not in self._used and fake != number:
                    break
            self._numbers[number] = fake
            self._used.add(fake)
            return fake

    def name(self, text: str, family: bool) -> str:
        """Each word of a name replaced by a word of the fixed list (case of the first letter kept)."""
        names = FAMILY_NAMES if family else GIVEN_NAMES

        def word(m: re.Match[str]) -> str:
            w = m.group(0)
            pick = names[self._rng("family" if family else "given", w.casefold()).randrange(len(names))]
            return pick.upper() if w.isupper() and len(w) > 1 else pick

        return _WORD.sub(word, text)

    def numbers_in(self, text: str) -> str:
        return _NUMBER.sub(lambda m: self.number(m.group(0)), text)

    def xml(self, body: bytes, content_type: str | None = None) -> bytes:
        """Names in known name elements and every identity number, rewritten in place (other bytes kept)."""
        codec = _xml_codec(body, content_type)
        try:
            text = body.decode(codec)
        except (LookupError, UnicodeDecodeError):
            codec, text = "latin-1", body.decode("latin-1")

        def element(m: re.Match[str]) -> str:
            local, value = m.group(2), m.group(4)
            if local in GIVEN_ELEMENTS:
                value = self.name(value, family=False)
            elif local in FAMILY_ELEMENTS or local in FULL_NAME_ELEMENTS:
                value = self.name(value, family=True)
            else:
                return m.group(0)
            return f"<{m.group(1)}{local}{m.group(3)}>{value}</{m.group(1)}{local}>"

        text = self.numbers_in(_NAME_ELEMENT.sub(element, text))
        return text.encode(codec, "xmlcharrefreplace")

    def hl7(self, message: bytes) -> bytes:
        """PID-5 (and QPD ``@PID.5.n`` parameters) names and every identity number rewritten."""
        from server.hl7.charsets import CHARSETS

        head = message.lstrip(b"\x0b").split(b"\r", 1)[0]
        parts = head.split(head[3:4]) if head[:3] == b"MSH" and len(head) > 3 else []
        charset = parts[17].decode("ascii", "replace").strip() if len(parts) > 17 else ""
        codec = CHARSETS.get(charset.upper(), "utf-8")
        try:
            text = message.decode(codec)
        except UnicodeDecodeError:
            codec, text = "latin-1", message.decode("latin-1")
        fs, comp, rep = "|", "^", "~"
        out: list[str] = []
        for seg in re.split(r"(\r\n|\r|\n)", text):
            if seg.startswith("MSH") and len(seg) > 7:
                fs, comp, rep = seg[3], seg[4], seg[5]
            fields = seg.split(fs)
            if seg.startswith("PID") and len(fields) > 5:
                fields[5] = rep.join(self._hl7_name(r, comp) for r in fields[5].split(rep))
            if seg.startswith("QPD") and len(fields) > 3:
                fields[3] = rep.join(self._hl7_param(r, comp) for r in fields[3].split(rep))
            out.append(fs.join(fields))
        return self.numbers_in("".join(out)).encode(codec, "replace")

    def _hl7_name(self, xpn: str, comp: str) -> str:
        c = xpn.split(comp)
        for i, family in ((0, True), (1, False), (2, False)):
            if i < len(c) and c[i]:
                c[i] = self.name(c[i], family)
        return comp.join(c)

    def _hl7_param(self, param: str, comp: str) -> str:
        name, sep, value = param.partition(comp)
        if name in ("@PID.5.1", "@PID.5.1.1"):
            return name + sep + self.name(value, True)
        if name in ("@PID.5.2", "@PID.5.3"):
            return name + sep + self.name(value, False)
        return param


def _account_of(headers: Any) -> str | None:
    auth = headers.get("Authorization") or ""
    if not auth.lower().startswith("basic "):
        return None
    try:
        user = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").split(":", 1)[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user or None


class _Handler(BaseHTTPRequestHandler):
    server: _ProxyServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # the default writes request lines to stderr; the recorder logs cases only

    def _forward(self) -> None:
        rec = self.server.recorder
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        up = urlsplit(rec.upstream)
        path = (up.path.rstrip("/") + self.path) if up.path not in ("", "/") else self.path
        status: int | None = None
        reason, out_headers, answer, error = "", [], b"", None
        conn_cls = http.client.HTTPSConnection if up.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(up.hostname or "127.0.0.1", up.port, timeout=rec.timeout)
        try:
            conn.request(self.command, path, body=body if self.command not in ("GET", "HEAD") or body else None,
                         headers={**headers, "Host": up.netloc, "Content-Length": str(len(body))})
            resp = conn.getresponse()
            status, reason, answer = resp.status, resp.reason, resp.read()
            out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        except ConnectionRefusedError:
            error = "connection refused"
        except TimeoutError:
            error = f"no answer within {rec.timeout:g} s"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}"
        finally:
            conn.close()
        if error is not None:
            answer = f"pregbridge recorder: upstream failed: {error}\n".encode()
            status, reason = (504 if error.startswith("no answer") else 502), "Bad Gateway"
            out_headers = [("Content-Type", "text/plain; charset=utf-8")]
        assert status is not None
        if self.command == "POST":  # recorded before the client has its answer: a client's cases keep its order
            rec.record(self.path, self.headers, body, None if error else status, answer, error)
        self.send_response(status, reason)
        for k, v in out_headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer)

    do_POST = do_GET = do_PUT = do_HEAD = do_DELETE = _forward


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    recorder: HttpRecorder


class HttpRecorder:
    """A recording reverse proxy for SOAP over HTTP; :meth:`start` serves from a daemon thread."""

    def __init__(self, upstream: str, corpus: Corpus, *, redactor: Redactor | None = None,
                 account: str | None = None, timeout: float = 30.0,
                 on_case: Callable[[Case], None] | None = None) -> None:
        if "://" not in upstream:
            upstream = "http://" + upstream
        self.upstream = upstream.rstrip("/")
        self.corpus = corpus
        self.redactor = redactor
        self.account = account
        self.timeout = timeout
        self.on_case = on_case
        self.httpd: _ProxyServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        self.httpd = _ProxyServer((host, port), _Handler)
        self.httpd.recorder = self
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="replay-http-recorder", daemon=True)
        self._thread.start()
        return host, int(self.httpd.server_address[1])

    def serve_forever(self, host: str, port: int) -> None:
        self.httpd = _ProxyServer((host, port), _Handler)
        self.httpd.recorder = self
        self.httpd.serve_forever()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def record(self, path: str, headers: Any, body: bytes, status: int | None, answer: bytes,
               error: str | None) -> Case:
        ctype = headers.get("Content-Type")
        version = "1.2" if "application/soap+xml" in (ctype or "").lower() else "1.1"
        operation = soap_operation(body)
        fault = _is_fault(answer) if status is not None else None
        if error is not None:
            expected = Expected("upstreamError", None, error)
        elif status is not None and status >= 500 and fault is None:
            expected = Expected("upstreamError", status, f"HTTP {status} without a SOAP envelope")
        else:
            expected = Expected("fault" if fault else "answer", status)
        request = strip_wsse_secrets(body, ctype)
        response: bytes | None = answer if error is None else None
        if self.redactor is not None:
            request = self.redactor.xml(request, ctype)
            if response is not None:
                response = self.redactor.xml(response, headers.get("Content-Type"))
        n = len(self.corpus.cases) + 1
        case = Case(f"{n:03d}-{operation}-soap{version.replace('.', '')}", "soap", path.split("?", 1)[0],
                    "", None, expected, version, headers.get("SOAPAction"), ctype,
                    self.account or _account_of(headers))
        case = self.corpus.add(case, request, response, suffix="xml")
        log.info("recorded %s (%s)", loggable(case.id), expected.outcome)  # (its name is the client's text)
        if self.on_case is not None:
            self.on_case(case)
        return case


def _msa1(message: bytes) -> str:
    for seg in message.replace(b"\n", b"\r").split(b"\r"):
        if seg.startswith(b"MSA") and len(seg) > 4:
            return seg.split(seg[3:4])[1].decode("ascii", "replace")
    return ""


def _msh(message: bytes, n: int) -> str:
    head = message.split(b"\r", 1)[0]
    if head[:3] != b"MSH" or len(head) < 4:
        return ""
    parts = head.split(head[3:4])
    return parts[n - 1].decode("ascii", "replace") if len(parts) >= n else ""


class MllpRecorder:
    """A recording MLLP proxy (asyncio). :meth:`start` binds; :meth:`run_in_thread` runs a loop of its own."""

    def __init__(self, upstream: str, corpus: Corpus, *, redactor: Redactor | None = None,
                 account: str | None = None, reply_timeout: float = 10.0, commit_wait: float = 1.0,
                 on_case: Callable[[Case], None] | None = None) -> None:
        self.upstream = parse_hostport(upstream, 2575)
        self.corpus = corpus
        self.redactor = redactor
        self.account = account
        self.reply_timeout = reply_timeout
        self.commit_wait = commit_wait
        self.on_case = on_case
        self.server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self.server = await asyncio.start_server(self._connection, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve from a daemon thread with its own event loop; returns the bound port."""
        ready = threading.Event()
        bound: list[int] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            bound.append(loop.run_until_complete(self.start(host, port)))
            ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="replay-mllp-recorder", daemon=True)
        self._thread.start()
        ready.wait(10)
        return bound[0]

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def close() -> None:
            if self.server is not None:
                self.server.close()
            for w in list(self._writers):
                w.close()
            await asyncio.sleep(0.01)
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        if self._thread is not None:
            self._thread.join(5)

    def _record(self, request: bytes, replies: list[bytes], error: str | None) -> Case:
        payload = b"".join(r if r.endswith(b"\r") else r + b"\r" for r in replies)
        if self.redactor is not None:
            request = self.redactor.hl7(request)
            payload = self.redactor.hl7(payload) if payload else payload
        mtype = _msh(request, 9).replace("^", "_") or "message"
        n = len(self.corpus.cases) + 1
        expected = Expected("upstreamError", None, error) if error else Expected(
            "fault" if any(_msa1(r) in ("AE", "AR", "CE", "CR") for r in replies) else "answer")
        case = Case(f"{n:03d}-{mtype}", "hl7", f"{self.upstream[0]}:{self.upstream[1]}", "", None, expected,
                    account=self.account)
        case = self.corpus.add(case, request, None if error else payload, suffix="hl7")
        log.info("recorded %s (%s)", loggable(case.id), expected.outcome)  # (its name is the client's text)
        if self.on_case is not None:
            self.on_case(case)
        return case

    async def _replies(self, reader: asyncio.StreamReader, framer: MllpFramer) -> tuple[list[bytes], str | None]:
        replies: list[bytes] = []
        wait = self.reply_timeout
        while True:
            try:
                async with asyncio.timeout(wait):
                    data = await reader.read(1 << 16)
            except TimeoutError:
                if replies:
                    return replies, None  # a commit ACK and no application response: that is the answer
                return replies, f"no reply within {self.reply_timeout:g} s"
            if not data:
                return replies, None if replies else "upstream closed the connection"
            try:
                frames = framer.feed(data)
            except FramingError as exc:
                return replies, f"upstream framing error ({type(exc).__name__})"
            replies += frames
            if replies and _msa1(replies[-1]) not in _COMMIT:
                return replies, None
            if replies:
                wait = self.commit_wait

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = MllpFramer()
        up_reader: asyncio.StreamReader | None = None
        up_writer: asyncio.StreamWriter | None = None
        up_framer = MllpFramer()
        self._writers.add(writer)
        try:
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    break
                try:
                    frames = framer.feed(data)
                except FramingError as exc:
                    log.warning("mllp recorder: client framing error (%s); closing", type(exc).__name__)
                    break
                for message in frames:
                    if up_writer is None:
                        try:
                            up_reader, up_writer = await asyncio.wait_for(
                                asyncio.open_connection(*self.upstream), self.reply_timeout)
                        except ConnectionRefusedError:
                            self._record(message, [], "connection refused")
                            return
                        except (TimeoutError, OSError) as exc:
                            self._record(message, [], f"cannot connect ({type(exc).__name__})")
                            return
                    assert up_reader is not None and up_writer is not None
                    up_writer.write(frame(message))
                    await up_writer.drain()
                    replies, error = await self._replies(up_reader, up_framer)
                    for reply in replies:
                        writer.write(frame(reply))
                    await writer.drain()
                    self._record(message, replies, error)
                    if error:
                        return
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            for w in (up_writer, writer):
                if w is not None:
                    w.close()
                    with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                        await w.wait_closed()
