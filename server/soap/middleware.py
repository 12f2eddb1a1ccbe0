"""``SoapGuard``: the WSGI middleware in front of the spyne apps that turns hostile or broken input into faults.

spyne 2.14 lets several inputs escape ``WsgiApplication.__call__`` as exceptions, which the WSGI server
answers with a bare, non-SOAP 500: an empty body (``StopIteration``), latin-1 bytes under a
``charset=utf-8`` header (``UnicodeDecodeError``), a DOCTYPE when ``validator='lxml'``, and its Soap12 bugs
. The guard checks a POST body before spyne sees it and answers every
refusal and every escaped exception with a SOAP fault in the client's SOAP version
(:mod:`server.soap.faults`: same shape as spyne's, HTTP 500). Other methods (``GET ?wsdl``) pass through,
with the same exception net.

Checks on a POST, in order, each answered with a ``Client.*`` fault (the body is read once; each check is
at most one pass over it in C):

1. **Size.** At most ``max_body`` bytes (2 MiB, spyne's default) are kept. A declared Content-Length over
   the limit is refused before a byte is stored; a chunked body (no Content-Length, which gunicorn marks
   with ``wsgi.input_terminated``) is read up to ``max_body + 1`` bytes and then refused. The rest of an
   oversized body is read and *discarded* up to ``drain_limit`` (16 MiB) so the client, still sending,
   gets the fault instead of a connection reset; beyond that it is left unread. ``Client.RequestTooLarge``
   goes out with 500 like every fault (HTTP 413 would be more precise, but WCF and JAX-WS report a 413 as
   a transport error and never read the fault envelope). A chunked body on a server that does not
   de-chunk (wsgiref) cannot be read and is refused.
2. **Empty** (or whitespace-only) body: ``Client.InvalidRequest``. A ``multipart/related`` body (SOAP
   with attachments, MTOM) gets only the size limit and the DTD scan below; its parts are spyne's to read
   — or, with ``multipart=False`` (PREG and AR: spyne 2.14 fails on them with a TypeError, and no
   operation takes an attachment), a ``Client.InvalidRequest`` in the SOAP version of its root part.
3. **Encoding.** Only ASCII-compatible encodings are accepted: UTF-8, ISO-8859-1 (what the Norwegian
   legacy clients send), ISO-8859-15, windows-1252 and US-ASCII, named by the Content-Type ``charset``
   and/or the XML declaration. UTF-16 and UTF-32 (by byte order mark, NUL bytes at the start, or by
   name) are refused although XML allows them: a byte scan for markup is only sound on ASCII-compatible
   bytes, and no client of these registers sends UTF-16. A body must start with ``<`` (after an optional
   UTF-8 BOM and whitespace), which also rules out EBCDIC.
4. **DTDs.** ``<!DOCTYPE`` or ``<!ENTITY`` anywhere in the body (case-insensitive byte scan; SOAP 1.1 and
   1.2 both forbid DTDs) is refused before any parser runs, so XXE and entity bombs never reach lxml.
   The same text inside a comment or CDATA section is refused too; no real client sends that.
5. **Charset.** An unknown or unaccepted charset name is refused, and so is a body that does not decode
   in the charset the Content-Type names (the latin-1-as-UTF-8 case), or in the one the XML declaration
   names (UTF-8 when neither names one). When the header names a charset and the body has no encoding
   declaration, spyne decodes with the header's charset and so does the check below; when both name
   one, spyne parses by the declaration and so does the check (after both decoded cleanly).
6. **Envelope** (``check_xml``, on by default): one parse with a safe lxml parser (no entities, no
   network, no DTD loading, libxml2's size and depth limits). A body that is not well-formed XML (a
   truncated one) is ``Client.InvalidRequest``. The root element must be a SOAP 1.1 or 1.2 ``Envelope``
   of a version in ``versions``, and its version must match the Content-Type (``text/xml`` is 1.1,
   ``application/soap+xml`` 1.2); otherwise a ``VersionMismatch`` fault in the *envelope's* version,
   with an ``Upgrade`` header listing the served versions (SOAP 1.1 §4.4.1, SOAP 1.2 §5.4.7 and
   appendix A). This is the one full parse: about 15 µs of the guard's 25 µs on a 1 KB envelope
   (10 µs with ``check_xml=False``), against spyne's own 270 µs; spyne then parses again.
   A request with no Content-Type, or one that names no XML type (wsgiref reports a missing one as
   ``text/plain``), gets the one its envelope implies, keeping any ``charset``, so that spyne (which
   refuses a request without one) and a 1.1/1.2 router can serve it.
7. **Structure and header blocks** (with ``check_xml``): :func:`server.soap.envelope.envelope_problem` on
   the parsed envelope — exactly one Body holding exactly one element, at most one Header before it,
   and every ``mustUnderstand`` header block addressed to this node among the face's ``understood``
   ones (else a ``MustUnderstand`` fault, in SOAP 1.2 with ``NotUnderstood`` header blocks).

The inner app then gets a fresh ``BytesIO`` of the body with ``CONTENT_LENGTH`` set. Its response is
buffered (SOAP responses are small) so an exception raised while it runs *or* while its response is
iterated still becomes a fault: a :class:`~store.errors.PregbridgeError` answers with its own fault code
and message, SQLAlchemy's DBAPI errors with ``Server.Unavailable``, anything else with ``Server`` /
``internal error`` (see :func:`server.soap.faults.fault_for_exception`). A 5xx the inner app answers
with a non-XML body (a server's plain-text error page) is replaced by the same ``Server`` fault.

Audit: every refusal and every failure passes through one seam (:meth:`SoapGuard._refuse`), which calls
the ``refused`` hook (a :class:`server.soap.refusals.RefusalAudit`) with the request and the outcome; so do
answers of the inner app that are not 2xx (spyne's own faults: an unknown operation). The hook writes the
audit record unless the face already wrote one; a new check added to the guard is audited by raising its
refusal like the others. A refusal is answered even when its record cannot be written (it releases
nothing); that is logged.

Logging (logger ``server.soap``): a refusal or failure is logged with the request id, the fault code and
the exception's type or a fixed reason, never the body, never an exception's text and never a
traceback. The request id is the caller's ``X-Request-Id`` when it is a plain token, else a new random
one (the log shows it through :func:`server.logsafe.loggable`: a fødselsnummer's digit run is masked); it
is kept in ``environ["pregbridge.request_id"]`` and returned in the fault's ``X-Request-Id`` header.
:func:`silence_spyne_loggers` stops spyne's own loggers from writing request bodies and values.
"""

