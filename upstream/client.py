"""The Persontjenesten (NHN Person API) client: one pooled httpx client, HelseID + DPoP, retries, typed errors.

Every call has a deadline (``upstream.deadline``): attempts, waits and the token fetch together never take
longer; each attempt also has connect and read timeouts. What each answer becomes:

==========================  ==================================================================================
2xx                         the parsed JSON
401                         the access token is dropped and fetched again, once; a second 401 →
                            :class:`UpstreamAuthError`. A 401 asking for a DPoP nonce is answered with one.
403                         :class:`UpstreamConfigError` naming the scope the client was given
400, 404, other 4xx         :class:`UpstreamBadRequest`, :class:`UpstreamNotFound`, :class:`UpstreamProblem`,
                            carrying the RFC 7807 ProblemDetails
429, 503                    retried after ``Retry-After`` (capped), else as other 5xx
other 5xx, network errors   retried with capped exponential backoff and full jitter
retries or deadline spent   :class:`UpstreamUnavailable`
==========================  ==================================================================================

A call made for a legacy request (read-through mode, upstream/readthrough.py) runs inside
:meth:`PersontjenestenClient.scoped`: its own, shorter deadline (``upstream.lookup_deadline``) and the legacy
call's request id, sent as ``X-Request-Id`` so the register's side (and the fake's journal) can be matched with
pregbridge's audit. The scope is a context variable: per thread, nothing shared.

httpx is thread-safe: one :class:`PersontjenestenClient` serves the sync's parallel bulk requests. Its own
loggers (which write URLs and headers at DEBUG) are held at WARNING; this module logs operations by name,
status and wait — never a URL, a person id, a number, a token or a body.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import orjson

from upstream.auth import ASSERTION_TYPE, Signer, TokenSource, load_jwk
from upstream.bulk import bulk_persons, person_object
from upstream.errors import (
    UpstreamAuthError,
    UpstreamBadRequest,
    UpstreamConfigError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamProblem,
    UpstreamUnavailable,
)
from upstream.settings import UpstreamSettings
from upstream.spec import BULK_MAX, INFORMATION_PARTS, OPERATIONS, version_header

__all__ = ["EventDocument", "PersontjenestenClient"]

log = logging.getLogger("upstream.client")
_PARTS = frozenset(INFORMATION_PARTS)
REQUEST_ID_HEADER = "X-Request-Id"


class CallScope(NamedTuple):
    """What :meth:`PersontjenestenClient.scoped` sets for the calls of its block."""

    deadline: float | None  # seconds a whole call may take (the shorter of this and ``upstream.deadline``)
    request_id: str | None  # the legacy call's request id, sent as X-Request-Id


_SCOPE: contextvars.ContextVar[CallScope | None] = contextvars.ContextVar("upstream_call_scope", default=None)


class EventDocument(NamedTuple):
    sequence_number: int
    person_id: str
    event_type: str


def _event(raw: Any) -> EventDocument:
    if not isinstance(raw, Mapping):
        raise UpstreamError("Persontjenesten sent an event that is not an object")
    try:
        seq = int(raw["sequenceNumber"])  # a string in the contract
    except (KeyError, TypeError, ValueError):
        raise UpstreamError("Persontjenesten sent an event without a sequence number") from None
    person_id, event_type = raw.get("personId"), raw.get("eventType")
    if not isinstance(person_id, str) or not person_id or not isinstance(event_type, str):
        raise UpstreamError(f"Persontjenesten sent event {seq} without a person id or event type")
    return EventDocument(seq, person_id, event_type)


def _retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP-date), None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now())


def _problem(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = orjson.loads(resp.content) if resp.content else None
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


class PersontjenestenClient:
    """The operations of the Person API on one route tree (``settings.prefix``)."""

    def __init__(self, settings: UpstreamSettings, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        if not settings.configured:
            raise UpstreamConfigError("upstream.base_url is not set: there is no Persontjenesten to talk to")
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.settings = settings
        self._base = settings.base_url.rstrip("/") + settings.prefix
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._signer: Signer | None = None
        self._tokens: TokenSource | None = None
        self._nonce: str | None = None  # the API's last DPoP-Nonce, if it uses them
        self._nonce_lock = threading.Lock()
        if settings.token_endpoint:  # the key first: a refused key file leaves nothing open
            assert settings.jwk_path is not None  # UpstreamSettings checks it
            key, alg = load_jwk(settings.jwk_path)
            self._signer = Signer(key, alg)
            self._tokens = TokenSource(self._fetch_token, margin=settings.token_margin)
        limits = httpx.Limits(max_connections=settings.parallelism + 2,
                              max_keepalive_connections=settings.parallelism + 2)
        self._http = httpx.Client(transport=transport, limits=limits, follow_redirects=False,
                                  headers=dict([version_header(settings.api_version), ("Accept", "application/json")]))

    # -- lifecycle --------------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PersontjenestenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def tokens_fetched(self) -> int:
        return self._tokens.fetched if self._tokens else 0

    @staticmethod
    @contextlib.contextmanager
    def scoped(*, deadline: float | None = None, request_id: str | None = None) -> Iterator[None]:
        """The calls of the block (in this thread) end by ``deadline`` seconds from each call's start and carry
        ``request_id`` as X-Request-Id (module docstring)."""
        token = _SCOPE.set(CallScope(deadline, request_id))
        try:
            yield
        finally:
            _SCOPE.reset(token)

    # -- operations -------------------------------------------------------------------------------------

    def latest_event(self) -> EventDocument | None:
        """The newest event (GET event/latest); None when the feed is empty (404)."""
        try:
            return _event(self._json("latest_event"))
        except UpstreamNotFound:
            return None

    def events(self, sequence_number: int, event_types: Sequence[str] = ()) -> list[EventDocument]:
        """Up to 1,000 events from ``sequence_number`` (inclusive), in order."""
        if sequence_number < 1:
            raise ValueError("sequence numbers start at 1")
        params: list[tuple[str, str]] = [("sequenceNumber", str(sequence_number))]
        params += [("eventTypes", t) for t in event_types]
        try:
            body = self._json("events", params=params)
        except UpstreamNotFound:
            return []
        results = body.get("results") if isinstance(body, Mapping) else None
        if results is None:
            return []
        if not isinstance(results, list):
            raise UpstreamError("Persontjenesten sent an event page whose results are not a list")
        return [_event(r) for r in results]

    def person_by_id(self, person_id: str, parts: Sequence[str],
                     include_history: bool = False) -> dict[str, Any] | None:
        if not person_id or len(person_id) > 64:
            raise ValueError("a person id is 1 to 64 characters")
        try:
            return self._person(self._json("person_by_id", path_id=person_id,
                                           params=self._part_params(parts, include_history)))
        except UpstreamNotFound:
            return None

    def person_by_nin(self, nin: str, parts: Sequence[str], include_history: bool = False) -> dict[str, Any] | None:
        try:
            return self._person(self._json("person_by_nin", params=self._part_params(parts, include_history),
                                           data={"nin": nin}))
        except UpstreamNotFound:
            return None

    def persons_by_id(self, ids: Sequence[str], parts: Sequence[str],
                      include_history: bool = False) -> list[dict[str, Any]]:
        return self._bulk("persons_by_id", "personIds", ids, parts, include_history)

    def persons_by_id_body(self, ids: Sequence[str], parts: Sequence[str], include_history: bool = False) -> bytes:
        """person/bulk-by-id's answer unparsed, for :func:`upstream.bulk.bulk_persons` elsewhere (the sync's
        worker processes: the bytes cross to them more cheaply than the parsed objects, and this process keeps
        its time for writing)."""
        return self._bulk_body("persons_by_id", "personIds", ids, parts, include_history)

    def persons_by_nin(self, nins: Sequence[str], parts: Sequence[str],
                       include_history: bool = False) -> list[dict[str, Any]]:
        return self._bulk("persons_by_nin", "nins", nins, parts, include_history)

    def search_persons(self, criteria: Mapping[str, str], parts: Sequence[str], include_history: bool = False,
                       include_ain: bool = False) -> list[dict[str, Any]]:
        """search/person with the contract's form fields (GivenName, FamilyName, BirthDate, …); ≤ 100 persons."""
        params = self._part_params(parts, include_history) + [("includeAinResults", "true" if include_ain
                                                                else "false")]
        body = self._json("search_persons", params=params, data=dict(criteria))
        results = body.get("results") if isinstance(body, Mapping) else None
        if not isinstance(results, list):
            return []
        return [self._person(p) for p in results]

    # -- plumbing ---------------------------------------------------------------------------------------

    @staticmethod
    def _part_params(parts: Sequence[str], include_history: bool) -> list[tuple[str, str]]:
        if not parts:
            raise ValueError("at least one information part is needed")
        unknown = [p for p in parts if p not in _PARTS]
        if unknown:
            raise ValueError(f"not information parts of the API: {', '.join(unknown)}")
        return [("informationParts", p) for p in parts] + [("includeHistory", "true" if include_history else "false")]

    @staticmethod
    def _person(body: Any) -> dict[str, Any]:
        return person_object(body)

    def _bulk(self, op: str, field: str, keys: Sequence[str], parts: Sequence[str],
              include_history: bool) -> list[dict[str, Any]]:
        return bulk_persons(self._bulk_body(op, field, keys, parts, include_history), op) if keys else []

    def _bulk_body(self, op: str, field: str, keys: Sequence[str], parts: Sequence[str],
                   include_history: bool) -> bytes:
        if not keys:
            return b"[]"
        if len(keys) > BULK_MAX:
            raise ValueError(f"at most {BULK_MAX} per bulk request")
        method, path = OPERATIONS[op]
        params = self._part_params(parts, include_history)
        return self.call(op, method, self._base + path, params=params, data={field: list(keys)}).content

    def _json(self, op: str, *, path_id: str | None = None, params: list[tuple[str, str]] | None = None,
              data: Mapping[str, Any] | None = None) -> Any:
        method, path = OPERATIONS[op]
        if path_id is not None:
            path = path.replace("{id}", quote(path_id, safe=""))
        resp = self.call(op, method, self._base + path, params=params, data=data)
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(f"Persontjenesten answered {op} with a body that is not JSON",
                                      status=resp.status_code) from None

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return self._rng.uniform(0, min(s.backoff_max, s.backoff_initial * 2 ** attempt))

    def call(self, op: str, method: str, url: str, *, params: list[tuple[str, str]] | None = None,
             data: Mapping[str, Any] | None = None) -> httpx.Response:
        """One operation with authentication, retries and the deadline; returns a 2xx response."""
        s = self.settings
        scope = _SCOPE.get()
        limit = min(s.deadline, scope.deadline) if scope is not None and scope.deadline else s.deadline
        deadline = time.monotonic() + limit
        attempt, refreshed = 0, False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamUnavailable(f"Persontjenesten: {op} did not succeed within the {limit:g} s deadline")
            timeout = httpx.Timeout(min(s.read_timeout, remaining), connect=min(s.connect_timeout, remaining))
            headers: dict[str, str] = {}
            if scope is not None and scope.request_id:
                headers[REQUEST_ID_HEADER] = scope.request_id
            token = None
            try:
                if self._tokens is not None and self._signer is not None:
                    token = self._tokens.token()
                    headers["Authorization"] = f"DPoP {token}"
                    headers["DPoP"] = self._signer.proof(method, url, access_token=token, nonce=self._nonce)
                resp = self._http.request(method, url, params=httpx.QueryParams(tuple(params or ())), data=data,
                                          headers=headers, timeout=timeout)
            except httpx.TransportError as exc:
                status, reason, wait = None, type(exc).__name__, self._backoff(attempt)
            except UpstreamUnavailable as exc:  # the token endpoint, transiently
                status, reason, wait = exc.status, "token endpoint " + (str(exc.status) if exc.status else
                                                                         "unreachable"), self._backoff(attempt)
            else:
                status = resp.status_code
                if status < 300:
                    return resp
                if status == 401 and token is not None:
                    nonce = resp.headers.get("DPoP-Nonce")
                    if nonce and "use_dpop_nonce" in resp.headers.get("WWW-Authenticate", "") and nonce != self._nonce:
                        with self._nonce_lock:
                            self._nonce = nonce
                        continue
                    if not refreshed:
                        assert self._tokens is not None
                        self._tokens.forget(token)
                        refreshed = True
                        log.info("Persontjenesten refused the access token on %s; fetching a new one", op)
                        continue
                if status == 401:
                    raise UpstreamAuthError(f"Persontjenesten refused {op} (401) "
                                            + ("after a fresh access token" if token else "without authentication"))
                if status == 403:
                    raise UpstreamConfigError(
                        f"Persontjenesten refused {op} (403 forbidden): the client's scope "
                        f"{s.effective_scope!r} does not grant {s.prefix}; check upstream.scope/bundle and the "
                        f"client's HelseID configuration")
                if status in (429, 503):
                    after = _retry_after(resp.headers.get("Retry-After"))
                    wait = min(after, s.retry_after_max) if after is not None else self._backoff(attempt)
                elif status >= 500:
                    wait = self._backoff(attempt)
                else:
                    cls = {400: UpstreamBadRequest, 404: UpstreamNotFound}.get(status, UpstreamProblem)
                    raise cls(op, status, _problem(resp))
                reason = f"status {status}"
            attempt += 1
            if attempt > s.retries:
                raise UpstreamUnavailable(f"Persontjenesten: {op} failed {attempt} times (last: {reason})",
                                          status=status)
            if wait >= deadline - time.monotonic():
                raise UpstreamUnavailable(f"Persontjenesten: {op} failed ({reason}) and the next try would pass the "
                                          f"{limit:g} s deadline", status=status)
            log.warning("Persontjenesten %s: %s; try %d of %d in %.2f s", op, reason, attempt + 1, s.retries + 1, wait)
            self._sleep(wait)

    # -- HelseID ----------------------------------------------------------------------------------------

    def _fetch_token(self) -> tuple[str, float]:
        """client_credentials with a private_key_jwt assertion and a DPoP proof (and a nonce when asked)."""
        s, signer = self.settings, self._signer
        assert signer is not None
        url = s.token_endpoint
        nonce: str | None = None
        for _ in range(2):
            form = {"grant_type": "client_credentials", "client_id": s.client_id, "scope": s.effective_scope,
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": signer.client_assertion(s.client_id, s.assertion_audience or url)}
            headers = {"DPoP": signer.proof("POST", url, nonce=nonce)}
            try:
                resp = self._http.post(url, data=form, headers=headers,
                                       timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout))
            except httpx.TransportError as exc:
                raise UpstreamUnavailable(f"HelseID token endpoint unreachable ({type(exc).__name__})") from None
            body = _problem(resp)  # OAuth error and token bodies are JSON objects too
            if resp.status_code == 400 and body.get("error") == "use_dpop_nonce" and resp.headers.get("DPoP-Nonce") \
                    and nonce is None:
                nonce = resp.headers["DPoP-Nonce"]
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                raise UpstreamUnavailable(f"HelseID token endpoint answered {resp.status_code}",
                                          status=resp.status_code)
            if resp.status_code != 200:
                error = body.get("error")
                raise UpstreamAuthError(f"HelseID refused the client ({resp.status_code}"
                                        + (f", {error}" if isinstance(error, str) else "") + ")")
            token, lifetime = body.get("access_token"), body.get("expires_in")
            if not isinstance(token, str) or str(body.get("token_type", "")).lower() != "dpop":
                raise UpstreamAuthError("HelseID answered without a DPoP access token")
            return token, float(lifetime) if isinstance(lifetime, int | float) else 60.0
        raise UpstreamAuthError("HelseID asked for a DPoP nonce twice")
