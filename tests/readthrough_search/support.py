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
    """A PersontjenestenClient whose search_persons counts its calls and remembers every person id it answered
    (the rest is the client's own)."""

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

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


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


def same_parameters(*engines: Engine, persons: int) -> None:
    """The same identification parameters in every store: the defaults over the register's ``persons`` (a
    read-through store cannot count the register, docs/upstream.md)."""
    from store.linkage.params import DEFAULT, forget, save

    for engine in engines:
        with engine.begin() as conn:
            save(conn, Parameters(DEFAULT.m, DEFAULT.u, persons=persons))
    forget()
