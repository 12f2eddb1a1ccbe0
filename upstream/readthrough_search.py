"""Searches in read-through mode (issue 18, item 2) — placeholder: the rtsearch branch owns this module and
replaces it whole (take that version at merge). :class:`upstream.readthrough.ReadThrough.ensure_search`
calls :func:`search_into_store` with this signature."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from store.search import SearchCriteria

__all__ = ["search_into_store"]


def search_into_store(client: Any, engine: Engine, criteria: SearchCriteria, *, request_id: str | None,
                      deadline: float) -> list[int]:
    """Ask search/person for the criteria's candidates, store them, return their ids in the store."""
    raise NotImplementedError("read-through searches are built on the rtsearch branch")
