"""An upstream that misbehaves in ways the fake Persontjenesten does not (a stand-in client, a real store): a
bulk answer with a person nobody asked for, an answer under another id, sequence numbers that go back, an
answer that is not a person. Nothing is applied from a page the sync cannot trust; patient data never
reaches a log or a reject reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest
from sqlalchemy import Engine, select

from store import schema as s
from store.errors import PregbridgeError
from tests.factories import person_doc
from tests.integration.sync_support import ALL_PARTS, position, snapshot
from upstream.mapping import person_json
from upstream.sync import Syncer, SyncLock, SyncOptions


class Ev(NamedTuple):
    sequence_number: int
    person_id: str
    event_type: str


class StandIn:
    """A client whose answers the test sets."""

    def __init__(self, events: list[Ev], persons: dict[str, dict[str, Any]]) -> None:
        self.feed = events
        self.persons = persons
        self.extra: list[dict[str, Any]] = []
        self.renamed: dict[str, dict[str, Any]] = {}

    def latest_event(self) -> Ev | None:
        return self.feed[-1] if self.feed else None

    def events(self, sequence_number: int) -> list[Ev]:
        return [e for e in self.feed if e.sequence_number >= sequence_number][:1000]

    def persons_by_id(self, ids: Sequence[str], parts: Sequence[str],
                      include_history: bool = False) -> list[dict[str, Any]]:
        return [self.persons[i] for i in ids if i in self.persons] + self.extra

    def person_by_id(self, person_id: str, parts: Sequence[str],
                     include_history: bool = False) -> dict[str, Any] | None:
        return self.renamed.get(person_id)


def _sync(engine: Engine, upstream: StandIn) -> Any:
    with SyncLock(engine):
        syncer = Syncer(engine, upstream, SyncOptions(ALL_PARTS))
        try:
            return syncer.run(once=True)
        finally:
            syncer.close()


def _persons(*keys: str) -> dict[str, dict[str, Any]]:
    return {k: person_json(person_doc(k, given="Solveig", family="Fjeldstad")) for k in keys}


def test_a_person_nobody_asked_for_is_left_out(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    upstream = StandIn([Ev(1, "a", "PersonIsCreated"), Ev(2, "b", "PersonIsCreated")], _persons("a", "b"))
    upstream.extra = [_persons("intruder")["intruder"]]
    with caplog.at_level(logging.INFO):
        summary = _sync(engine, upstream)
    assert summary.applied == 2 and sorted(snapshot(engine)) == ["a", "b"]
    assert "not asked for" in caplog.text and "intruder" not in caplog.text and "Solveig" not in caplog.text


def test_an_answer_under_another_id_is_rejected(engine: Engine) -> None:
    upstream = StandIn([Ev(1, "a", "PersonIsCreated"), Ev(2, "c", "PersonIsCreated")], _persons("a"))
    upstream.renamed = {"c": _persons("someone-else")["someone-else"]}  # asked for c alone, got another person
    summary = _sync(engine, upstream)
    assert summary.applied == 1 and summary.rejected == 1 and position(engine) == 2
    with engine.connect() as conn:
        reject = conn.execute(select(s.reject)).one()
    assert reject.record_key == "c" and "differs" in reject.reason and "Solveig" not in reject.reason


def test_sequence_numbers_that_go_back_apply_nothing(engine: Engine) -> None:
    upstream = StandIn([Ev(1, "a", "PersonIsCreated"), Ev(3, "b", "PersonIsCreated"), Ev(2, "a", "X")],
                       _persons("a", "b"))
    with pytest.raises(PregbridgeError, match="do not increase"):
        _sync(engine, upstream)
    assert position(engine) == 0 and snapshot(engine) == {}


@pytest.mark.parametrize(("answer", "field"), [({"id": "a", "name": "Solveig"}, "field name:"),
                                             ({"id": "a", "birth": [7]}, "field birth[0]"),
                                             ({"id": "a"}, "field identifiers")])
def test_an_answer_that_is_not_a_person_is_rejected_naming_the_field(engine: Engine, answer: dict[str, Any],
                                                                     field: str) -> None:
    upstream = StandIn([Ev(1, "a", "PersonIsCreated")], {"a": answer})
    summary = _sync(engine, upstream)
    assert position(engine) == 1 and snapshot(engine) == {} and summary.rejected == 1
    with engine.connect() as conn:
        reason = conn.execute(select(s.reject.c.reason)).scalar_one()
    assert field in reason and "Solveig" not in reason
