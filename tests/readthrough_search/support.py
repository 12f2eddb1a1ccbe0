"""Helpers of the read-through search tests: a client that counts its calls, searches as comparable answers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from store.linkage.params import Parameters
from store.search import ALL_RELEASABLE, SearchCriteria, search
from tests.factories import person_doc

SIZE, SEED = 1200, 18
SPLITS, WIDE = "Brattlikrok", "Brattlivang"  # the crowd's family names (support.crowd)


def crowd() -> list[dict[str, Any]]:
    """Persons a search cannot list within the cap: 130 Brattlikrok born in 1975, half women, half men (a split
    by gender lists them), and 120 Brattlivang women born in 1976 (no split helps)."""
    out = []
    for i in range(130):
        born = dt.date(1975, 1, 1) + dt.timedelta(days=2 * i)
        out.append(person_doc(f"crowd-k{i:03d}", given="Kari" if i % 2 else "Per", family=SPLITS,
                              born=born.isoformat(), gender="kvinne" if i % 2 else "mann", house=i + 1))
    for i in range(120):
        born = dt.date(1976, 1, 1) + dt.timedelta(days=3 * i)
        out.append(person_doc(f"crowd-v{i:03d}", given="Liv", family=WIDE, born=born.isoformat(), gender="kvinne",
                              house=i + 1))
    return out


class Counting:
    """A PersontjenestenClient's search_persons, counting calls and remembering every person id it answered."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0
        self.forms: list[dict[str, str]] = []
        self.answered: set[str] = set()

    def search_persons(self, criteria: Mapping[str, str], parts: Sequence[str], include_history: bool = False,
                       include_ain: bool = False) -> list[dict[str, Any]]:
        self.calls += 1
        self.forms.append(dict(criteria))
        hits: list[dict[str, Any]] = self.client.search_persons(criteria, parts, include_history, include_ain)
        self.answered.update(h["id"] for h in hits)
        return hits


def answer(engine: Engine, c: SearchCriteria, limit: int = 2000) -> list[tuple[str, float]]:
    """The store's search as (person key, score), best first, equal scores by key: comparable across stores (the
    store breaks ties by its person ids, which differ: a read-through store numbers persons as it fetches them)."""
    with engine.connect() as conn:
        hits = search(conn, c, scope=ALL_RELEASABLE, limit=limit)
        keys: dict[int, str] = dict(conn.execute(text("SELECT id, person_key FROM person")).all())
    return sorted(((keys[h.person_id], h.score) for h in hits), key=lambda kv: (-kv[1], kv[0]))


def stored_keys(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT person_key FROM person")).scalars())


def documents(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "persons.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


class SearchSource:
    """A minimal read-through PersonSource over search_into_store (the server's is upstream.readthrough's
    ReadThrough, with its breaker, single-flight and audit): what the faces' call sites need, and no more."""

    def __init__(self, client: Counting, engine: Engine, deadline: float = 10.0) -> None:
        self.client = client
        self.engine = engine
        self.deadline = deadline
        self.numbers_asked = 0

    def ensure_numbers(self, numbers: Sequence[str], *, request_id: str | None = None) -> None:
        from store.source import SourceUnavailable
        from upstream.errors import UpstreamError
        from upstream.readthrough_search import ALL_PARTS, store_answers

        self.numbers_asked += len(numbers)
        try:
            for k in range(0, len(numbers), 100):
                found = self.client.client.persons_by_nin(list(numbers[k : k + 100]), ALL_PARTS, include_history=True)
                self.client.answered.update(p["id"] for p in found)
                store_answers(self.engine, found)
        except UpstreamError as exc:
            raise SourceUnavailable(type(exc).__name__) from None

    def ensure_search(self, criteria: SearchCriteria, *, request_id: str | None = None) -> None:
        from store.source import SourceUnavailable
        from upstream.errors import UpstreamError
        from upstream.readthrough_search import search_into_store

        try:
            search_into_store(self.client, self.engine, criteria, request_id=request_id, deadline=self.deadline)
        except UpstreamError as exc:
            raise SourceUnavailable(type(exc).__name__) from None


def same_parameters(*engines: Engine, persons: int) -> None:
    """The same identification parameters in every store: the defaults over the register's ``persons`` (a
    read-through store cannot count the register, docs/upstream.md)."""
    from store.linkage.params import DEFAULT, forget, save

    for engine in engines:
        with engine.begin() as conn:
            save(conn, Parameters(DEFAULT.m, DEFAULT.u, persons=persons))
    forget()
