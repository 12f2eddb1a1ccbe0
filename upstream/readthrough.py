"""Read-through mode (issue 18): the :class:`store.source.PersonSource` that fetches missing persons.

Skeleton of the plumbing commit: the faces call it before they read; the lookups by number are filled in by
the next commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from store.search import SearchCriteria
from store.source import SourceUnavailable
from upstream.settings import UpstreamSettings

__all__ = ["ReadThrough"]


class ReadThrough:
    """Persons missing from the store are fetched from Persontjenesten, stored, and then answered from the store."""

    def __init__(self, engine: Engine, client: Any, settings: UpstreamSettings, parts: Sequence[str]) -> None:
        self.engine = engine
        self.client = client
        self.settings = settings
        self.parts = tuple(parts)

    def ensure_numbers(self, numbers: Sequence[str], *, request_id: str | None = None) -> None:
        raise SourceUnavailable()

    def ensure_search(self, criteria: SearchCriteria, *, request_id: str | None = None) -> None:
        raise SourceUnavailable()

    def close(self) -> None:
        self.client.close()
