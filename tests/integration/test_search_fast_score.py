"""The search's ranking (PREG searchPerson's score, HL7 PDQ's QRI) weighs its hits with identification's fused
scorer (store.linkage.score.RowScorer); its reference is ``Parameters.weigh`` over the hit's Rec
(``store.linkage.compare.rec_of_row``, every address level seen). On a generated population with estimated
parameters (term frequencies included), searches of every kind the faces make — family name + birth year,
full name in either order, given + family + birth date, a family prefix + postnummer, family + street, and
the same with a date one digit off — give the same float for every hit and the same ranked hits. On SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from store import search as search_module
from store.errors import InvalidInput, TooManyHits
from store.linkage.compare import Rec, rec_of_row
from store.linkage.estimate import estimate
from store.linkage.params import Parameters, save
from store.loading import load_population
from store.search import ALL_RELEASABLE, SearchCriteria, search
from store.synthetic import generate_population


def _reference(params: Parameters, readings: list[Rec], rows: list[Any]) -> list[float]:
    exact = [params.exact_weights(q) for q in readings]
    out = []
    for row in rows:
        bd = row[3]
        r = rec_of_row(row, dt.date.fromisoformat(bd) if isinstance(bd, str) else bd, True, True)
        out.append(max(params.weigh(q, r, e) for q, e in zip(readings, exact, strict=True)))
    return out


def _criteria(doc: dict[str, Any], rng: random.Random) -> list[SearchCriteria]:
    name = doc["names"][0]
    given, family = name["given"], name["family"]
    born = dt.date.fromisoformat(doc["birth"][0]["date"])
    addr = next((a for a in doc.get("addresses", []) if a.get("postnummer")), None)
    off = born.replace(day=born.day % 9 + 1) if born.day != born.day % 9 + 1 else born.replace(day=20)
    out = [SearchCriteria(family=family, birth_year=born.year),
           SearchCriteria(full_name=f"{given} {family}", birth_year=born.year),
           SearchCriteria(full_name=f"{family} {given}", birth_year=born.year),
           SearchCriteria(given=given, family=family, birth_date=born),
           SearchCriteria(given=given, family=family, birth_date=off, gender=rng.choice(["mann", "kvinne"]))]
    if addr:
        out.append(SearchCriteria(family=family[:4], postnummer=addr["postnummer"]))
        if addr.get("street"):
            out.append(SearchCriteria(family=family, street=addr["street"], kommune=addr.get("kommune")))
    return out


@pytest.fixture
def population(tmp_path: Path) -> Path:
    generate_population(tmp_path / "pop", 3000, 11, feed_days=0)
    return tmp_path / "pop"


def test_the_search_ranks_with_the_fused_scorer_as_with_the_reference(engine: Engine, population: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    load_population(engine, population, workers=1)
    with engine.begin() as conn:
        save(conn, estimate(conn, pairs=5000))
    from store.linkage.params import forget

    forget()
    docs = [json.loads(line) for line in (population / "persons.jsonl").read_text(encoding="utf-8").splitlines()]
    rng = random.Random(4)
    seen: list[tuple[Parameters, list[Rec], list[Any], list[float]]] = []
    ranked = search_module._ranked

    def spy(params: Parameters, readings: list[Rec], rows: list[Any]) -> list[search_module.SearchHit]:
        hits = ranked(params, readings, rows)
        seen.append((params, readings, rows, [h.score for h in hits]))
        return hits

    monkeypatch.setattr(search_module, "_ranked", spy)
    searched = 0
    with engine.connect() as conn:
        for doc in rng.sample(docs, 120):
            for c in _criteria(doc, rng):
                try:
                    search(conn, c, scope=ALL_RELEASABLE)
                except (TooManyHits, InvalidInput):  # a criteria set the rules refuse: not a ranking
                    continue
                searched += 1
    hits = 0
    for params, readings, rows, scores in seen:
        want = _reference(params, readings, rows)
        scorers = [search_module.RowScorer(params, q, params.exact_weights(q)) for q in readings]
        got = [max(s.weight(row) for s in scorers) for row in rows]
        assert got == want, (readings, rows)
        order = sorted(zip(want, (r[0] for r in rows), strict=True), key=lambda wp: (-wp[0], wp[1]))
        assert scores == [round(100.0 * p, 1) for p in params.probabilities([w for w, _ in order])]
        hits += len(rows)
    assert searched > 500 and hits > searched and sum(len(rows) > 1 for _, _, rows, _ in seen) > 20
    assert any(len(readings) == 2 for _, readings, _, _ in seen)  # full names: both readings
