"""The criteria → search/person form mapping (pure): each criterion in the field wider than the store's match,
values cut to what the API's patterns allow, and None below the API's minimum criteria."""

from __future__ import annotations

import datetime as dt

import pytest

from store.search import SearchCriteria
from upstream.readthrough_search import search_form


@pytest.mark.parametrize(("criteria", "form"), [
    (SearchCriteria(family="Nordmann", birth_date=dt.date(1980, 5, 17)),
     {"FamilyName": "Nordmann", "BirthDate": "1980-05-17"}),
    (SearchCriteria(given="Kari Anne", birth_year=1975, gender="kvinne"),
     {"FullName": "Kari Anne", "BirthDate": "1975", "Gender": "Female"}),
    (SearchCriteria(given="Ola", family="Berg", full_name="Per", kommune="0301", postnummer="0150"),
     {"FamilyName": "Berg", "FullName": "Ola Per", "MunicipalityNumber": "0301", "PostalCode": "0150"}),
    (SearchCriteria(family="Nordmann", street="Kirkevn. 3"), {"FamilyName": "Nordmann", "StreetAddress": "Kirkev"}),
    (SearchCriteria(family="Nordmann", street="Kirkeveien 3"), {"FamilyName": "Nordmann", "StreetAddress": "Kirkev"}),
    (SearchCriteria(family="Nordmann", street="Bygdøy allé 2"),
     {"FamilyName": "Nordmann", "StreetAddress": "Bygdøy"}),
    (SearchCriteria(family="O'Brien", given="Sean", birth_year=1970, gender="mann"),  # cut before the apostrophe
     {"FamilyName": "O", "FullName": "Sean", "BirthDate": "1970", "Gender": "Male"}),
])
def test_each_criterion_goes_to_its_field(criteria: SearchCriteria, form: dict[str, str]) -> None:
    assert search_form(criteria) == form


@pytest.mark.parametrize("criteria", [
    SearchCriteria(family="Nordmann", postnummer="0150"),  # valid for the store, below the API's minimum
    SearchCriteria(family="O'B", birth_year=1970),  # one letter of name left once cut
])
def test_below_the_api_minimum_is_none(criteria: SearchCriteria) -> None:
    assert search_form(criteria) is None
