"""A person's brief (store.brief): the current values a wash reads, and its layout guard."""

from __future__ import annotations

import pytest

from store import brief as b
from store.document import from_document
from tests.factories import person_doc


def _person(**kw: object):  # type: ignore[no-untyped-def]
    return from_document(person_doc("p1", **kw))  # type: ignore[arg-type]


def test_the_brief_holds_the_current_values_and_keys() -> None:
    p = _person(given="Åse Marie", family="Ødegård", street="Kirkeveien", house=12, postnummer="0150",
                protection="fortrolig")
    f = b.split_brief(b.brief_of(p))
    assert f.number == p.current_identifier.number  # type: ignore[union-attr]
    assert (f.given, f.family, f.birth, f.gender, f.status) == ("Åse Marie", "Ødegård", "1980-05-17",
                                                                              "mann", "bosatt")
    assert (f.addr_type, f.addr_line, f.postnummer, f.street, f.house) == (
        "bosted", "Kirkeveien 12", "0150", "Kirkeveien", "12")
    assert f.protection == f.addr_protection == "fortrolig"
    assert f.family_key == "odegard" and f.given_key == "ase marie"
    assert f.death == "" and f.middle == ""


def test_a_separator_inside_a_value_cannot_shift_the_fields() -> None:
    p = _person(family="Nord\x1fmann")
    f = b.split_brief(b.brief_of(p))
    assert f.family == "Nord mann" and len(f) == len(b.FIELDS)


def test_a_brief_of_another_layout_is_refused() -> None:
    text = b.brief_of(_person())
    with pytest.raises(b.BriefVersionError, match="pregbridge views rebuild"):
        b.split_brief("b0" + text[2:])
    with pytest.raises(b.BriefVersionError):
        b.split_brief(text + b.SEP + "extra")


def test_a_person_without_an_address_has_empty_address_fields() -> None:
    doc = person_doc("p2")
    doc["addresses"] = []
    f = b.split_brief(b.brief_of(from_document(doc)))
    assert f.addr_type == f.addr_line == f.street_key == "" and f.protection == "ugradert"
