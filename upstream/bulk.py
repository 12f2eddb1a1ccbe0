"""A bulk answer of the Person API (``person/bulk-by-id``, ``person/bulk-by-nin``) from its bytes to its persons.

Apart from the client (upstream/client.py) because the sync's worker processes parse bulk answers
(upstream.sync.map_bulk) and need nothing else of the client: importing this module imports neither httpx
nor the JOSE library, which would cost each worker ~15 MB of resident memory for nothing.
"""

from __future__ import annotations

from typing import Any

import orjson

from upstream.errors import UpstreamError, UpstreamUnavailable

__all__ = ["bulk_persons", "person_object"]


def person_object(body: Any) -> dict[str, Any]:
    """``body`` if it is a JSON object (a Person), else :class:`UpstreamError`."""
    if not isinstance(body, dict):
        raise UpstreamError("Persontjenesten sent a person that is not an object")
    return body


def bulk_persons(body: bytes, op: str = "persons_by_id") -> list[dict[str, Any]]:
    """A bulk answer's bytes → its persons: a JSON list of objects, else an error (a body that is not JSON is
    :class:`UpstreamUnavailable`, as for every answer of the client; one that is not a list of objects is
    :class:`UpstreamError`)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"Persontjenesten answered {op} with a body that is not JSON") from None
    if not isinstance(parsed, list):
        raise UpstreamError(f"Persontjenesten answered {op} with something other than a list")
    return [person_object(p) for p in parsed]