from __future__ import annotations

import codecs
import functools
import io
import logging
import re
import secrets
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from types import TracebackType
from typing import Any, Final
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from lxml import etree

from server.logsafe import loggable
from server.soap.envelope import envelope_problem
from server.soap.faults import (
    ENVELOPE_NS,
    MEDIA_TYPES,
    SUPPORTED,
    SoapVersion,
    fault_for_exception,
    fault_response,
    media_type,
    soap_version,
)
from server.soap.refusals import BODY_KEY
from store.errors import PregbridgeError

__all__ = [
    "DEFAULT_DRAIN_LIMIT",
    "DEFAULT_MAX_BODY",
    "REQUEST_ID_KEY",
    "SPYNE_BODY_LOGGERS",
    "SoapGuard",
    "request_id",
    "silence_spyne_loggers",
]

log = logging.getLogger("server.soap")

DEFAULT_MAX_BODY: Final = 2 * 1024 * 1024
DEFAULT_DRAIN_LIMIT: Final = 16 * 1024 * 1024
REQUEST_ID_KEY: Final = "pregbridge.request_id"

_CHUNK = 64 * 1024
_DTD = re.compile(rb"<!(?:[Dd][Oo][Cc][Tt][Yy][Pp][Ee]|[Ee][Nn][Tt][Ii][Tt][Yy])")
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")
_XML_DECL_ENCODING = re.compile(rb"<\?xml[^>]{0,200}?\sencoding\s*=\s*([\"'])([A-Za-z][A-Za-z0-9._-]{0,39})\1")
_UTF8_BOM = b"\xef\xbb\xbf"
_WIDE_BOMS = (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00", b"\xfe\xff", b"\xff\xfe")
# Python codec name -> the name libxml2 knows, for every accepted encoding.
_ACCEPTED: Final = {
    "utf-8": "UTF-8",
    "iso8859-1": "ISO-8859-1",
    "iso8859-15": "ISO-8859-15",
    "cp1252": "windows-1252",
    "ascii": "US-ASCII",
}
_ENVELOPE_TAGS: Final[dict[str, SoapVersion]] = {f"{{{ns}}}Envelope": v for v, ns in ENVELOPE_NS.items()}
_XML_MEDIA_TYPES = frozenset({"text/xml", "application/soap+xml", "application/xml"})
_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")
_NO_MULTIPART = ("SOAP messages with attachments (multipart/related, MTOM) are not accepted here: send the envelope "
                 "alone as text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)")

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
RefusalHook = Callable[[WSGIEnvironment, str], None]


class _Refusal(Exception):
    """A request the guard answers itself; ``reason`` is a fixed phrase for the log (no request content)."""

    def __init__(
        self,
        version: SoapVersion,
        code: str,
        message: str,
        reason: str,
        upgrade: Sequence[SoapVersion] | None = None,
        not_understood: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(message)
        self.version = version
        self.code = code
        self.message = message
        self.reason = reason
        self.upgrade = upgrade
        self.not_understood = not_understood


def request_id(environ: WSGIEnvironment) -> str:
    """The request's id: ``environ["pregbridge.request_id"]``, else the caller's ``X-Request-Id`` when it is a
    plain token of at most 64 characters, else a new random one (then stored in the environ)."""
    rid = environ.get(REQUEST_ID_KEY)
    if isinstance(rid, str) and rid:
        return rid
    given = environ.get("HTTP_X_REQUEST_ID")
    rid = given if isinstance(given, str) and _SAFE_ID.match(given) else _new_id()
    environ[REQUEST_ID_KEY] = rid
    return rid


def _new_id() -> str:
    """A random id the log shows as it is: hex without a run of eleven decimal digits (one in ~60 has one,
    which :func:`server.logsafe.loggable` would mask)."""
    while (rid := secrets.token_hex(8)) != loggable(rid):
        pass
    return rid


def _charset_param(content_type: str | None) -> str | None:
    # As cgi.parse_header (spyne's parser) reads it: an empty value is no charset.
    if not content_type or ";" not in content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, sep, value = param.partition("=")
        if sep and name.strip().lower() == "charset":
            return value.strip().strip("\"'").strip() or None
    return None


@functools.lru_cache(maxsize=64)
def _codec(name: str) -> str | None:
    """Python's canonical name for an encoding name, or None if Python does not know it."""
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


_parsers = threading.local()


def _parser(encoding: str | None) -> Any:
    # lxml parsers must not be shared between threads (gunicorn's gthread workers); one set per thread.
    cache: dict[str | None, Any] | None = getattr(_parsers, "cache", None)
    if cache is None:
        cache = _parsers.cache = {}
    parser = cache.get(encoding)
    if parser is None:
        parser = cache[encoding] = etree.XMLParser(
            encoding=encoding,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            collect_ids=False,
        )
    return parser


def _discard(stream: Any, limit: int) -> None:
    """Read and drop up to ``limit`` bytes (to the end of the body if sooner), a chunk at a time."""
    left = limit
    while left > 0:
        chunk = stream.read(min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)


class SoapGuard:
    """WSGI middleware answering hostile, broken or failing SOAP requests with SOAP faults (module docstring).

    ``app`` is the spyne ``WsgiApplication`` or a router in front of a Soap11 and a Soap12 one;
    ``versions`` the SOAP versions it serves, in order of preference for ``Upgrade`` headers;
    ``understood`` the header blocks the face processes (:func:`server.soap.envelope.envelope_problem`);
    ``multipart=False`` refuses ``multipart/related`` bodies in the version of their root part.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        drain_limit: int = DEFAULT_DRAIN_LIMIT,
        versions: Sequence[SoapVersion] = SUPPORTED,
        check_xml: bool = True,
        understood: Collection[str] = (),
        multipart: bool = True,
        refused: RefusalHook | None = None,
    ) -> None:
        if max_body < 1:
            raise ValueError("max_body must be at least 1 byte")
        if not versions or any(v not in ENVELOPE_NS for v in versions):
            raise ValueError(f"versions must name SOAP 1.1 and/or 1.2, not {versions!r}")
        self.app = app
        self.max_body = max_body
        self.drain_limit = max(drain_limit, 0)
        self.versions: tuple[SoapVersion, ...] = tuple(versions)
        self.check_xml = check_xml
        self.understood = frozenset(understood)
        self.multipart = multipart
        self.refused = refused

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        raw_type: str | None = environ.get("CONTENT_TYPE") or None
        version = soap_version(raw_type)
        if str(environ.get("REQUEST_METHOD", "GET")).upper() == "POST":
            try:
                version = self._admit(environ, raw_type)
            except _Refusal as refusal:
                return self._refuse(environ, start_response, refusal)
            except Exception as exc:  # a bug in the guard itself must still answer with a fault
                return self._failed(environ, start_response, version, exc)
        return self._run(environ, start_response, version)

    # -- the checks -----------------------------------------------------------------------------------

    def _admit(self, environ: WSGIEnvironment, raw_type: str | None) -> SoapVersion:
        """Check the body; replace ``wsgi.input`` with it; return the request's SOAP version."""
        media = media_type(raw_type)
        # A Content-Type that is no XML type counts as none (wsgiref reports a missing one as text/plain).
        content_type = raw_type if media in _XML_MEDIA_TYPES else None
        body = self._read_body(environ, soap_version(content_type))
        environ[BODY_KEY] = body  # for the audit of a refusal (server/soap/refusals.py)
        version = soap_version(content_type, body)
        start = len(_UTF8_BOM) if body.startswith(_UTF8_BOM) else 0
        space = _LEADING_SPACE.match(body, start)
        first = space.end() if space else start
        if first == len(body):
            raise _Refusal(version, "Client.InvalidRequest", "the request body is empty", "empty body")
        if media == "multipart/related":  # SOAP with attachments or MTOM: the parts are spyne's to read
            if not self.multipart:
                raise _Refusal(soap_version(raw_type), "Client.InvalidRequest", _NO_MULTIPART, "multipart body")
            if _DTD.search(body):
                raise _Refusal(
                    version, "Client.InvalidRequest", "DTDs are not allowed in SOAP messages", "DOCTYPE or ENTITY"
                )
            return self._hand_over(environ, body, version)
        if body.startswith(_WIDE_BOMS) or b"\x00" in body[:4]:
            raise _Refusal(
                version,
                "Client.InvalidRequest",
                "UTF-16 and UTF-32 request bodies are not accepted: send UTF-8 or ISO-8859-1",
                "wide encoding",
            )
        if body[first : first + 1] != b"<":
            raise _Refusal(
                version, "Client.InvalidRequest", "the request body is not XML: it does not start with '<'", "not xml"
            )
        if _DTD.search(body):
            raise _Refusal(
                version, "Client.InvalidRequest", "DTDs are not allowed in SOAP messages", "DOCTYPE or ENTITY"
            )
        charset = _charset_param(raw_type)
        parse_encoding = self._check_charset(body, start, charset, version)
        if self.check_xml:
            version = self._check_envelope(body, parse_encoding, content_type, version)
        if content_type is None:  # tell spyne (which refuses a request without one) and the router
            environ["CONTENT_TYPE"] = MEDIA_TYPES[version] + (f"; charset={charset}" if charset else "")
        return self._hand_over(environ, body, version)

    @staticmethod
    def _hand_over(environ: WSGIEnvironment, body: bytes, version: SoapVersion) -> SoapVersion:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["wsgi.input_terminated"] = True
        return version

    def _too_large(self, version: SoapVersion) -> _Refusal:
        return _Refusal(
            version,
            "Client.RequestTooLarge",
            f"the request body is larger than {self.max_body} bytes",
            "body too large",
        )

    def _read_body(self, environ: WSGIEnvironment, version: SoapVersion) -> bytes:
        stream = environ.get("wsgi.input")
        raw_length = str(environ.get("CONTENT_LENGTH") or "").strip()
        try:
            if raw_length:
                if not (raw_length.isascii() and raw_length.isdigit()):
                    raise _Refusal(version, "Client.InvalidRequest", "Content-Length is not a number", "bad length")
                length = int(raw_length)
                if length > self.max_body:
                    if length <= self.drain_limit and stream is not None:
                        _discard(stream, length)
                    raise self._too_large(version)
                return self._read_exactly(stream, length, version) if length and stream is not None else b""
            if environ.get("wsgi.input_terminated") and stream is not None:
                return self._read_to_end(stream, version)
            if "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower():
                raise _Refusal(
                    version,
                    "Client.InvalidRequest",
                    "this server cannot read a chunked request body: send Content-Length",
                    "chunked body not de-chunked",
                )
            return b""
        except _Refusal:
            raise
        except Exception as exc:  # the client went away, or the server's de-chunking failed
            raise _Refusal(
                version,
                "Client.InvalidRequest",
                "the request body could not be read",
                f"read failed: {type(exc).__name__}",
            ) from exc

    @staticmethod
    def _read_exactly(stream: Any, length: int, version: SoapVersion) -> bytes:
        data: bytes = stream.read(length)
        if len(data) == length:
            return data
        parts, got = [data], len(data)
        while got < length:
            chunk: bytes = stream.read(length - got)
            if not chunk:
                raise _Refusal(
                    version,
                    "Client.InvalidRequest",
                    "the request body ended before Content-Length bytes arrived",
                    "short body",
                )
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _read_to_end(self, stream: Any, version: SoapVersion) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            chunk: bytes = stream.read(min(_CHUNK, self.max_body + 1 - size))
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)
            size += len(chunk)
            if size > self.max_body:
                parts.clear()
                _discard(stream, self.drain_limit - size)
                raise self._too_large(version)

    def _check_charset(self, body: bytes, start: int, header_name: str | None, version: SoapVersion) -> str | None:
        """Refuse unknown, unaccepted or wrong charsets; return the encoding to force on the parser, if any."""

        def known(name: str, where: str) -> str:
            codec = _codec(name) if len(name) <= 40 else None
            if codec is None:
                raise _Refusal(version, "Client.InvalidRequest", f"unknown charset {name!r} in {where}", "charset")
            if codec not in _ACCEPTED:
                raise _Refusal(
                    version,
                    "Client.InvalidRequest",
                    f"charset {name!r} in {where} is not accepted: send UTF-8 or ISO-8859-1",
                    "charset",
                )
            return codec

        def decodes(codec: str, label: str, why: str) -> None:
            try:
                body.decode(codec)
            except UnicodeDecodeError as exc:
                raise _Refusal(
                    version,
                    "Client.InvalidRequest",
                    f"the request body is not valid {label} {why}: byte 0x{body[exc.start]:02X} at offset {exc.start}",
                    "charset mismatch",
                ) from None

        header = known(header_name, "the Content-Type header") if header_name else None
        declaration = _XML_DECL_ENCODING.match(body, start)
        declared_name = declaration.group(2).decode("ascii") if declaration else None
        declared = known(declared_name, "the XML declaration") if declared_name else None
        if not body.isascii():  # ASCII bytes decode in every accepted encoding; latin-1 decodes any bytes
            if header is not None and header != "iso8859-1":
                decodes(header, header_name or header, "as the Content-Type header says")
            if declared is not None and declared not in (header, "iso8859-1"):
                decodes(declared, declared_name or declared, "as the XML declaration says")
            elif declared is None and header is None:
                decodes("utf-8", "UTF-8", "(the default when no charset is named)")
        return _ACCEPTED[header] if header is not None and declared is None else None

    def _check_envelope(
        self,
        body: bytes,
        parse_encoding: str | None,
        content_type: str | None,
        version: SoapVersion,
    ) -> SoapVersion:
        try:
            root = etree.fromstring(body, _parser(parse_encoding))
        except etree.XMLSyntaxError as exc:
            if exc.code == etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING:  # a name Python knows but libxml2 does not
                message = "the encoding named in the XML declaration is not supported: name UTF-8 or ISO-8859-1"
            else:
                message = "the request is not well-formed XML: " + " ".join(str(exc.msg).split())[:300]
            raise _Refusal(
                version, "Client.InvalidRequest", message, f"not well-formed (libxml2 error {exc.code})"
            ) from None
        if root.getroottree().docinfo.internalDTD is not None:  # unreachable past the byte scan; belt and braces
            raise _Refusal(
                version, "Client.InvalidRequest", "DTDs are not allowed in SOAP messages", "DOCTYPE after parse"
            )
        envelope = _ENVELOPE_TAGS.get(root.tag) if isinstance(root.tag, str) else None
        if envelope is None:
            raise _Refusal(
                version,
                "VersionMismatch",
                "the root element is not a SOAP 1.1 or SOAP 1.2 Envelope",
                "not an envelope",
                self.versions,
            )
        if envelope not in self.versions:
            raise _Refusal(
                envelope,
                "VersionMismatch",
                f"SOAP {envelope} is not served here; see the Upgrade header",
                f"SOAP {envelope} not served",
                self.versions,
            )
        if content_type is not None and soap_version(content_type) != envelope:
            raise _Refusal(
                envelope,
                "VersionMismatch",
                f"a SOAP {envelope} envelope was sent as {media_type(content_type)!r}: "
                f"SOAP {envelope} is sent as {MEDIA_TYPES[envelope]!r}",
                "envelope and Content-Type disagree",
                self.versions,
            )
        problem = envelope_problem(root, envelope, self.understood)
        if problem is not None:
            raise _Refusal(envelope, problem.code, problem.message, problem.reason,
                           not_understood=problem.not_understood)
        return envelope

    # -- running the inner app and answering ---------------------------------------------------------

    def _run(self, environ: WSGIEnvironment, start_response: StartResponse, version: SoapVersion) -> Iterable[bytes]:
        responses: list[tuple[str, list[tuple[str, str]]]] = []
        chunks: list[bytes] = []

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            responses.append((status, headers))  # a later call (with exc_info) replaces an earlier one
            return chunks.append

        try:
            result = self.app(environ, capture)
            try:
                for chunk in result:
                    if chunk:
                        chunks.append(chunk)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if not responses:
                raise RuntimeError("the inner app returned without calling start_response")
        except Exception as exc:
            return self._failed(environ, start_response, version, exc)
        status, headers = responses[-1]
        if status.startswith("5") and media_type(_header(headers, "content-type")) not in _XML_MEDIA_TYPES:
            rid = request_id(environ)
            log.error(
                "SOAP request %s: inner app answered %s without a fault; answered Server", loggable(rid), status[:3]
            )
            self._audit(environ, "Server")
            return self._fault(start_response, version, "Server", "internal error", rid)
        if not status.startswith("2"):
            self._audit(environ, _fault_code(b"".join(chunks)) or status[:3])
        start_response(status, headers)
        return [b"".join(chunks)]

    def _failed(
        self, environ: WSGIEnvironment, start_response: StartResponse, version: SoapVersion, exc: Exception
    ) -> Iterable[bytes]:
        code, message = fault_for_exception(exc)
        rid = request_id(environ)
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        level = logging.WARNING if isinstance(exc, PregbridgeError) else logging.ERROR
        log.log(level, "SOAP request %s: %s raised; answered %s", loggable(rid), kind, code)
        self._audit(environ, code)
        return self._fault(start_response, version, code, message, rid)

    def _refuse(self, environ: WSGIEnvironment, start_response: StartResponse, refusal: _Refusal) -> Iterable[bytes]:
        """The one seam of the guard's refusals: log, audit, answer the fault."""
        rid = request_id(environ)
        log.warning("refused SOAP request %s: %s (%s)", loggable(rid), refusal.code, refusal.reason)
        self._audit(environ, f"{refusal.code} ({refusal.reason})")
        return self._fault(start_response, refusal.version, refusal.code, refusal.message, rid,
                           refusal.upgrade, refusal.not_understood)

    def _audit(self, environ: WSGIEnvironment, outcome: str) -> None:
        if self.refused is None:
            return
        try:
            self.refused(environ, outcome)
        except Exception as exc:  # noqa: BLE001 - a refusal releases nothing: answer it, say the record is missing
            log.error("SOAP request %s: audit record of a refusal not written (%s)", loggable(request_id(environ)),
                      type(exc).__name__)

    @staticmethod
    def _fault(
        start_response: StartResponse,
        version: SoapVersion,
        code: str,
        message: str,
        rid: str,
        upgrade: Sequence[SoapVersion] | None = None,
        not_understood: Sequence[tuple[str, str]] = (),
    ) -> Iterable[bytes]:
        status, headers, body = fault_response(version, code, message, upgrade=upgrade,
                                               not_understood=not_understood)
        headers.append(("X-Request-Id", rid))
        start_response(status, headers)
        return [body]


_FAULT_CODE = re.compile(rb"<(?:[\w.-]{1,40}:)?(faultcode|Value)>\s*(?:[\w.-]{1,40}:)?([\w.-]{1,60})\s*<")
_SOAP12_CODES = {"Sender": "Client", "Receiver": "Server"}


def _fault_code(body: bytes) -> str | None:
    """The dotted code of a SOAP 1.1 or 1.2 fault the inner app answered (for the audit), without prefixes:
    ``Client.ResourceNotFound`` from 1.1 ``faultcode`` or 1.2 ``Sender`` + Subcode ``ResourceNotFound``."""
    found = [(m[1], m[2].decode("ascii")) for m in _FAULT_CODE.finditer(body, 0, 16 * 1024)]
    if not found:
        return None
    if found[0][0] == b"faultcode":
        return found[0][1]
    values = [v for kind, v in found if kind == b"Value"][:3]
    return ".".join([_SOAP12_CODES.get(values[0], values[0]), *values[1:]])[:60]


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


# spyne's loggers that write request bodies, parsed values or fault texts (which quote values):
# soap11.invalid logs the whole body on a parse error (soap12 parses through soap11's function);
# xml.invalid and spyne.protocol's "Invalid value %r" log values; spyne.application(.client/.server)
# log faults and exceptions with tracebacks; spyne.server.wsgi logs input errors (validation texts).
SPYNE_BODY_LOGGERS: Final = (
    "spyne.protocol",
    "spyne.protocol.xml.invalid",
    "spyne.protocol.soap.soap11.invalid",
    "spyne.protocol.soap.soap12.invalid",
    "spyne.application",
    "spyne.application.client",
    "spyne.application.server",
    "spyne.server.wsgi",
)
_SILENT = logging.CRITICAL + 10  # above CRITICAL: spyne.application.server logs uncaught errors at CRITICAL


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


_DROP_ALL = _DropAll()


def silence_spyne_loggers() -> tuple[str, ...]:
    """Stop spyne's loggers in :data:`SPYNE_BODY_LOGGERS` from writing anything; return their names.

    Each gets a level above CRITICAL and a filter that drops every record. Call it after logging is
    configured: ``logging.config.dictConfig`` resets the levels of loggers below one it configures, but
    leaves filters alone. Service code logs its own failures (exception type and request id).
    """
    for name in SPYNE_BODY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(_SILENT)
        if _DROP_ALL not in logger.filters:
            logger.addFilter(_DROP_ALL)
    return SPYNE_BODY_LOGGERS
