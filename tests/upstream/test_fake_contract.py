"""Every answer the fake Persontjenesten serves validates against the OpenAPI contract, on both API versions and
both bundles, and every request the client sends does too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.upstream.openapi_support import ContractCheck, contract
from upstream.client import PersontjenestenClient
from upstream.errors import UpstreamBadRequest, UpstreamNotFound
from upstream.fake import FakeOptions, Faults, serve_fake
from upstream.spec import INFORMATION_PARTS

MAPPED = ["NorwegianIdentificationNumber", "Name", "Birth", "Gender", "Status", "Death", "ResidentialAddress",
          "PresentAddress", "PostalAddress", "ForeignPostalAddress", "SharedResidence", "AddressProtection",
          "MaritalStatus", "Citizenship", "FamilyRelation"]


def _persons(population: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (population / "persons.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("version", "bundle"), [("2", "legal-basis"), ("2", "no-legal-basis"),
                                                 ("3", "legal-basis"), ("3", "no-legal-basis")])
def test_every_answer_matches_the_contract(demo_population: Path, version: str, bundle: str) -> None:
    persons = _persons(demo_population)
    checks: list[ContractCheck] = []

    def wrap(app):
        checks.append(ContractCheck(app))
        return checks[0]

    contract()  # parse once, outside the fake's request threads
    with serve_fake(demo_population, wrap=wrap) as fake, \
            PersontjenestenClient(fake.client_settings(api_version=version, bundle=bundle)) as client:
        check = checks[0]
        events = client.events(1)
        assert client.latest_event() == events[-1]
        ids = sorted({e.person_id for e in events})
        for i in range(0, len(ids), 100):  # every version of every person, all parts, with history
            assert len(client.persons_by_id(ids[i:i + 100], MAPPED, include_history=True)) == len(ids[i:i + 100])
        for person_id in ids[:40]:
            assert client.person_by_id(person_id, MAPPED) is not None
        numbers = [p["identifiers"][0]["number"] for p in persons[:20]]
        assert client.person_by_nin(numbers[0], list(INFORMATION_PARTS), include_history=True) is not None
        assert len(client.persons_by_nin(numbers, MAPPED)) == 20
        name, birth = persons[0]["names"][0], persons[0]["birth"][0]
        assert client.search_persons({"FamilyName": name["family"], "BirthDate": birth["date"][:4]}, MAPPED)
        assert client.person_by_id("p-nobody", ["Name"]) is None  # 404 with ProblemDetails
        with pytest.raises(UpstreamBadRequest):
            client.search_persons({"GivenName": "Al"}, ["Name"])  # 400 with ProblemDetails
        with pytest.raises(UpstreamNotFound):
            client.call("x", "GET", fake.base_url + fake.client_settings(api_version=version, bundle=bundle).prefix
                        + "/nothing-here")
        fake.release(0)
        assert client.latest_event() is None  # 404
    assert check.failures == []
    statuses = [status for _, status in check.checked]
    assert statuses.count(200) >= len(ids) // 100 + 40 + 4 and statuses.count(404) == 2 and 400 in statuses
    assert [status for path, status in check.unlisted if path.endswith("/nothing-here")] == [404]


def test_refusals_of_the_authenticating_fake_match_the_contract(demo_population: Path, client_key) -> None:
    from tests.upstream.test_client_auth import auth_for

    checks: list[ContractCheck] = []

    def wrap(app):
        checks.append(ContractCheck(app))
        return checks[0]

    options = FakeOptions(auth=auth_for(client_key, scopes=["nhn:hgd-persontjenesten-api/read-no-legal-basis"]),
                          faults=Faults(rate_limit_every=3, retry_after=0))
    with serve_fake(demo_population, options, wrap=wrap) as fake:
        settings = fake.client_settings(**client_key.settings(fake), bundle="no-legal-basis", retries=3)
        with PersontjenestenClient(settings) as client:
            assert client.events(1)
            assert client.persons_by_id([e.person_id for e in client.events(1)[:10]], ["Name"])
    check = checks[0]
    assert check.failures == []
    assert check.unlisted and {s for _, s in check.unlisted} == {429}
