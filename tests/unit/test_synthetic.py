"""The synthetic population generator (store/synthetic): determinism, document rules, proportions, feed
consistency and the HPR/AR/FLR registers of the same people."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import geo
from store.document import from_document, to_document
from store.identity import IdKind, Synthetic, parse
from store.synthetic import generate_population
from store.synthetic.places import _POP, Places
from store.synthetic.registers import org_number_valid

SNAPSHOT = date(2026, 11, 20)
META = ("current", "validFrom", "validTo", "registeredAt", "source")
LISTS = ("identifiers", "names", "birth", "gender", "status", "death", "addresses", "protection",
         "maritalStatus", "citizenship", "relations")
CLOSED = {
    ("identifiers", "kind"): {"fnr", "dnr", "fh", "hnr"},
    ("identifiers", "status"): {"iBruk", "opphoert"},
    ("gender", "value"): {"kvinne", "mann"},
    ("status", "value"): {"bosatt", "utflyttet", "forsvunnet", "doed", "opphoert", "foedselsregistrert",
                          "midlertidig", "inaktiv", "ikkeBosatt", "aktiv"},
    ("addresses", "type"): {"bosted", "opphold", "post", "deltBosted", "postUtland"},
    ("addresses", "form"): {"vegadresse", "matrikkeladresse", "ukjentBosted", "utenlandsk", "postboks",
                            "fritekst"},
    ("addresses", "protection"): {"ugradert", "klientadresse", "fortrolig", "strengtFortrolig"},
    ("protection", "level"): {"ugradert", "klientadresse", "fortrolig", "strengtFortrolig"},
    ("maritalStatus", "value"): {"uoppgitt", "ugift", "gift", "enkeEllerEnkemann", "skilt", "separert",
                                 "registrertPartner", "separertPartner", "skiltPartner",
                                 "gjenlevendePartner"},
    ("relations", "relatedRole"): {"mor", "far", "medmor", "barn", "soesken", "ektefelleEllerPartner",
                                   "doedfoedtBarn"},
    ("relations", "myRole"): {"mor", "far", "medmor", "barn", "soesken", "ektefelleEllerPartner",
                              "doedfoedtBarn"},
}
DIVIDED = {"0301", "4601", "5001", "1103"}
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
Doc = dict[str, Any]


class Population:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        self.persons = self._read("persons")
        self.by_id = {p["personId"]: p for p in self.persons}
        self.by_number = {i["number"]: p for p in self.persons for i in p["identifiers"]}
        self.feed = [[json.loads(x) for x in (path / f).read_text(encoding="utf-8").splitlines()]
                     for f in self.manifest["files"]["feed"]]
        self.hpr = self._read("hpr")
        self.ar = self._read("ar")
        self.flr = self._read("flr")

    def _read(self, name: str) -> list[Doc]:
        return [json.loads(x) for x in (self.path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


def current(items: list[Doc]) -> Doc | None:
    return next((i for i in items if i["current"]), None)


def value(doc: Doc, key: str) -> Any:
    cur = current(doc[key])
    return None if cur is None else cur.get("value", cur.get("level"))


def current_id(doc: Doc) -> Doc:
    ids: list[Doc] = [i for i in doc["identifiers"] if i["current"] and i["status"] == "iBruk"]
    assert len(ids) == 1, doc["personId"]
    return ids[0]


def bosted(doc: Doc) -> Doc | None:
    return next((a for a in doc["addresses"] if a["current"] and a["type"] == "bosted"), None)


@pytest.fixture(scope="module")
def pop(tmp_path_factory: pytest.TempPathFactory) -> Population:
    path = tmp_path_factory.mktemp("pop")
    generate_population(path, 2_000, 20261120)
    return Population(path)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Population:
    """Large enough for the per-mille categories."""
    path = tmp_path_factory.mktemp("big")
    generate_population(path, 30_000, 7, feed_days=2)
    return Population(path)


def _all_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_population(a, 1_500, 99, feed_days=3)
    generate_population(b, 1_500, 99, feed_days=3)
    generate_population(c, 1_500, 100, feed_days=3)
    assert _all_bytes(a) == _all_bytes(b)
    assert _all_bytes(a)["persons.jsonl"] != _all_bytes(c)["persons.jsonl"]


def test_progress_reports_persons_written(tmp_path: Path) -> None:
    seen: list[int] = []
    generate_population(tmp_path, 4_500, 3, feed_days=0, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 4_500 and len(seen) >= 2
    assert not list((tmp_path / "feed").iterdir())


def test_persons_do_not_depend_on_feed_days(tmp_path: Path) -> None:
    generate_population(tmp_path / "a", 800, 5, feed_days=1)
    generate_population(tmp_path / "b", 800, 5, feed_days=4)
    assert (tmp_path / "a" / "persons.jsonl").read_bytes() == (tmp_path / "b" / "persons.jsonl").read_bytes()


def test_manifest(pop: Population) -> None:
    m = pop.manifest
    assert m["format"] == "pregbridge-population/1"
    assert (m["seed"], m["persons"], m["snapshotSequence"], m["snapshotDate"], m["feedDays"]) == (
        20261120, 2_000, 0, "2026-11-20", 7)
    assert m["files"]["feed"] == [f"feed/{d:04d}.jsonl" for d in range(1, 8)]
    assert m["feedEvents"] == sum(len(day) for day in pop.feed)
    assert len(pop.persons) == 2_000
    raw = (pop.path / "persons.jsonl").read_bytes()
    assert raw.endswith(b"\n") and b"\n\n" not in raw and b"\r" not in raw


def test_person_ids_are_unique_and_numbered(pop: Population) -> None:
    assert [p["personId"] for p in pop.persons] == [f"p{i:09d}" for i in range(1, 2_001)]


def test_every_document_keeps_the_store_rules_and_round_trips(pop: Population) -> None:
    for doc in pop.persons + [e["person"] for day in pop.feed for e in day]:
        assert to_document(from_document(doc)) == doc


def test_meta_closed_sets_and_one_current_item(pop: Population) -> None:
    for doc in pop.persons:
        assert list(doc) == ["personId", *LISTS]
        for key in LISTS:
            for it in doc[key]:
                assert all(k in it for k in META), (doc["personId"], key)
                assert isinstance(it["current"], bool)
                for k in ("validFrom", "validTo"):
                    assert it[k] is None or DATE.match(it[k])
                assert it["registeredAt"] is None or DATETIME.match(it["registeredAt"])
                assert it["current"] or it["validTo"] is not None, (doc["personId"], key)
                for (lst, field), allowed in CLOSED.items():
                    if lst == key:
                        assert it[field] in allowed, (doc["personId"], key, field)
            if key not in ("identifiers", "addresses", "citizenship", "relations"):
                assert sum(it["current"] for it in doc[key]) <= 1, (doc["personId"], key)
        types = [a["type"] for a in doc["addresses"] if a["current"]]
        assert len(types) == len(set(types))
        for a in doc["addresses"]:
            assert a["kommune"] is None or geo.kommune(a["kommune"]) is not None
            assert a["postnummer"] is None or re.fullmatch(r"\d{4}", a["postnummer"])
            if a["bydel"] is not None:
                assert a["bydel"][:4] == a["kommune"] and geo.bydel(a["bydel"]) is not None
            elif a["form"] in ("vegadresse", "matrikkeladresse"):
                assert a["kommune"] not in DIVIDED


def test_identifiers_are_valid_synthetic_and_unique(pop: Population) -> None:
    numbers = [i["number"] for p in pop.persons for i in p["identifiers"]]
    numbers += [e["person"]["identifiers"][0]["number"] for day in pop.feed for e in day
                if e["eventType"] in ("personErOpprettet", "endringIIdentifikasjonsnummer")]
    assert len(numbers) == len(set(numbers))
    for p in pop.persons:
        for i in p["identifiers"]:
            parsed = parse(i["number"])
            assert parsed.kind.value == i["kind"]
            if parsed.kind is IdKind.FH:
                assert i["number"][0] in "89"
            else:
                assert parsed.synthetic is Synthetic.SKATTEETATEN
                assert parsed.birth_date is None or parsed.birth_date.isoformat() == p["birth"][0]["date"]


def test_proportions(pop: Population, big: Population) -> None:
    for population, tolerance in ((pop, 1.0), (big, 0.35)):
        n = len(population.persons)
        status = Counter(value(p, "status") for p in population.persons)
        kinds = Counter(current_id(p)["kind"] for p in population.persons)

        def near(count: int, share: float, t: float = tolerance, n: int = n) -> bool:
            return abs(count / n - share) <= share * t + 2 / n

        assert near(status["bosatt"], 0.94, 0.03)
        assert near(kinds["dnr"], 0.04, 0.3)
        assert near(status["utflyttet"], 0.01)
        assert near(status["doed"], 0.008)
        assert near(sum(any(a["type"] == "bosted" and not a["current"] for a in p["addresses"])
                        for p in population.persons), 0.15, 0.3)
        assert near(sum(len(p["names"]) > 1 for p in population.persons), 0.05, 0.4)
    n = len(big.persons)
    levels = Counter(value(p, "protection") for p in big.persons)
    for level, share in (("klientadresse", 0.001), ("fortrolig", 0.002), ("strengtFortrolig", 0.001)):
        assert share / 3 < levels[level] / n < share * 3, level
    assert 0.0015 < sum(len(p["identifiers"]) == 2 for p in big.persons) / n < 0.006
    assert 0 < Counter(current_id(p)["kind"] for p in big.persons)["fh"] / n < 0.002
    forms = Counter(b["form"] for p in big.persons if (b := bosted(p)))
    assert forms["vegadresse"] > 0.9 * sum(forms.values())
    assert forms["matrikkeladresse"] and forms["ukjentBosted"]


def test_status_rules(big: Population) -> None:
    seen: Counter[str] = Counter()
    for p in big.persons:
        ident, status = current_id(p), value(p, "status")
        addresses = [a for a in p["addresses"] if a["current"]]
        if ident["kind"] == "dnr":
            seen["dnr"] += 1
            assert status in ("midlertidig", "inaktiv")
            assert not any(a["type"] == "bosted" for a in p["addresses"])
            assert [a["type"] for a in addresses] in (["opphold"], ["post"])
            assert current(p["citizenship"])["country"] != "NOR"  # type: ignore[index]
        if value(p, "protection") == "strengtFortrolig":
            seen["strengt"] += 1
            assert p["addresses"] and all(a["type"] == "post" for a in p["addresses"])
            assert all(a["protection"] == "strengtFortrolig" for a in addresses)
        elif value(p, "protection") != "ugradert":
            assert bosted(p) is not None and bosted(p)["protection"] == value(p, "protection")  # type: ignore[index]
        if status == "doed":
            seen["doed"] += 1
            assert current(p["death"]) is not None and bosted(p) is None
            assert any(a["type"] == "bosted" for a in p["addresses"])
        if status == "utflyttet":
            assert bosted(p) is None and [a["type"] for a in addresses] == ["postUtland"]
            assert addresses[0]["country"] != "NOR" and addresses[0]["lines"]
        if len(p["identifiers"]) == 2:
            seen["replaced"] += 1
            fnr, dnr = p["identifiers"]
            assert (fnr["kind"], fnr["status"], fnr["current"]) == ("fnr", "iBruk", True)
            assert (dnr["kind"], dnr["status"], dnr["current"]) == ("dnr", "opphoert", False)
            assert dnr["validTo"] == fnr["validFrom"] and status == "bosatt"
        if ident["kind"] == "fh":
            seen["fh"] += 1
            assert status == "aktiv" and addresses and ident["source"] == "NHN"
            assert all(i["kind"] == "fh" for i in p["identifiers"])
        if status == "bosatt" and value(p, "protection") != "strengtFortrolig":
            assert bosted(p) is not None
    assert all(seen[k] for k in ("dnr", "strengt", "doed", "replaced", "fh")), seen


def _ordinal(doc: Doc) -> int:
    return date.fromisoformat(doc["birth"][0]["date"]).toordinal()


def test_families_and_spouses(pop: Population) -> None:
    children = 0
    for p in pop.persons:
        assert 1900 <= p["birth"][0]["year"] <= 2026 and p["birth"][0]["date"] <= "2026-11-20"
        for r in p["relations"]:
            other = pop.by_number[r["relatedNumber"]]
            back = [x for x in other["relations"] if x["relatedNumber"] == current_id(p)["number"]]
            assert [(x["relatedRole"], x["myRole"]) for x in back] == [(r["myRole"], r["relatedRole"])]
            if r["myRole"] == "barn":
                children += 1
                assert 18 * 365 <= _ordinal(p) - _ordinal(other) <= 45 * 366
                mine, theirs = bosted(p), bosted(other)
                if mine and theirs:
                    keys = ("street", "houseNumber", "houseLetter", "unit", "postnummer", "kommune", "bydel")
                    assert [mine[k] for k in keys] == [theirs[k] for k in keys]
        marital = current(p["maritalStatus"])
        if marital and marital["value"] == "gift" and marital["spouse"]:
            spouse = pop.by_number[marital["spouse"]]
            assert current(spouse["maritalStatus"])["spouse"] == current_id(p)["number"]  # type: ignore[index]
    assert children > 200


def test_feed_sequence_and_consistency(pop: Population) -> None:
    events = [e for day in pop.feed for e in day]
    assert [e["sequenceNumber"] for e in events] == list(range(1, len(events) + 1))
    assert all(len(day) >= 4 for day in pop.feed)
    latest = dict(pop.by_id)
    for d, day in enumerate(pop.feed, start=1):
        stamps = [e["registeredAt"] for e in day]
        assert stamps == sorted(stamps) and all(s.startswith(date.fromordinal(SNAPSHOT.toordinal() + d)
                                                              .isoformat()) for s in stamps)
        for e in day:
            doc, before = e["person"], latest.get(e["personId"])
            assert doc["personId"] == e["personId"] and DATETIME.match(e["registeredAt"])
            kind = e["eventType"]
            if kind == "personErOpprettet":
                assert before is None and value(doc, "status") == "bosatt"
                assert {r["relatedRole"] for r in doc["relations"]} == {"mor", "far"}
            else:
                assert before is not None
                if kind != "endringIAdressebeskyttelse":  # strengt fortrolig drops address history
                    for key in LISTS:
                        assert len(doc[key]) >= len(before[key]), (kind, key)
            if kind == "endringIBostedsadresse":
                old, new = bosted(before), bosted(doc)  # type: ignore[arg-type]
                assert new is not None and new["validFrom"] == new["movedAt"]
                assert old is None or {k: v for k, v in old.items() if k not in META} != {
                    k: v for k, v in new.items() if k not in META}
            elif kind == "personErDoed":
                assert value(doc, "status") == "doed" and current(doc["death"]) and bosted(doc) is None
            elif kind == "personErUtflyttet":
                assert value(doc, "status") == "utflyttet" and bosted(doc) is None
            elif kind == "endringINavn":
                assert current(doc["names"]) != current(before["names"])  # type: ignore[index]
            elif kind == "endringISivilstand":
                assert value(doc, "maritalStatus") in ("gift", "enkeEllerEnkemann")
            elif kind == "endringIAdressebeskyttelse":
                assert value(doc, "protection") != value(before, "protection")  # type: ignore[arg-type]
            elif kind == "endringIIdentifikasjonsnummer":
                assert current_id(doc)["kind"] == "fnr" and value(doc, "status") == "bosatt"
                assert any(i["kind"] == "dnr" and i["status"] == "opphoert" for i in doc["identifiers"])
            elif kind == "endringIFamilierelasjon":
                assert len(doc["relations"]) == len(before["relations"]) + 1  # type: ignore[index]
            latest[e["personId"]] = doc
    assert {e["eventType"] for e in events} == {
        "endringIBostedsadresse", "personErDoed", "personErOpprettet", "endringIFamilierelasjon",
        "endringINavn", "endringISivilstand", "personErUtflyttet", "endringIAdressebeskyttelse",
        "endringIIdentifikasjonsnummer"}


def test_flr_lists_hold_every_resident_once_in_their_kommune(pop: Population) -> None:
    listed: Counter[str] = Counter()
    kommune_of: dict[str, str] = {}
    for c in pop.flr:
        for patient in c["patients"]:
            listed[patient["personNumber"]] += 1
            kommune_of[patient["personNumber"]] = c["kommune"]
            assert c["validFrom"] <= patient["validFrom"] <= "2026-11-20"
        assert len(c["patients"]) <= c["maxPatients"]
    assert set(listed.values()) == {1}
    residents = [p for p in pop.persons if value(p, "status") == "bosatt"]
    assert {current_id(p)["number"] for p in residents} == set(listed)
    for p in residents:
        b = bosted(p)
        if b is not None:
            assert kommune_of[current_id(p)["number"]] == b["kommune"]


def test_gps_are_in_hpr_and_ar_under_an_office_in_their_contract_kommune(pop: Population) -> None:
    hpr = {r["hprNumber"]: r for r in pop.hpr}
    ar = {r["herId"]: r for r in pop.ar}
    assert len(hpr) == len(pop.hpr) and len(ar) == len(pop.ar)
    assert all(1_000_000 <= h <= 9_999_999 for h in hpr) and all(10_000 <= h <= 99_999_999 for h in ar)
    orgs = [r for r in pop.ar if r["type"] == "Organization"]
    assert len({o["organizationNumber"] for o in orgs}) == len(orgs)
    assert all(org_number_valid(o["organizationNumber"]) for o in orgs)
    assert {o["municipality"]["value"] for o in orgs} == {c["kommune"] for c in pop.flr}
    for c in pop.flr:
        gp = hpr[c["gpHprNumber"]]
        person = pop.by_id[c["gpPersonId"]]
        assert gp["personId"] == c["gpPersonId"] and gp["nin"] == current_id(person)["number"]
        assert value(person, "status") == "bosatt"
        assert 30 <= (SNAPSHOT.toordinal() - _ordinal(person)) / 365.25 < 67
        assert any(a["category"]["value"] == "LE" for a in gp["approvals"])
        party, office = ar[c["gpHerId"]], ar[c["officeHerId"]]
        assert (party["type"], party["hprNumber"], party["parentHerId"]) == ("Person", gp["hprNumber"],
                                                                             office["herId"])
        assert office["type"] == "Organization" and office["municipality"]["value"] == c["kommune"]
        assert c["officeOrganizationNumber"] == office["organizationNumber"]
    for r in pop.ar:
        if r["type"] != "Organization":
            assert ar[r["parentHerId"]]["type"] == "Organization"
    for r in pop.hpr:
        assert pop.by_id[r["personId"]]["names"][-1]["given"] == r["givenName"]
    assert len(pop.hpr) > len({c["gpHprNumber"] for c in pop.flr})  # nurses and others too


def test_register_records_load(pop: Population) -> None:
    """The store's own loader (store/registers.py) takes every record."""
    registers = pytest.importorskip("store.registers")
    for name, records in (("hpr", pop.hpr), ("ar", pop.ar), ("flr", pop.flr)):
        for rec in records:
            assert registers.register_rows(name, rec)


def test_org_number_check_digit() -> None:
    assert org_number_valid(974760673) and org_number_valid("931796003")
    assert not org_number_valid(974760674) and not org_number_valid("12345678")


def test_places() -> None:
    assert all(geo.kommune(k) is not None for k in _POP)
    places = Places()
    assert places.poststed("1515") == "HERØY" and places.poststed("0301") == "OSLO"
    assert all(re.fullmatch(r"\d{4}", places.postnummer(k.nummer)) for k in geo.kommuner())


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(persons=st.integers(1, 80), seed=st.integers(0, 2**32), days=st.integers(0, 2))
def test_any_small_population_is_complete_and_valid(tmp_path: Path, persons: int, seed: int,
                                                    days: int) -> None:
    out = tmp_path / f"{persons}-{seed}-{days}"
    manifest = generate_population(out, persons, seed, feed_days=days)
    lines = (out / "persons.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == manifest.persons == persons
    for line in lines:
        from_document(json.loads(line))
    assert len(manifest.feed_files) == days
