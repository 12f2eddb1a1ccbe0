"""What can go wrong talking to Persontjenesten, as one tree under the project's root exception.

    PregbridgeError (store.errors)
    └── UpstreamError
        ├── UpstreamConfigError      fatal: bad [upstream] settings, a key file others can read, 403 (names the scope)
        ├── UpstreamAuthError        HelseID refused the client, or the API said 401 again after one token refresh
        ├── UpstreamProblem          a 4xx answer, with its RFC 7807 ProblemDetails when it had one
        │   ├── UpstreamBadRequest   400
        │   └── UpstreamNotFound     404
        └── UpstreamUnavailable      transient: network errors, 5xx, 429 and 503 — after the retries ran out

A caller that loops (the sync) treats :class:`UpstreamUnavailable` as "try again later, nothing lost" and the
others as needing an operator. Messages never carry a token, a key, a person's number or a response body: only
status codes, ProblemDetails ``title``/``type``/``status`` and the operation's name. ProblemDetails ``detail``
is kept on the exception (``.problem``) but left out of ``str()``: an upstream may echo the request in it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from store.errors import PregbridgeError

__all__ = [
    "UpstreamAuthError",
    "UpstreamBadRequest",
    "UpstreamConfigError",
    "UpstreamError",
    "UpstreamNotFound",
    "UpstreamProblem",
    "UpstreamUnavailable",
]


class UpstreamError(PregbridgeError):
    pass


class UpstreamConfigError(UpstreamError):
    pass


class UpstreamAuthError(UpstreamError):
    pass


class UpstreamProblem(UpstreamError):
    """A 4xx answer. ``problem`` is its ProblemDetails object ({} when the body was not one)."""

    def __init__(self, operation: str, status: int, problem: Mapping[str, Any] | None = None) -> None:
        self.operation = operation
        self.status = status
        self.problem: dict[str, Any] = dict(problem or {})
        title = self.problem.get("title")
        kind = self.problem.get("type")
        said = ", ".join(f"{k} {v!r}" for k, v in (("title", title), ("type", kind)) if isinstance(v, str))
        super().__init__(f"Persontjenesten answered {operation} with {status}" + (f" ({said})" if said else ""))

    @property
    def title(self) -> str | None:
        v = self.problem.get("title")
        return v if isinstance(v, str) else None

    @property
    def detail(self) -> str | None:
        v = self.problem.get("detail")
        return v if isinstance(v, str) else None


class UpstreamBadRequest(UpstreamProblem):
    pass


class UpstreamNotFound(UpstreamProblem):
    pass


class UpstreamUnavailable(UpstreamError):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
