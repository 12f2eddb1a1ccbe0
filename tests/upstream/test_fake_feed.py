"""The fake Persontjenesten's feed and persons through the client, without authentication."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from upstream.client import EventDocument, PersontjenestenClient
from upstream.fake import FakeOptions, serve_fake
from upstream.fake.population import Population
from upstream.spec import INFORMATION_PARTS

PARTS = ["NorwegianIdentificationNumber", "Name"]


def _persons(population: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (population / "persons.jsonl").read_text().splitlines()]


def _feed(population: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for f in sorted((population / "feed").glob("*.jsonl"))
            for line in f.read_text().splitlines()]


def test_null_day_extract_then_feed(demo_population: Path) -> None:
    persons, feed = _persons(demo_population), _feed(demo_population)
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        assert fake.extract_size == len(persons)
        events = client.events(1)
        assert [e.sequence_number for e in events] == list(range(1, len(persons) + len(feed) + 1))
        assert [e.person_id for e in events[:len(persons)]] == [p["personId"] for p in persons]
        assert {e.event_type for e in events[:len(persons)]} == {"PersonPopulated"}
        assert [e.person_id for e in events[len(persons):]] == [e["personId"] for e in feed]
        assert client.latest_event() == events[-1]
        assert client.events(len(persons) + 2)[0] == events[len(persons) + 1]
        assert client.events(events[-1].sequence_number + 1) == []


def test_feed_only_keeps_the_files_numbers(demo_population: Path) -> None:
    feed = _feed(demo_population)
    with serve_fake(demo_population, FakeOptions(extract=False)) as fake, \
            PersontjenestenClient(fake.client_settings()) as client:
        events = client.events(1)
        assert [e.sequence_number for e in events] == [e["sequenceNumber"] for e in feed]
        assert events[0].event_type == "ChangeInResidentialAddress" or events[0].event_type.startswith(("Person",
                                                                                                        "Change"))


def test_event_pages_hold_at_most_1000(tmp_path: Path) -> None:
    from store.synthetic import generate_population

    generate_population(tmp_path, 1100, 3, feed_days=1)
    with serve_fake(tmp_path) as fake, PersontjenestenClient(fake.client_settings()) as client:
        first = client.events(1)
        assert len(first) == 1000
        rest = client.events(1001)
        assert rest[0].sequence_number == 1001
        assert rest[-1].sequence_number == fake.latest_sequence


def test_persons_as_of_the_released_position(demo_population: Path) -> None:
    persons, feed = _persons(demo_population), _feed(demo_population)
    moved = next(e for e in feed if e["eventType"] == "endringIBostedsadresse")
    extract = len(persons)
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        served = client.person_by_id(moved["personId"], ["ResidentialAddress"], include_history=True)
        assert served is not None and served["sequenceNumber"] >= extract + moved["sequenceNumber"]
        fake.release(extract)
        assert client.latest_event() == EventDocument(extract, persons[-1]["personId"], "PersonPopulated")
        assert client.events(extract + 1) == []
        before = client.person_by_id(moved["personId"], ["ResidentialAddress"], include_history=True)
        assert before is not None and before["sequenceNumber"] <= extract
        assert before["residentialAddress"] != served["residentialAddress"]
        born = next(e for e in feed if e["eventType"] == "personErOpprettet")
        assert client.person_by_id(born["personId"], PARTS) is None  # not born yet at this position
        fake.release(0)
        assert client.latest_event() is None


def test_bulk_by_id_answers_the_persons_found(demo_population: Path) -> None:
    persons = _persons(demo_population)
    ids = [p["personId"] for p in persons[:99]] + ["p-unknown"]
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        got = client.persons_by_id(ids, PARTS)
        assert [p["id"] for p in got] == ids[:99]
        assert all(set(p) <= {"id", "sequenceNumber", "norwegianIdentificationNumber", "name"} for p in got)
        with pytest.raises(ValueError):
            client.persons_by_id([f"p{i}" for i in range(101)], PARTS)


def test_by_number_finds_current_and_ceased_numbers(demo_population: Path) -> None:
    persons, feed = _persons(demo_population), _feed(demo_population)
    changed = next(e for e in feed if e["eventType"] == "endringIIdentifikasjonsnummer")["person"]
    ceased = next(i["number"] for i in changed["identifiers"] if i["status"] == "opphoert")
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        found = client.person_by_nin(ceased, PARTS, include_history=True)
        assert found is not None and found["id"] == changed["personId"]
        numbers = [persons[0]["identifiers"][0]["number"], persons[1]["identifiers"][0]["number"]]
        assert [p["id"] for p in client.persons_by_nin(numbers, PARTS)] == [persons[0]["personId"],
                                                                            persons[1]["personId"]]
        assert client.person_by_nin("01010112345", PARTS) is None


def test_history_only_when_asked(demo_population: Path) -> None:
    persons = _persons(demo_population)
    person = next(p for p in persons if any(not s["current"] for s in p["status"]))
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        now = client.person_by_id(person["personId"], ["Status"])
        full = client.person_by_id(person["personId"], ["Status"], include_history=True)
        assert now is not None and full is not None
        assert [s["isValid"] for s in now["status"]] == [True]
        assert len(full["status"]) == len(person["status"])


def test_search_follows_the_contract_rules(demo_population: Path) -> None:
    from upstream.errors import UpstreamBadRequest

    person = _persons(demo_population)[0]
    name, birth = person["names"][0], person["birth"][0]
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        hits = client.search_persons({"FamilyName": name["family"], "GivenName": name["given"][:2],
                                      "BirthDate": birth["date"]}, PARTS)
        assert person["personId"] in [h["id"] for h in hits]
        with pytest.raises(UpstreamBadRequest) as caught:
            client.search_persons({"FamilyName": name["family"]}, PARTS)  # no birth date, kommune or street
        assert caught.value.status == 400 and caught.value.title == "Bad Request"


def test_population_index_finds_every_person(demo_population: Path) -> None:
    persons = _persons(demo_population)
    population = Population(demo_population)
    try:
        for i, p in enumerate(persons):
            version = population.version(p["personId"], population.extract_size)
            assert version is not None and version.sequence_number == i + 1
            assert version.document == p
        assert population.version("p-not-there", population.latest_sequence) is None
    finally:
        population.close()


def test_unknown_information_part_is_refused_before_sending(demo_population: Path) -> None:
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        with pytest.raises(ValueError):
            client.person_by_id("p000000001", ["Nickname"])
        assert set(PARTS) <= set(INFORMATION_PARTS)


def test_an_internal_error_is_a_problem_500_not_a_traceback(demo_population: Path, monkeypatch, caplog) -> None:
    import httpx

    from upstream.errors import UpstreamUnavailable

    with serve_fake(demo_population) as fake:
        def broken(*args, **kwargs):
            raise KeyError("p000000001")  # a value that must not reach the log

        monkeypatch.setattr(fake.population, "version", broken)
        settings = fake.client_settings(retries=1, backoff_initial=0.001)
        with PersontjenestenClient(settings) as client, pytest.raises(UpstreamUnavailable) as caught:
            client.person_by_id("p000000001", PARTS)
        assert caught.value.status == 500
        assert "internal error in person_by_id (KeyError)" in caplog.text and "p000000001" not in caplog.text
        refused = httpx.post(fake.base_url + "/_fake/release", params={"upTo": "all"})
        assert refused.status_code == 400 and refused.json()["title"] == "Bad Request"


def test_population_index_survives_hash_collisions(demo_population: Path, monkeypatch) -> None:
    import upstream.fake.population as module

    monkeypatch.setattr(module, "_hash40", lambda person_id: len(person_id) % 2)  # nearly everyone collides
    persons = _persons(demo_population)
    population = Population(demo_population)
    try:
        for p in persons[::7]:
            version = population.version(p["personId"], population.extract_size)
            assert version is not None and version.document["personId"] == p["personId"]
        assert population.version("p-not-there", population.latest_sequence) is None
    finally:
        population.close()


def test_population_lines_without_the_id_first(tmp_path: Path, demo_population: Path) -> None:
    import shutil

    shutil.copytree(demo_population, tmp_path / "pop")
    path = tmp_path / "pop" / "persons.jsonl"
    persons = _persons(demo_population)
    path.write_text("".join(json.dumps(dict(reversed(list(p.items())))) + "\n" for p in persons))  # personId last
    population = Population(tmp_path / "pop")
    try:
        assert [e.person_id for e in population.events(1, 10, 10)] == [p["personId"] for p in persons[:10]]
        version = population.version(persons[5]["personId"], 10**9)
        assert version is not None and version.document == persons[5]
    finally:
        population.close()


def test_event_types_filter(demo_population: Path) -> None:
    from upstream.errors import UpstreamBadRequest

    persons, feed = _persons(demo_population), _feed(demo_population)
    moves = [len(persons) + e["sequenceNumber"] for e in feed if e["eventType"] == "endringIBostedsadresse"]
    with serve_fake(demo_population) as fake, PersontjenestenClient(fake.client_settings()) as client:
        found = client.events(1, event_types=["ChangeInResidentialAddress"])
        assert moves and [e.sequence_number for e in found] == moves
        assert {e.event_type for e in found} == {"ChangeInResidentialAddress"}
        both = client.events(1, event_types=["ChangeInResidentialAddress", "PersonPopulated"])
        assert len(both) == len(persons) + len(moves)
        with pytest.raises(UpstreamBadRequest):
            client.events(1, event_types=["PersonIsHappy"])
