"""The fake Persontjenesten's WSGI application: the Person API's operations on the v2 and v3 route trees,
the HelseID-like token endpoint, and injected faults.

Served by werkzeug (routing, form parsing and a threaded server in one small, well-kept library; the fake is
a test and demo tool, so werkzeug's development server is enough and runs in a thread inside a test or as
``pregbridge fake-persontjenesten``). Requests are checked as the contract states them: the version header,
``informationParts`` (at least one, each an InformationPart), ``sequenceNumber`` ≥ 1, at most 100 ids or
numbers, the search rules. A refusal is an RFC 7807 ProblemDetails body (400, 404) as the contract says;
401 and 403 carry a ``WWW-Authenticate`` header and no body, as the contract documents them.

Persons are served through :func:`upstream.mapping.person_json` (the inverse of the sync's mapping), so a
population synced from the fake equals the population loaded from the same files.

Faults (:class:`Faults`) count the API calls (the token endpoint is not counted) and act on every N-th:
drop the connection without an answer, 429 or 503 with ``Retry-After``, 500, or answer slowly; ``gone_every``
makes the person of every N-th event answer 404, as a person deleted after its event was written.

Every API call is written to :attr:`FakeApp.journal` (the last 100,000: operation, the caller's
``X-Request-Id`` and how many ids or numbers it asked for — never the numbers) and logged at DEBUG, so a test
can count the calls a legacy request caused and match them with pregbridge's audit by request id.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from upstream.fake.helseid import TOKEN_PATH, AuthFailure, FakeAuth, HelseIdFake
from upstream.fake.population import Population, Version
from upstream.spec import (
    ACCESS_BUNDLES,
    API_VERSIONS,
    BULK_MAX,
    EVENT_PAGE_MAX,
    EVENT_TYPES,
    INFORMATION_PARTS,
    SCOPES,
    path_prefix,
)

__all__ = ["FakeApp", "Faults", "JournalEntry"]

log = logging.getLogger("upstream.fake")

_PARTS = frozenset(INFORMATION_PARTS)
_EVENT_TYPES = frozenset(EVENT_TYPES)


@dataclass(frozen=True)
class Faults:
    """Every N-th API call (0: never) is answered by the fault; see the module docstring."""

    drop_every: int = 0
    rate_limit_every: int = 0  # 429 with Retry-After
    unavailable_every: int = 0  # 503 with Retry-After
    error_every: int = 0  # 500 with a ProblemDetails body
    slow_every: int = 0
    slow_seconds: float = 2.0
    retry_after: int = 1  # seconds, the Retry-After of 429 and 503
    gone_every: int = 0  # the person of every N-th event answers 404


@dataclass
class _Counter:
    n: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


def _problem(status: int, title: str, detail: str | None = None) -> Response:
    body: dict[str, Any] = {"type": f"https://tools.ietf.org/html/rfc9110#section-15.5.{status - 399}",
                            "title": title, "status": status}
    if status >= 500:
        body["type"] = "https://tools.ietf.org/html/rfc9110#section-15.6.1"
    if detail:
        body["detail"] = detail
    # the contract gives ProblemDetails as application/json (RFC 7807 would say application/problem+json; the
    # client reads either)
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), mimetype="application/json")


class JournalEntry(NamedTuple):
    """One API call the fake received (:attr:`FakeApp.journal`)."""

    operation: str  # the endpoint: person_by_nin, persons_by_nin, search_persons, events, …
    request_id: str | None  # the caller's X-Request-Id
    keys: int  # ids or numbers asked for (bulk), 1 for one person, 0 otherwise


class _BadRequest(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class FakeApp:
    """WSGI app over a :class:`Population`."""

    def __init__(self, population: Population, *, auth: FakeAuth | None = None, faults: Faults = Faults()) -> None:
        self.population = population
        self.faults = faults
        self.helseid = HelseIdFake(auth) if auth is not None else None
        self.released = population.latest_sequence
        self.calls = _Counter()
        self.journal: deque[JournalEntry] = deque(maxlen=100_000)
        self._gone_ids: tuple[int, frozenset[str]] | None = None  # (released, persons) for faults.gone_every
        self._gone_lock = threading.Lock()
        rules = [Rule(TOKEN_PATH, endpoint="token", methods=["POST"]),
                 Rule("/_fake/release", endpoint="release", methods=["POST"]),
                 Rule("/_fake/info", endpoint="info", methods=["GET"])]
        for version in API_VERSIONS:
            for bundle in ACCESS_BUNDLES:
                p = path_prefix(version, bundle)
                d = {"version": version, "bundle": bundle}
                rules += [
                    Rule(f"{p}/event/latest", endpoint="latest_event", methods=["GET"], defaults=d),
                    Rule(f"{p}/event", endpoint="events", methods=["GET"], defaults=d),
                    Rule(f"{p}/person/get-by-nin", endpoint="person_by_nin", methods=["POST"], defaults=d),
                    Rule(f"{p}/person/bulk-by-id", endpoint="persons_by_id", methods=["POST"], defaults=d),
                    Rule(f"{p}/person/bulk-by-nin", endpoint="persons_by_nin", methods=["POST"], defaults=d),
                    Rule(f"{p}/person/<id>", endpoint="person_by_id", methods=["GET"], defaults=d),
                    Rule(f"{p}/search/person", endpoint="search_persons", methods=["POST"], defaults=d),
                ]
        self.url_map = Map(rules, strict_slashes=False)
        self._handlers: dict[str, Callable[[Request, Mapping[str, Any]], Response]] = {
            "latest_event": self._latest_event, "events": self._events, "person_by_id": self._person_by_id,
            "person_by_nin": self._person_by_nin, "persons_by_id": self._persons_by_id,
            "persons_by_nin": self._persons_by_nin, "search_persons": self._search_persons,
        }

    def release(self, upto: int) -> None:
        """Serve events up to ``upto`` (and persons as of it); the rest of the feed is held back."""
        self.released = max(0, min(upto, self.population.latest_sequence))

    # -- WSGI -------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            endpoint, args = self.url_map.bind_to_environ(environ).match()
        except NotFound:
            response = _problem(404, "Not Found")
            endpoint = "?"
        except MethodNotAllowed:
            response = _problem(405, "Method Not Allowed")
            endpoint = "?"
        except HTTPException as exc:  # a redirect for a trailing slash, and the like
            response = _problem(exc.code or 400, exc.name)
            endpoint = "?"
        else:
            try:
                response = self._dispatch(request, endpoint, args)
            except ConnectionError:
                raise  # a dropped connection (fault injection): werkzeug ends the request without an answer
            except Exception as exc:  # noqa: BLE001 - the one seam: never a bare 500 with a traceback
                log.error("fake Persontjenesten: internal error in %s (%s)", endpoint, type(exc).__name__)
                response = _problem(500, "Internal Server Error")
        return response(environ, start_response)

    def _dispatch(self, request: Request, endpoint: str, args: Mapping[str, Any]) -> Response:
        if endpoint == "token":
            return self._token(request)
        if endpoint == "release":
            upto = request.args.get("upTo", str(self.population.latest_sequence))
            if not upto.isdigit():
                return _problem(400, "Bad Request", "upTo must be a sequence number")
            self.release(int(upto))
            return _json({"released": self.released})
        if endpoint == "info":
            return _json({"latestSequence": self.population.latest_sequence, "released": self.released,
                          "extractSize": self.population.extract_size, "persons": self.population.size,
                          "snapshotSequence": self.population.snapshot_sequence})
        self._note(request, endpoint)
        fault = self._fault(request)
        if fault is not None:
            return fault
        version, bundle = args["version"], args["bundle"]
        header = request.headers.get("api-version")
        if header != version:
            return _problem(400, "Bad Request", f"the api-version header must be {version} on this route")
        if self.helseid is not None:
            try:
                self.helseid.check(request.headers.get("Authorization"), request.headers.get("DPoP"),
                                   request.method, request.base_url, SCOPES[(version, bundle)])
            except AuthFailure as exc:
                headers = {"WWW-Authenticate": f'DPoP error="{exc.error}", algs="RS256 ES256"'}
                if exc.nonce:
                    headers["DPoP-Nonce"] = exc.nonce
                return Response(status=exc.status, headers=headers)
        try:
            return self._handlers[endpoint](request, args)
        except _BadRequest as exc:
            return _problem(400, "Bad Request", exc.detail)

    def _note(self, request: Request, endpoint: str) -> None:
        rid = request.headers.get("X-Request-Id")
        keys = {"persons_by_nin": "nins", "persons_by_id": "personIds"}.get(endpoint)
        n = len(request.form.getlist(keys)) if keys else int(endpoint in ("person_by_nin", "person_by_id"))
        self.journal.append(JournalEntry(endpoint, rid, n))
        log.debug("fake Persontjenesten: %s request_id=%s keys=%d", endpoint, (rid or "-")[:64], n)

    def _fault(self, request: Request) -> Response | None:
        f = self.faults
        n = self.calls.next()
        if f.drop_every and n % f.drop_every == 0:
            sock = request.environ.get("werkzeug.socket")
            if isinstance(sock, socket.socket):
                sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("fault: connection dropped")  # werkzeug ends the request without a word
        if f.rate_limit_every and n % f.rate_limit_every == 0:
            return Response(status=429, headers={"Retry-After": str(f.retry_after)})
        if f.unavailable_every and n % f.unavailable_every == 0:
            return Response(status=503, headers={"Retry-After": str(f.retry_after)})
        if f.error_every and n % f.error_every == 0:
            return _problem(500, "Internal Server Error")
        if f.slow_every and n % f.slow_every == 0:
            time.sleep(f.slow_seconds)
        return None

    # -- token endpoint -------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        if self.helseid is None:
            return _problem(404, "Not Found", "this fake runs without authentication")
        try:
            body = self.helseid.token(request.form, request.headers.get("DPoP"), request.base_url,
                                      request.host_url.rstrip("/"))
        except AuthFailure as exc:
            headers = {"DPoP-Nonce": exc.nonce} if exc.nonce else {}
            return Response(orjson.dumps({"error": exc.error, "error_description": exc.description}),
                            status=exc.status, headers=headers, mimetype="application/json")
        return Response(orjson.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})

    # -- operations -----------------------------------------------------------------------------------

    def _event_json(self, seq: int, person_id: str, event_type: str) -> dict[str, Any]:
        from upstream.mapping import EVENT_TYPES as FREG_TO_API

        api_type = event_type if event_type in _EVENT_TYPES else FREG_TO_API.get(event_type, "PersonIsUpdated")
        return {"sequenceNumber": str(seq), "personId": person_id, "eventType": api_type}

    def _latest_event(self, request: Request, args: Mapping[str, Any]) -> Response:
        event = self.population.event(self.released) if self.released else None
        if event is None:
            return _problem(404, "Not Found", "no events")
        return _json(self._event_json(*event))

    def _events(self, request: Request, args: Mapping[str, Any]) -> Response:
        raw = request.args.get("sequenceNumber", "1")
        if not raw.isdigit() or int(raw) < 1:
            raise _BadRequest("sequenceNumber must be an integer of at least 1")
        wanted = request.args.getlist("eventTypes")
        if any(t not in _EVENT_TYPES for t in wanted):
            raise _BadRequest("eventTypes must be EventType values")
        events = [self._event_json(*e) for e in self.population.events(int(raw), self.released, EVENT_PAGE_MAX)]
        if wanted:
            events = [e for e in events if e["eventType"] in wanted]
        return _json({"results": events, "startIndex": 0, "endIndex": max(len(events) - 1, 0)})

    def _parts(self, request: Request) -> tuple[list[str], bool]:
        parts = request.args.getlist("informationParts")
        if not parts or any(p not in _PARTS for p in parts):
            raise _BadRequest("informationParts must name at least one InformationPart")
        history = request.args.get("includeHistory", "false").lower()
        if history not in ("true", "false"):
            raise _BadRequest("includeHistory must be true or false")
        return parts, history == "true"

    def _gone(self, person_id: str) -> bool:
        every = self.faults.gone_every
        if not every:
            return False
        with self._gone_lock:
            if self._gone_ids is None or self._gone_ids[0] != self.released:
                ids: set[str] = set()
                for first in range(1, self.released + 1, EVENT_PAGE_MAX):
                    ids.update(e.person_id for e in self.population.events(first, self.released, EVENT_PAGE_MAX)
                               if e.sequence_number % every == 0)
                self._gone_ids = (self.released, frozenset(ids))
            return person_id in self._gone_ids[1]

    def _version(self, person_id: str) -> Version | None:
        if self._gone(person_id):
            return None
        return self.population.version(person_id, self.released)

    def _person(self, version: Version, parts: list[str], history: bool) -> dict[str, Any]:
        from upstream.mapping import person_json

        return person_json(version.document, parts=parts, include_history=history,
                           sequence_number=version.sequence_number)

    def _person_by_id(self, request: Request, args: Mapping[str, Any]) -> Response:
        parts, history = self._parts(request)
        person_id = str(args["id"])
        if not 1 <= len(person_id) <= 64:
            raise _BadRequest("the person id is 1 to 64 characters")
        version = self._version(person_id)
        if version is None:
            return _problem(404, "Not Found", "no person with that id")
        return _json(self._person(version, parts, history))

    def _by_number(self, number: str) -> Version | None:
        person_id = self.population.person_of_number(number)
        return None if person_id is None else self._version(person_id)

    def _person_by_nin(self, request: Request, args: Mapping[str, Any]) -> Response:
        parts, history = self._parts(request)
        nin = request.form.get("nin", "")
        if not nin:
            raise _BadRequest("nin is required")
        version = self._by_number(nin)
        if version is None:
            return _problem(404, "Not Found", "no person with that number")
        return _json(self._person(version, parts, history))

    def _bulk(self, request: Request, field_name: str, find: Callable[[str], Version | None]) -> Response:
        parts, history = self._parts(request)
        keys = request.form.getlist(field_name)
        if not 1 <= len(keys) <= BULK_MAX:
            raise _BadRequest(f"{field_name} must hold 1 to {BULK_MAX} values")
        found = (find(k) for k in keys)
        return _json([self._person(v, parts, history) for v in found if v is not None])

    def _persons_by_id(self, request: Request, args: Mapping[str, Any]) -> Response:
        return self._bulk(request, "personIds", self._version)

    def _persons_by_nin(self, request: Request, args: Mapping[str, Any]) -> Response:
        return self._bulk(request, "nins", self._by_number)

    def _search_persons(self, request: Request, args: Mapping[str, Any]) -> Response:
        from upstream.fake.search import search

        parts, history = self._parts(request)
        include_ain = request.args.get("includeAinResults", "false").lower() == "true"
        try:
            hits = search(self.population, request.form, self.released, include_ain=include_ain,
                          limit=BULK_MAX, keep=lambda v: not self._gone(v.document["personId"]))
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return _json({"results": [self._person(v, parts, history) for v in hits], "startIndex": 0,
                      "endIndex": max(len(hits) - 1, 0)})
