"""PDQ's PID segments come from persons decoded with their current values only
(store.document.from_stored_current): for every person of a synthetic population with a change feed
applied (moves, name changes, deaths, replaced numbers, protection), under every built-in profile and
profiles without status, history or identifiers, the PID is exactly the full person's."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from adapters.hl7 import pid_segment
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile
from store.document import from_stored, from_stored_current
from store.engine import make_engine, migrate, read_connection

PROFILES = [
    *BUILTIN_PROFILES.values(),
    AccessProfile("utenStatus", "*", frozenset({"identifiers", "name", "birth", "death", "addresses", "history"}),
                  "fortrolig"),
    AccessProfile("historikk", "*", frozenset({"identifiers", "name", "addresses", "history", "status"}),
                  "klientadresse"),
    AccessProfile("utenNummer", "*", frozenset({"name", "birth", "gender"}), "ugradert"),
]


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    from store.feed import ingest
    from store.loading import load_population
    from store.synthetic import generate_population

    d = tmp_path_factory.mktemp("pdq-current")
    generate_population(d / "pop", 1500, 31, feed_days=20)
    engine: Engine = make_engine(f"sqlite:///{d / 'store.sqlite'}")
    migrate(engine)
    load_population(engine, d / "pop")
    ingest(engine, d / "pop" / "feed")
    with read_connection(engine) as conn:
        texts = [doc for (doc,) in conn.exec_driver_sql("SELECT doc FROM person ORDER BY id")]
    engine.dispose()
    yield texts


def test_the_population_has_history(docs: list[str]) -> None:
    full = [from_stored(json.loads(t)) for t in docs]
    assert sum(1 for p in full if len(p.addresses) > 1) > 100
    assert sum(1 for p in full if len(p.names) > 1) > 10
    assert sum(1 for p in full if p.death) > 5 and sum(1 for p in full if len(p.identifiers) > 1) > 5
    assert any(p.protection_level != "ugradert" for p in full)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_pid_of_the_current_values_is_the_pid_of_the_person(docs: list[str], profile: AccessProfile) -> None:
    for text in docs:
        full, current = from_stored(json.loads(text)), from_stored_current(text)
        assert pid_segment(apply_profile(current, profile), 3) == pid_segment(apply_profile(full, profile), 3)


def test_a_document_in_another_element_order_decodes_the_same(docs: list[str]) -> None:
    doc = json.loads(docs[0])
    reordered = json.dumps({"maritalStatus": doc.pop("maritalStatus"), **doc})
    assert pid_segment(from_stored_current(reordered)) == pid_segment(from_stored(json.loads(docs[0])))
