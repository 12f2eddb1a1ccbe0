"""upstream.parts and the composition's union over the configured access profiles (server.bootstrap.sync_parts):
a part no profile releases is never asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.access import BUILTIN_PROFILES
from server.access.profiles import ELEMENTS
from server.access.settings import AccessSettings
from server.bootstrap import sync_parts
from server.config import Settings
from upstream.parts import ELEMENT_PARTS, information_parts
from upstream.settings import UpstreamSettings
from upstream.spec import INFORMATION_PARTS

BASIS = ("NorwegianIdentificationNumber", "Name", "Birth", "Gender", "Status", "Death", "ResidentialAddress",
         "PresentAddress", "SharedResidence", "PostalAddress", "ForeignPostalAddress", "AddressProtection")


def test_every_element_of_the_profiles_has_its_parts_and_every_part_is_the_contracts() -> None:
    assert set(ELEMENT_PARTS) == set(ELEMENTS)
    assert {p for parts in ELEMENT_PARTS.values() for p in parts} <= set(INFORMATION_PARTS)


def test_builtin_profiles() -> None:
    assert set(information_parts(BUILTIN_PROFILES["basis"].elements)) == set(BASIS)
    assert set(information_parts(BUILTIN_PROFILES["utenHjemmel"].elements)) == set(BASIS)
    full = information_parts(BUILTIN_PROFILES["full"].elements)
    assert set(full) == set(BASIS) | {"MaritalStatus", "Citizenship", "FamilyRelation"}
    assert len(full) == 15


def test_numbers_always_and_addresses_never_without_protection() -> None:
    assert information_parts(["name"]) == ("NorwegianIdentificationNumber", "Name")
    assert "AddressProtection" in information_parts(["addresses"])
    narrowed = information_parts(ELEMENTS, ["ResidentialAddress", "Name"])
    assert set(narrowed) == {"NorwegianIdentificationNumber", "Name", "ResidentialAddress", "AddressProtection"}


def test_configuration_narrows_but_never_widens() -> None:
    assert information_parts(["name"], ["Name", "FamilyRelation", "IdentificationDocument"]) == (
        "NorwegianIdentificationNumber", "Name")


def test_unknown_element_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown information element"):
        information_parts(["shoeSize"])


def test_the_composition_takes_the_union_of_the_configured_profiles(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.full]\noperations = "*"\nelements = ["identifiers", "name", "birth"]\n'
                        'max_protection = "fortrolig"\n', encoding="utf-8")
    settings = Settings(access=AccessSettings(profiles_path=profiles))
    assert set(sync_parts(settings)) == set(BASIS)  # full narrowed; basis and utenHjemmel still need addresses
    narrowed = Settings(access=AccessSettings(profiles_path=profiles),
                        upstream=UpstreamSettings(information_parts=("Name", "Birth", "FamilyRelation")))
    assert set(sync_parts(narrowed)) == {"NorwegianIdentificationNumber", "Name", "Birth"}
    assert set(sync_parts(Settings())) == set(information_parts(ELEMENTS))
