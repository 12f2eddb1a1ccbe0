"""upstream.mapping: Persontjenesten Person ⇄ person documents.

The round trip runs over a whole synthetic population (every element, history, D-nummer, felles
hjelpenummer, protected and foreign addresses) plus hand-made shared residences and present addresses:
``from_document(store_document(person_json(doc)))`` must be the person ``from_document(doc)`` is. Unknown
enum values are kept as the module's table says and counted by type; structural faults reject the person
naming the field, never the value.
"""

from __future__ import annotations

import copy
import json
import logging
from collections import Counter
from typing import Any

import pytest

from store.document import from_document, to_document
from store.errors import InvalidDocument
from store.synthetic import generate_population
from tests.factories import meta, number, person_doc
from upstream.mapping import person_json, store_document


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("pop")
    generate_population(out, 600, 35, feed_days=3)  # a seed whose 600 persons include an FH holder (~0.05 %)
    docs = [json.loads(line) for line in (out / "persons.jsonl").read_text(encoding="utf-8").splitlines()]
    docs += [json.loads(line)["person"] for f in sorted((out / "feed").glob("*.jsonl"))
             for line in f.read_text(encoding="utf-8").splitlines()]
    return docs


def _address(type_: str, form: str = "vegadresse", **fields: Any) -> dict[str, Any]:
    base = {"type": type_, "form": form, "street": "Storgata", "houseNumber": 3, "houseLetter": "A", "unit": None,
            "co": None, "gardsnummer": None, "bruksnummer": None, "festenummer": None, "lines": [], "country": None,
            "postnummer": "0150", "poststed": "OSLO", "kommune": "0301", "bydel": "030101",
            "protection": "ugradert", "movedAt": None, **meta()}
    base.update(fields)
    return base


def special_documents() -> list[dict[str, Any]]:
    """Persons the generator does not make: shared residence with a contract, present addresses with a
    reason, abroad and unknown, every postal form, a cadastral residence."""
    child = person_doc("shared-child", born="2015-03-02")
    child["addresses"].append(_address("deltBosted", street="Parkveien", contractFrom="2021-01-01",
                                       contractTo="2027-06-30"))
    child["addresses"].append(_address("deltBosted", street="Gamleveien", contractFrom="2019-01-01",
                                       contractTo=None, **meta(current=False, valid_to="2020-12-31")))
    dnr = person_doc("present-dnr", identifiers=[{"number": number("dnr"), "kind": "dnr", "status": "iBruk",
                                                  **meta()}], status="midlertidig")
    dnr["addresses"] = [_address("opphold", stayElsewhere="pendler", movedAt="2024-02-01"),
                        _address("post", "postboks", street=None, houseNumber=None, houseLetter=None,
                                 lines=["Postboks 1234 Sentrum"], co="Firma AS", bydel=None, kommune=None)]
    abroad = person_doc("present-abroad")
    abroad["addresses"] = [_address("opphold", "utenlandsk", street=None, houseNumber=None, houseLetter=None,
                                    lines=["12 Rue de la Paix", "75002 Paris"], country="FRA", postnummer=None,
                                    poststed=None, kommune=None, bydel=None, stayElsewhere="utenriks"),
                           _address("postUtland", "utenlandsk", street=None, houseNumber=None, houseLetter=None,
                                    lines=["Box 7", "Stockholm"], country="SWE", postnummer=None, poststed=None,
                                    kommune=None, bydel=None),
                           _address("opphold", "ukjentBosted", street=None, houseNumber=None, houseLetter=None,
                                    postnummer=None, poststed=None, kommune=None, bydel=None,
                                    **meta(current=False, valid_to="2019-01-01"))]
    cadastral = person_doc("cadastral")
    cadastral["addresses"] = [_address("bosted", "matrikkeladresse", street=None, houseNumber=None, houseLetter=None,
                                       gardsnummer=12, bruksnummer=7, festenummer=2, movedAt="2001-01-01"),
                              _address("post", "fritekst", street=None, houseNumber=None, houseLetter=None,
                                       lines=["Hos Hansen", "Bakken 4"], bydel=None, kommune=None),
                              _address("post", street="Postveien", houseNumber=9, houseLetter=None, unit="H0201",
                                       co="c/o Berg", bydel=None, kommune=None, **meta(current=False))]
    return [child, dnr, abroad, cadastral]


