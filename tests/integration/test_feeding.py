"""Bulk load and change-feed ingestion on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from store import schema as s
from store.errors import FeedFormatError, FeedGap, InvalidDocument
from store.feed import ingest
from store.loading import load_population
from store.repository import PersonRepository
from store.state import get_feed_position
from tests.factories import meta, number, person_doc


def write_population(d: Path, docs: list[Any], *, snapshot: int = 100, extra_lines: list[str] = ()) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(json.dumps({"format": "pregbridge-population/1", "seed": 1,
                                                 "persons": len(docs), "snapshotSequence": snapshot}))
    lines = [json.dumps(x, ensure_ascii=False) for x in docs] + list(extra_lines)
    (d / "persons.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def write_feed(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    return path


def event(seq: int, doc: dict[str, Any], kind: str = "endringINavn") -> dict[str, Any]:
    return {"sequenceNumber": seq, "eventType": kind, "personId": doc["personId"],
            "registeredAt": "2026-11-21T08:00:00Z", "person": doc}


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def renamed(doc: dict[str, Any], family: str) -> dict[str, Any]:
    old = dict(doc["names"][-1], current=False, validTo="2026-11-21")
    return dict(doc, names=[*doc["names"][:-1], old,
                            {"given": old["given"], "middle": None, "family": family, **meta(True, "2026-11-21")}])


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> list[dict[str, Any]]:
    docs = [person_doc(f"p{i}", given=f"Given{i}", family="Hansen") for i in range(30)]
    load_population(engine, write_population(tmp_path / "pop", docs))
    return docs


def test_load_loads_persons_and_sets_the_feed_position(engine: Engine, loaded: list[dict[str, Any]]) -> None:
    assert count(engine, s.person) == 30
    assert count(engine, s.person_search) == 30
    with engine.connect() as conn:
        assert get_feed_position(conn) == 100
        found = PersonRepository(conn).find(loaded[7]["identifiers"][0]["number"])
    assert found is not None and found.person.person_key == "p7"


def test_a_bad_record_is_rejected_by_name_and_the_rest_loads(engine: Engine, tmp_path: Path) -> None:
    bad_number = person_doc("bad1")
    bad_number["identifiers"][0]["number"] = "12345678901"
    bad_status = person_doc("bad2", status="levende")
    docs = [person_doc("ok1"), bad_number, bad_status, person_doc("ok2")]
    summary = load_population(engine, write_population(tmp_path / "pop", docs, extra_lines=["{not json"]))
    assert (summary.persons, summary.rejected) == (2, 3)
    with engine.connect() as conn:
        rejects = conn.execute(select(s.reject).order_by(s.reject.c.line)).all()
    assert [r.line for r in rejects] == [2, 3, 5]
    assert "identifiers[0].number" in rejects[0].reason and "12345678901" not in rejects[0].reason
    assert "status[0].value" in rejects[1].reason
    assert "not JSON" in rejects[2].reason
    assert rejects[2].raw == "{not json"  # kept whole, so nothing is lost


def test_loading_twice_replaces_instead_of_duplicating(engine: Engine, tmp_path: Path) -> None:
    docs = [person_doc(f"p{i}") for i in range(5)]
    pop = write_population(tmp_path / "pop", docs)
    load_population(engine, pop)
    again = load_population(engine, pop)
    assert again.replaced == 5
    assert count(engine, s.person) == 5 and count(engine, s.person_identifier) == 5


def test_a_population_without_manifest_is_refused(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidDocument, match="manifest"):
        load_population(engine, tmp_path / "empty")


def test_ingest_applies_keeps_history_and_is_idempotent(engine: Engine, loaded: list[dict[str, Any]],
                                                        tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "0001.jsonl", [event(101, renamed(loaded[0], "Berg")),
                                                 event(102, person_doc("new1", given="Baby"), "personErOpprettet")])
    first = ingest(engine, feed)
    assert (first.applied, first.skipped, first.last_seq) == (2, 0, 102)
    again = ingest(engine, feed)
    assert (again.applied, again.skipped, again.conflicts, again.last_seq) == (0, 2, 0, 102)
    assert count(engine, s.person) == 31
    with engine.connect() as conn:
        p = PersonRepository(conn).get_by_key("p0")
    assert p is not None and p.name is not None and p.name.family == "Berg"
    assert [(n.family, n.meta.current) for n in p.names] == [("Hansen", False), ("Berg", True)]


def test_a_gap_refuses_the_whole_file(engine: Engine, loaded: list[dict[str, Any]], tmp_path: Path) -> None:
    feed = write_feed(tmp_path / "gap.jsonl", [event(101, renamed(loaded[0], "Berg")),
                                                event(103, renamed(loaded[1], "Dahl"))])
    with pytest.raises(FeedGap, match="expected sequence number 102, found 103"):
        ingest(engine, feed)
    with engine.connect() as conn:
        assert get_feed_position(conn) == 100
        p = PersonRepository(conn).get_by_key("p0")
    assert p is not None and p.name is not None and p.name.family == "Hansen"  # nothing half-applied


def test_a_file_not_continuing_the_position_is_a_gap(engine: Engine, loaded: list[dict[str, Any]],
                                                     tmp_path: Path) -> None:
    with pytest.raises(FeedGap):
        ingest(engine, write_feed(tmp_path / "late.jsonl", [event(150, loaded[0])]))


def test_a_line_without_sequence_number_refuses_the_file(engine: Engine, loaded: list[dict[str, Any]],
                                                         tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(event(101, loaded[0])) + "\n" + '{"eventType": "x"}\n')
    with pytest.raises(FeedFormatError, match="line 2"):
        ingest(engine, path)
    assert count(engine, s.feed_event) == 0


def test_an_invalid_document_is_rejected_and_the_feed_moves_on(engine: Engine, loaded: list[dict[str, Any]],
                                                               tmp_path: Path) -> None:
    broken = renamed(loaded[2], "Lie")
    broken["gender"] = [{"value": "x", **meta()}]
    feed = write_feed(tmp_path / "f.jsonl", [event(101, broken), event(102, renamed(loaded[3], "Moe"))])
    summary = ingest(engine, feed)
    assert (summary.applied, summary.rejected, summary.last_seq) == (1, 1, 102)
    assert "seq 101" in summary.reject_reasons[0] and "gender[0].value" in summary.reject_reasons[0]
    with engine.connect() as conn:
        outcomes = {r.seq: r.outcome for r in conn.execute(select(s.feed_event.c.seq, s.feed_event.c.outcome))}
        rejects = conn.execute(select(s.reject.c.seq, s.reject.c.origin)).all()
    assert outcomes == {101: "rejected", 102: "applied"}
    assert [(r.seq, r.origin) for r in rejects] == [(101, "ingest")]


def test_a_changed_replay_of_an_applied_event_is_a_conflict(engine: Engine, loaded: list[dict[str, Any]],
                                                            tmp_path: Path) -> None:
    ingest(engine, write_feed(tmp_path / "a.jsonl", [event(101, renamed(loaded[0], "Berg"))]))
    replay = ingest(engine, write_feed(tmp_path / "b.jsonl", [event(101, renamed(loaded[0], "Haugen"))]))
    assert (replay.conflicts, replay.applied) == (1, 0)
    with engine.connect() as conn:
        p = PersonRepository(conn).get_by_key("p0")
    assert p is not None and p.name is not None and p.name.family == "Berg"


def test_ingest_resumes_after_an_interruption(engine: Engine, loaded: list[dict[str, Any]], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import store.feed as feed_mod

    events = [event(101 + i, renamed(loaded[i], f"Navn{i}")) for i in range(6)]
    path = write_feed(tmp_path / "f.jsonl", events)
    monkeypatch.setattr(feed_mod, "BATCH", 2)
    calls = {"n": 0}
    real_apply = feed_mod._apply

    def crash_in_second_batch(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("power cut")
        real_apply(*args)

    monkeypatch.setattr(feed_mod, "_apply", crash_in_second_batch)
    with pytest.raises(RuntimeError):
        ingest(engine, path)
    with engine.connect() as conn:
        assert get_feed_position(conn) == 102  # the first batch committed, the second rolled back whole
    monkeypatch.setattr(feed_mod, "_apply", real_apply)
    resumed = ingest(engine, path)
    assert (resumed.skipped, resumed.applied, resumed.last_seq) == (2, 4, 106)
    assert count(engine, s.feed_event) == 6


def test_a_d_number_replaced_by_a_fodselsnummer_still_finds_the_person(engine: Engine, loaded: list[dict[str, Any]],
                                                                      tmp_path: Path) -> None:
    dnr = number("dnr")
    holder = person_doc("d1", status="midlertidig", identifiers=[
        {"number": dnr, "kind": "dnr", "status": "iBruk", **meta()}])
    fnr = number("fnr")
    after = dict(holder, identifiers=[
        {"number": dnr, "kind": "dnr", "status": "opphoert", **meta(False, "2000-01-01", "2026-11-21")},
        {"number": fnr, "kind": "fnr", "status": "iBruk", **meta(True, "2026-11-21")}])
    ingest(engine, write_feed(tmp_path / "f.jsonl", [event(101, holder, "personErOpprettet"),
                                                      event(102, after, "endringIIdentifikasjonsnummer")]))
    with engine.connect() as conn:
        found = PersonRepository(conn).find(dnr)
    assert found is not None and found.matched.status == "opphoert"
    assert found.current is not None and found.current.number == fnr
