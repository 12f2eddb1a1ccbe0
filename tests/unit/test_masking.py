"""Masking: DSF codes and placeholders, blanked content with the structure kept, elements and history."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from server.access import (
    BUILTIN_PROFILES,
    AccessProfile,
    AddressView,
    MaskedPerson,
    apply_profile,
    dsf_code,
    visible_address,
)
from store.model import (
    Address,
    Birth,
    Citizenship,
    Death,
    Identifier,
    MaritalStatus,
    Meta,
    Name,
    Person,
    Protection,
    Relation,
    Value,
)

FULL, BASIS, UTEN = BUILTIN_PROFILES["full"], BUILTIN_PROFILES["basis"], BUILTIN_PROFILES["utenHjemmel"]
NOW = Meta(True, dt.date(2015, 6, 1), None, dt.datetime(2020, 1, 1, 10), "Skatteetaten")
OLD = Meta(False, dt.date(2001, 1, 1), dt.date(2015, 6, 1), dt.datetime(2015, 6, 2, 10), "Skatteetaten")


def address(protection: str = "ugradert", *, type_: str = "bosted", meta: Meta = NOW) -> Address:
    return Address(type=type_, form="vegadresse", street="Storgata", house_number=12, house_letter="B",
                   unit="H0101", co="c/o Hansen", gardsnummer=None, bruksnummer=None, festenummer=None,
                   lines=("Storgata 12B",), country=None, postnummer="0150", poststed="OSLO", kommune="0301",
                   bydel="030101", protection=protection, moved_at=dt.date(2015, 6, 1), meta=meta)


def person(protection: str = "ugradert", *, addresses: tuple[Address, ...] | None = None) -> Person:
    return Person(
        person_key="p1",
        identifiers=(Identifier("17058012345", "fnr", "iBruk", NOW), Identifier("57058012345", "dnr", "opphoert", OLD)),
        names=(Name("Kari", "Nordmann", None, NOW), Name("Kari", "Hansen", None, OLD)),
        birth=(Birth(dt.date(1980, 5, 17), 1980, None, "0301", "NOR", NOW),),
        gender=(Value("kvinne", NOW),),
        status=(Value("bosatt", NOW),),
        death=(Death(None, NOW),),
        addresses=addresses if addresses is not None else (address(protection), address("ugradert", meta=OLD)),
        protection=(Protection(protection, NOW),),
        marital_status=(MaritalStatus("gift", "17057912345", dt.date(2010, 6, 12), NOW),),
        citizenship=(Citizenship("NOR", None, NOW),),
        relations=(Relation("17051012345", "barn", "mor", NOW),),
    )


def test_dsf_codes() -> None:
    assert [dsf_code(x) for x in ("ugradert", "klientadresse", "strengtFortrolig", "fortrolig")] == ["0", "4", "6", "7"]
    with pytest.raises(ValueError):
        dsf_code("hemmelig")


def test_an_unprotected_address_is_released_whole() -> None:
    a = address()
    v = visible_address(a, UTEN)
    assert not v.masked and v.dsf_code == "0" and v.placeholder is None
    for f in dataclasses.fields(Address):
        assert getattr(v, f.name) == getattr(a, f.name)


@pytest.mark.parametrize(("level", "code", "placeholder", "kommune"), [
    ("klientadresse", "4", "Sperret adr. klientadr.", "0301"),
    ("fortrolig", "7", "Sperret adr. fortrolig", "0301"),
    ("strengtFortrolig", "6", "Sperret adresse", None),
])
def test_a_masked_address_keeps_its_structure_and_loses_its_content(level: str, code: str, placeholder: str,
                                                                    kommune: str | None) -> None:
    v = visible_address(address(level), UTEN)
    assert v.masked and v.dsf_code == code and v.placeholder == placeholder
    assert (v.type, v.protection, v.kommune) == ("bosted", level, kommune)
    assert v.meta == Meta(current=True)
    kept = {"type", "protection", "meta", "kommune"}
    for f in dataclasses.fields(Address):
        if f.name not in kept:
            assert getattr(v, f.name) in (None, (), ""), f.name  # blank: None, no items, or "" (form)
    assert {f.name for f in dataclasses.fields(Address)} <= {f.name for f in dataclasses.fields(AddressView)}


def test_levels_the_profile_may_see_are_released_and_strengt_fortrolig_never() -> None:
    assert not visible_address(address("fortrolig"), BASIS).masked
    assert visible_address(address("fortrolig"), BASIS).dsf_code == "7"
    assert not visible_address(address("klientadresse"), FULL).masked
    assert visible_address(address("strengtFortrolig"), FULL).masked
    legekontor = AccessProfile("lk", "*", frozenset({"addresses"}), "klientadresse")
    assert not visible_address(address("klientadresse"), legekontor).masked
    assert visible_address(address("fortrolig"), legekontor).masked


def test_a_protected_persons_unprotected_addresses_are_masked_too() -> None:
    p = person(addresses=(address("fortrolig"), address("ugradert", type_="post")))
    m = apply_profile(p, UTEN)
    assert [a.masked for a in m.addresses] == [True, True]
    assert {a.placeholder for a in m.addresses} == {"Sperret adr. fortrolig"}
    assert m.address("post") is not None and m.address("post").street is None  # type: ignore[union-attr]
    assert visible_address(address("ugradert"), UTEN, floor="fortrolig").masked


def test_basis_empties_what_it_does_not_release_and_drops_history() -> None:
    p = person("fortrolig")
    m = apply_profile(p, BASIS)
    assert (m.relations, m.marital_status, m.citizenship, m.protection) == ((), (), (), ())
    assert [i.number for i in m.identifiers] == ["17058012345"]  # the ceased D-number is history
    assert [n.family for n in m.names] == ["Nordmann"]
    assert len(m.addresses) == 1 and not m.addresses[0].masked and m.addresses[0].street == "Storgata"
    assert m.name is not None and m.name.family == "Nordmann"
    assert m.birth_date == dt.date(1980, 5, 17) and m.current_gender == "kvinne" and m.current_status == "bosatt"
    assert m.current_identifier == p.current_identifier
    assert m.protection_level is None  # the protection element is withheld
    assert m.profile == "basis" and m.released == BASIS.elements


def test_full_keeps_history_and_every_element_but_not_strengt_fortrolig_addresses() -> None:
    p = person("strengtFortrolig")
    m = apply_profile(p, FULL)
    assert len(m.identifiers) == 2 and len(m.names) == 2 and len(m.addresses) == 2
    assert m.relations == p.relations and m.marital_status == p.marital_status and m.citizenship == p.citizenship
    assert all(a.masked and a.placeholder == "Sperret adresse" and a.kommune is None for a in m.addresses)
    assert m.addresses[1].meta.current is False  # history stays history
    assert m.protection_level == "strengtFortrolig"


def test_a_withheld_element_leaves_an_empty_container() -> None:
    only_numbers = AccessProfile("numbers", "*", frozenset({"identifiers"}), "ugradert")
    m = apply_profile(person(), only_numbers)
    assert m.identifiers and m.names == () and m.addresses == () and m.birth == () and m.death == ()
    assert m.name is None and m.birth_date is None and m.address("bosted") is None


def test_masked_person_has_the_attributes_of_person() -> None:
    person_fields = {f.name for f in dataclasses.fields(Person)}
    assert person_fields <= {f.name for f in dataclasses.fields(MaskedPerson)}
    for prop in ("current_identifier", "name", "birth_date", "current_status", "current_gender", "death_date",
                 "protection_level"):
        assert hasattr(MaskedPerson, prop)


def test_apply_profile_is_pure() -> None:
    p = person("fortrolig")
    before = dataclasses.replace(p)
    apply_profile(p, UTEN)
    assert p == before
    assert apply_profile(p, UTEN) == apply_profile(p, UTEN)