def contract_view(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as Persontjenesten can carry it: a postal address has no kommune or bydel in the contract
    (ContactAddress) — the one loss, documented in docs/upstream.md."""
    out = copy.deepcopy(doc)
    for a in out["addresses"]:
        if a["type"] == "post":
            a["kommune"] = a["bydel"] = None
    return out


def _roundtrip(doc: dict[str, Any]) -> dict[str, Any]:
    unknown: Counter[str] = Counter()
    out = to_document(from_document(store_document(person_json(doc), unknown)))
    assert not unknown
    return out


def test_population_round_trips_person_by_person(population: list[dict[str, Any]]) -> None:
    kinds: Counter[str] = Counter()
    for doc in population:
        assert _roundtrip(doc) == to_document(from_document(contract_view(doc))), doc["personId"]
        kinds.update(i["kind"] for i in doc["identifiers"])
        kinds.update(a["type"] for a in doc["addresses"])
        kinds.update(a["protection"] for a in doc["addresses"])
        kinds.update(p["level"] for p in doc["protection"])
    # the population exercised what it should
    for kind in ("fnr", "dnr", "fh", "bosted", "opphold", "post", "postUtland", "strengtFortrolig"):
        assert kinds[kind] > 0, kind


@pytest.mark.parametrize("doc", special_documents(), ids=lambda d: d["personId"])
def test_shared_residence_present_and_postal_forms_round_trip(doc: dict[str, Any]) -> None:
    assert _roundtrip(doc) == to_document(from_document(contract_view(doc)))


def test_shared_residence_contract_and_stay_elsewhere_reach_the_person() -> None:
    child, dnr = special_documents()[:2]
    p = from_document(store_document(person_json(child)))
    shared = p.address("deltBosted")
    assert shared is not None and shared.contract_from is not None and shared.contract_from.isoformat() == "2021-01-01"
    assert shared.contract_to is not None and shared.contract_to.isoformat() == "2027-06-30"
    present = from_document(store_document(person_json(dnr))).address("opphold")
    assert present is not None and present.stay_elsewhere == "pendler"


def test_parts_and_history_limit_what_the_fake_serves() -> None:
    doc = special_documents()[0]
    served = person_json(doc, parts=["NorwegianIdentificationNumber", "Name"], include_history=False)
    assert set(served) == {"id", "sequenceNumber", "norwegianIdentificationNumber", "name"}
    current_only = person_json(doc, include_history=False)
    assert all(a["isValid"] for a in current_only["sharedResidence"])
    assert len(person_json(doc)["sharedResidence"]) == 2


def _api(doc: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(person_json(doc))


def test_unknown_enum_values_are_kept_and_counted_by_type() -> None:
    doc = special_documents()[1]  # D-nummer holder with a present address and a PO box
    api = _api(doc)
    api["norwegianIdentificationNumber"][0]["identificationNumberType"] = "SomeNewKindOfNumber"
    api["norwegianIdentificationNumber"][0]["status"] = "Suspended"
    api["presentAddress"][0]["addressConfidentiality"] = "EvenMoreSecret"
    api["presentAddress"][0]["stayElsewhere"] = "OnTheMoon"
    api["maritalStatus"][0]["status"] = "Complicated"
    api["gender"][0]["gender"] = "Other"
    api["status"][0]["status"] = "Hibernating"
    unknown: Counter[str] = Counter()
    p = from_document(store_document(api, unknown))
    assert unknown == Counter({"NorwegianIdentificationNumberType": 1, "IdentificationStatus": 1,
                               "AddressConfidentiality": 1, "StayElsewhere": 1, "MaritalStatusType": 1,
                               "Gender": 1, "PersonStatusType": 1})
    assert p.identifiers[0].kind == "dnr" and p.identifiers[0].status == "iBruk"  # from the number, from isValid
    present = p.address("opphold")
    assert present is not None and present.protection == "strengtFortrolig"  # fail closed
    assert present.stay_elsewhere is None
    assert p.marital_status[0].value == "uoppgitt"
    assert p.gender == () and p.status == ()
    assert p.protection_level == "strengtFortrolig"


def test_unknown_protection_level_of_the_person_fails_closed() -> None:
    api = _api(person_doc("prot"))
    api["addressProtection"][0]["protectionLevel"] = "Whatever"
    assert from_document(store_document(api)).protection_level == "strengtFortrolig"


@pytest.mark.parametrize(("edit", "field"), [
    (lambda a: a.__setitem__("name", "Ola"), "name"),
    (lambda a: a["name"].__setitem__(0, "Ola"), "name[0]"),
    (lambda a: a["residentialAddress"][0]["streetAddress"]["addressNumber"].__setitem__("houseNumber", "12-14"),
     "residentialAddress[0].streetAddress.addressNumber.houseNumber"),
    (lambda a: a["residentialAddress"][0].pop("streetAddress"), "residentialAddress[0]"),
    (lambda a: a["birth"][0].__setitem__("birthDate", 19800517), "birth[0].birthDate"),
    (lambda a: a["name"][0].__setitem__("registeredAt", "yesterday"), "name[0].registeredAt"),
    (lambda a: a["name"][0].__setitem__("isValid", "yes"), "name[0].isValid"),
    (lambda a: a.__setitem__("id", None), "id"),
])
def test_structural_faults_reject_naming_the_field(edit: Any, field: str) -> None:
    api = _api(person_doc("broken", given="Kari", family="Hansen"))
    edit(api)
    with pytest.raises(InvalidDocument) as err:
        store_document(api)
    assert err.value.field == field
    assert "Kari" not in str(err.value) and "Hansen" not in str(err.value) and "Storgata" not in str(err.value)


@pytest.mark.parametrize(("edit", "field"), [
    (lambda a: a["norwegianIdentificationNumber"][0].__setitem__("identificationNumber", "12345678901"),
     "identifiers[0].number"),
    (lambda a: a.__setitem__("norwegianIdentificationNumber", []), "identifiers"),
    (lambda a: a["name"][0].__setitem__("givenName", None), "names[0].given"),
    (lambda a: a["residentialAddress"][0]["streetAddress"]["city"].__setitem__("postalCode", "12"),
     "addresses[0].postnummer"),
])
def test_a_person_breaking_a_store_rule_is_rejected_by_the_store_rules(edit: Any, field: str) -> None:
    api = _api(person_doc("rule", given="Kari"))
    edit(api)
    with pytest.raises(InvalidDocument) as err:
        from_document(store_document(api))
    assert err.value.field == field
    assert "Kari" not in str(err.value)


def test_the_contracts_example_values_map(caplog: pytest.LogCaptureFixture) -> None:
    """Date-times with offsets and fractions as the contract's examples give them."""
    api = _api(person_doc("times"))
    api["name"][0]["registeredAt"] = "2000-01-23T04:56:07.000+01:00"
    api["name"][0]["validFrom"] = "2000-01-23T04:56:07.000+00:00"
    api["birth"][0]["birthYear"] = "1980"
    with caplog.at_level(logging.DEBUG):
        p = from_document(store_document(api))
    name = p.names[0]
    assert name.meta.registered_at is not None and name.meta.registered_at.isoformat() == "2000-01-23T03:56:07"
    assert name.meta.valid_from is not None and name.meta.valid_from.isoformat() == "2000-01-23"
    assert p.birth[0].year == 1980
    assert caplog.records == []




def test_the_primary_address_leads_on_every_face_and_in_the_wash() -> None:
    """A D-nummer holder's present address is the primary address: first in the person, the one a wash reports."""
    from store.brief import ADDR_TYPE, brief_of, split_brief

    dnr = special_documents()[1]
    dnr["addresses"].reverse()  # given post first: kept in the store's order all the same
    p = from_document(store_document(person_json(dnr)))
    assert [a.type for a in p.addresses] == ["opphold", "post"]
    assert split_brief(brief_of(p))[ADDR_TYPE] == "opphold"
