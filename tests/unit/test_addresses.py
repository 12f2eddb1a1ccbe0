"""One rule for "the person's address" (store.addresses): the wash brief, the search keys (and so
identification, which blocks and scores by them) take it from :func:`primary_address`, and differ only where
the module says — for every combination of current address types, with an ended address of each type too."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from store.addresses import SEARCH_TYPES, primary_address
from store.brief import ADDR_TYPE, POSTNUMMER, brief_of, split_brief, wash_address
from store.document import from_document
from store.model import ADDRESS_ORDER
from store.repository import search_row
from tests.factories import meta, person_doc

POSTNUMMER_OF = {"bosted": "0150", "opphold": "7011", "post": "5003", "postUtland": None, "deltBosted": "9008"}


def _address(type_: str, current: bool) -> dict[str, Any]:
    foreign = type_ == "postUtland"
    return {"type": type_, "form": "utenlandsk" if foreign else "vegadresse",
            "street": None if foreign else f"{type_}veien", "houseNumber": None if foreign else 3,
            "houseLetter": None, "unit": None, "co": None, "gardsnummer": None, "bruksnummer": None,
            "festenummer": None, "lines": ["Rue de Rivoli 1", "75001 Paris"] if foreign else [],
            "country": "FRA" if foreign else None,
            "postnummer": POSTNUMMER_OF[type_] if current else "1111", "poststed": None if foreign else "STED",
            "kommune": None if foreign else "0301", "bydel": None, "protection": "ugradert", "movedAt": None,
            **meta(current, "2001-01-01", None if current else "2002-01-01")}


COMBINATIONS = [c for n in range(len(ADDRESS_ORDER) + 1) for c in itertools.combinations(ADDRESS_ORDER, n)]


@pytest.mark.parametrize("types", COMBINATIONS, ids=lambda c: "+".join(c) or "none")
def test_search_keys_and_wash_follow_the_one_rule(types: tuple[str, ...]) -> None:
    # each type present also has an ended address (a moved-from one), listed before the current one
    addresses = [a for t in reversed(types) for a in (_address(t, False), _address(t, True))]
    p = from_document(person_doc("p", addresses=addresses))
    wash = wash_address(p)
    searched = primary_address(p, SEARCH_TYPES)
    assert wash is primary_address(p)
    assert wash is None or (wash.meta.current and wash.type == next(t for t in ADDRESS_ORDER if t in types))
    row = search_row(p, 1)
    assert row["postnummer"] == (searched.postnummer if searched else None)
    assert row["kommune"] == (searched.kommune if searched else None)
    brief = split_brief(brief_of(p))
    assert brief[ADDR_TYPE] == (wash.type if wash else "")
    assert brief[POSTNUMMER] == ((wash.postnummer or "") if wash else "")
    if set(types) & set(SEARCH_TYPES):
        assert searched is wash  # the same address for every person with a bosted, opphold or post address
    else:  # only a foreign postal address or a shared residence: reported by a wash, not searched by
        assert searched is None and row["address_protection"] is None
        assert wash is None or wash.type in ("postUtland", "deltBosted")


def test_a_d_nummer_holders_present_address_is_their_address() -> None:
    doc = person_doc("d", addresses=[_address("post", True), _address("opphold", True)])
    p = from_document(doc)
    assert primary_address(p) is primary_address(p, SEARCH_TYPES) is p.address("opphold")
    assert search_row(p, 1)["postnummer"] == "7011"
