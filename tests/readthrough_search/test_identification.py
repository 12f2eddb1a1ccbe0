"""Filematch identification in read-through mode against the fake Persontjenesten, SQLite and PostgreSQL: a noisy
labelled sample (filematch/testdata.py) washed into an EMPTY store comes out as the replica washes it, but for the
records the register's search cannot reach (measured and bounded here; docs/upstream.md says why)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from filematch.gather import CALLS_PER_RECORD, Gatherer, identify_criteria
from filematch.pipeline import wash
from filematch.records import Code, InputRecord
from filematch.testdata import noisy_records, truth_of
from store.engine import read_connection
from store.matching import IdentifyQuery
from store.search import SearchCriteria
from tests.readthrough.support import read_through_settings
from tests.readthrough_search.support import SIZE, Counting, same_parameters, stored_keys
from upstream.client import PersontjenestenClient
from upstream.fake import RunningFake
from upstream.parts import ELEMENT_PARTS, information_parts
from upstream.readthrough import ReadThrough

SAMPLE = 100


def _wash(engine: Engine, records: list[InputRecord], source: ReadThrough | None = None) -> dict[str, tuple[str, str]]:
    with read_connection(engine) as conn:
        res = wash(conn, records, source=source)
    return {r.ref: (r.code.value, r.number) for r in res.results}


def _wrong(answers: dict[str, tuple[str, str]]) -> set[str]:
    return {ref for ref, (code, number) in answers.items() if code == Code.IDENTIFIED.value and number != truth_of(ref)}


def test_a_noisy_sample_is_identified_as_the_replica_identifies_it(population: Path, replica: Engine, reader: Engine,
                                                                   fake: RunningFake) -> None:
    same_parameters(replica, reader, persons=SIZE + 250)
    records = noisy_records(population / "persons.jsonl", SAMPLE, seed=11, outside=0.1)
    want = _wash(replica, records)
    settings = read_through_settings(fake, lookup_deadline=5.0)
    client = Counting(PersontjenestenClient(settings))
    source = ReadThrough(reader, client, settings, information_parts(ELEMENT_PARTS))
    try:
        got = _wash(reader, records, source)
    finally:
        source.close()
    assert want.keys() == got.keys()
    differ = {ref: (want[ref], got[ref]) for ref in want if want[ref] != got[ref]}
    kinds = Counter(f"{w[0]}→{g[0]}" for w, g in differ.values())
    print(f"\nread-through vs replica on {len(want)} noisy records: {len(differ)} differ {dict(kinds)}; "
          f"{client.calls} searches, {len(stored_keys(reader))} persons stored")
    # read-through identifies no record wrongly that the replica identifies rightly (a replica's own errors stay)
    assert _wrong(got) <= _wrong(want)
    assert len(differ) <= 0.05 * len(want), kinds
    # at most CALLS_PER_RECORD searches a record; a search is one call, three when its answer reaches the cap
    assert client.calls <= 3 * CALLS_PER_RECORD * len(records)
    assert stored_keys(reader) <= client.answered  # only persons the register returned


class _Recording:
    """A PersonSource that records what it is asked (the budget's arithmetic, no register needed)."""

    def __init__(self) -> None:
        self.searches: list[SearchCriteria] = []
        self.numbers: list[str] = []

    def ensure_numbers(self, numbers: Sequence[str], *, request_id: str | None = None) -> None:
        self.numbers += numbers

    def ensure_search(self, criteria: SearchCriteria, *, request_id: str | None = None) -> None:
        self.searches.append(criteria)


def test_a_chunk_asks_each_search_once_and_no_more_than_its_budget() -> None:
    born = dt.date(1980, 5, 7)  # day ≤ 12: a day/month swap is a date
    twins = [IdentifyQuery(given="Ola", family="Nordmann", birth_date=born, street="Storgata 1"),
             IdentifyQuery(given="Ola", family="Nordmann", birth_date=born, street="Storgata 1")]
    src = _Recording()
    g = Gatherer.for_chunk(src, len(twins))
    g.gather(twins)
    assert len(src.searches) == len(set(src.searches)) == g.asked == 8  # 2 + 3 + 3, asked once for both
    assert src.numbers == []
    small = Gatherer(src, budget=3)
    small.gather([IdentifyQuery(given="Kari", family="Hansen", birth_date=born, number="17058012345")])
    assert small.asked == 3 and small.cut == 4  # of 2 + 2 + 3 (no street)
    assert src.numbers  # the persons one typing error from the unknown number were asked for


def test_a_record_without_birth_date_or_street_has_no_search_the_register_accepts() -> None:
    assert identify_criteria(IdentifyQuery(given="Kari", family="Hansen", postnummer="0150")) == [[], [], [], []]
