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
    assert f[b.NUMBER] == p.current_identifier.number  # type: ignore[union-attr]
    assert (f[b.GIVEN], f[b.FAMILY], f[b.BIRTH], f[b.GENDER], f[b.STATUS]) == ("Åse Marie", "Ødegård", "1980-05-17",
                                                                              "mann", "bosatt")
    assert (f[b.ADDR_TYPE], f[b.ADDR_LINE], f[b.POSTNUMMER], f[b.STREET], f[b.HOUSE]) == (
        "bosted", "Kirkeveien 12", "0150", "Kirkeveien", "12")
    assert f[b.PROTECTION] == f[b.ADDR_PROTECTION] == "fortrolig"
    assert f[b.FAMILY_KEY] == "odegard" and f[b.GIVEN_KEY] == "ase marie"
    assert f[b.DEATH] == "" and f[b.MIDDLE] == ""


def test_a_separator_inside_a_value_cannot_shift_the_fields() -> None:
    p = _person(family="Nord\x1fmann")
    f = b.split_brief(b.brief_of(p))
    assert f[b.FAMILY] == "Nord mann" and len(f) == len(b.FIELDS) + 1


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
    assert f[b.ADDR_TYPE] == f[b.ADDR_LINE] == f[b.STREET_KEY] == "" and f[b.PROTECTION] == "ugradert"
