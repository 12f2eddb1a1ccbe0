"""Filematch identification in read-through mode against the fake Persontjenesten, SQLite and PostgreSQL: a noisy
labelled sample (filematch/testdata.py) washed into an EMPTY store comes out as the replica washes it, but for the
records the register's search cannot reach (measured and bounded here; docs/upstream.md says why)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import Engine

from filematch.pipeline import wash
from filematch.records import Code, InputRecord
from filematch.testdata import noisy_records, truth_of
from store.engine import read_connection
from tests.readthrough_search.support import SIZE, Counting, SearchSource, same_parameters, stored_keys

SAMPLE = 100


def _wash(engine: Engine, records: list[InputRecord], source: SearchSource | None = None) -> dict[str, tuple[str, str]]:
    with read_connection(engine) as conn:
        res = wash(conn, records, source=source)
    return {r.ref: (r.code.value, r.number) for r in res.results}


def _wrong(answers: dict[str, tuple[str, str]]) -> set[str]:
    return {ref for ref, (code, number) in answers.items() if code == Code.IDENTIFIED.value and number != truth_of(ref)}


def test_a_noisy_sample_is_identified_as_the_replica_identifies_it(population: Path, replica: Engine, reader: Engine,
                                                                   client: Counting) -> None:
    same_parameters(replica, reader, persons=SIZE + 250)
    records = noisy_records(population / "persons.jsonl", SAMPLE, seed=11, outside=0.1)
    want = _wash(replica, records)
    source = SearchSource(client, reader)
    got = _wash(reader, records, source)
    assert want.keys() == got.keys()
    differ = {ref: (want[ref], got[ref]) for ref in want if want[ref] != got[ref]}
    kinds = Counter(f"{w[0]}→{g[0]}" for w, g in differ.values())
    print(f"\nread-through vs replica on {len(want)} noisy records: {len(differ)} differ {dict(kinds)}; "
          f"{client.calls} searches, {source.numbers_asked} numbers asked, {len(stored_keys(reader))} persons stored")
    # read-through identifies no record wrongly that the replica identifies rightly (a replica's own errors stay)
    assert _wrong(got) <= _wrong(want)
    assert len(differ) <= 0.05 * len(want), kinds
    assert client.calls <= 8 * len(records)
    assert stored_keys(reader) <= client.answered  # only persons the register returned
