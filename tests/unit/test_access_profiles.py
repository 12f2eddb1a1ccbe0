"""Access profiles: the built-ins, operation and element checks, protection levels, the TOML file, wire codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.access import (
    BUILTIN_PROFILES,
    ELEMENTS,
    AccessProfile,
    AuthenticationFailed,
    AuthorizationFailed,
    Throttled,
    authorize,
    load_profiles,
    resolve_profile,
)
from store.errors import PregbridgeError
from store.model import PROTECTION_LEVELS


def test_builtin_profiles_release_what_they_promise() -> None:
    full, basis, uten = (BUILTIN_PROFILES[n] for n in ("full", "basis", "utenHjemmel"))
    assert full.elements == ELEMENTS
    assert basis.elements == uten.elements == {"identifiers", "name", "birth", "gender", "status", "death",
                                               "addresses"}
    for element in ("relations", "history", "maritalStatus", "citizenship", "protection"):
        assert not basis.allows(element)
        assert full.allows(element)
    assert [full.may_see(level) for level in PROTECTION_LEVELS] == [True, True, True, False]
    assert [basis.may_see(level) for level in PROTECTION_LEVELS] == [True, True, True, False]
    assert [uten.may_see(level) for level in PROTECTION_LEVELS] == [True, False, False, False]


def test_operations_star_and_sets() -> None:
    some = AccessProfile("some", frozenset({"getPerson"}), frozenset({"name"}), "ugradert")
    assert some.allows_operation("getPerson")
    assert not some.allows_operation("getAdresses")
    assert BUILTIN_PROFILES["full"].allows_operation("anything")
    authorize(some, "getPerson")
    with pytest.raises(AuthorizationFailed) as exc:
        authorize(some, "getAdresses")
    assert exc.value.soap_fault_code == "Client.Authorization"
    assert "getAdresses" in str(exc.value) and "some" in str(exc.value)


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown information element"):
        BUILTIN_PROFILES["full"].allows("shoeSize")
    with pytest.raises(ValueError, match="unknown protection level"):
        BUILTIN_PROFILES["full"].may_see("hemmelig")
    with pytest.raises(ValueError, match="shoeSize"):
        AccessProfile("x", "*", frozenset({"name", "shoeSize"}), "ugradert")
    with pytest.raises(ValueError, match="never released"):
        AccessProfile("x", "*", frozenset({"name"}), "strengtFortrolig")


def test_resolve_profile_fails_closed() -> None:
    assert resolve_profile("basis", BUILTIN_PROFILES) is BUILTIN_PROFILES["basis"]
    with pytest.raises(AuthorizationFailed):
        resolve_profile("gone", BUILTIN_PROFILES)


def test_load_profiles_without_a_file_gives_the_builtins() -> None:
    assert load_profiles(None) == dict(BUILTIN_PROFILES)


def test_load_profiles_overrides_and_adds(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("""
[profiles.legekontor]
operations = ["getPerson", "getAdresses"]
elements = ["identifiers", "name", "birth", "addresses"]
max_protection = "klientadresse"

[profiles.basis]
operations = "*"
elements = "*"
max_protection = "ugradert"
""", encoding="utf-8")
    profiles = load_profiles(path)
    assert set(profiles) == {"full", "basis", "utenHjemmel", "legekontor"}
    lk = profiles["legekontor"]
    assert lk.operations == frozenset({"getPerson", "getAdresses"})
    assert lk.elements == {"identifiers", "name", "birth", "addresses"}
    assert lk.may_see("klientadresse") and not lk.may_see("fortrolig")
    assert profiles["basis"].elements == ELEMENTS and profiles["basis"].max_protection == "ugradert"
    assert profiles["full"] == BUILTIN_PROFILES["full"]


@pytest.mark.parametrize(("body", "message"), [
    ('operations = "*"\nelements = ["name", "shoeSize", "hairColour"]\nmax_protection = "ugradert"',
     "hairColour, shoeSize"),
    ('operations = "*"\nelements = ["name"]\nmax_protection = "hemmelig"', "hemmelig"),
    ('operations = "*"\nelements = ["name"]\nmax_protection = "strengtFortrolig"', "never released"),
    ('operations = "*"\nelements = ["name"]', "missing key.*max_protection"),
    ('operations = "*"\nelements = ["name"]\nmax_protection = "ugradert"\nhistory = true', "unknown key.*history"),
    ('operations = "getPerson"\nelements = ["name"]\nmax_protection = "ugradert"', "operations must be a list"),
])
def test_load_profiles_names_what_is_wrong(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(f"[profiles.bad]\n{body}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_profiles(path)


def test_load_profiles_refuses_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text("[users]\nx = 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="users"):
        load_profiles(path)


def test_access_errors_carry_their_wire_forms() -> None:
    assert issubclass(Throttled, AuthenticationFailed)
    assert issubclass(AuthenticationFailed, PregbridgeError) and issubclass(AuthorizationFailed, PregbridgeError)
    assert (AuthenticationFailed.soap_fault_code, AuthenticationFailed.hl7_ack_code,
            AuthenticationFailed.hl7_error_code) == ("Client.Authentication", "AR", "207")
    assert (AuthorizationFailed.soap_fault_code, AuthorizationFailed.hl7_ack_code) == ("Client.Authorization", "AR")
    t = Throttled(0)
    assert t.soap_fault_code == "Client.Authentication"
    assert "try again later" in str(t) and t.retry_after == 1


def test_a_register_role_grants_the_operations_documented_for_it(tmp_path: Path) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text('[profiles.legekontor]\noperations = ["FlrLookup", "getPerson"]\nelements = ["name"]\n'
                    'max_protection = "ugradert"\n', encoding="utf-8")
    profile = load_profiles(path)["legekontor"]
    for op in ("GetPatientGPDetails", "GetPatientsGPDetails", "GetPatientsGPDetailsAtTime", "GetGPContract",
               "getPerson"):
        authorize(profile, op)
    for op in ("GetPatientGPHistory", "GetGPPatientList", "NavGetEncryptedPatientList", "FlrRead", "searchPerson"):
        with pytest.raises(AuthorizationFailed):
            authorize(profile, op)
    reader = AccessProfile("flr", frozenset({"FlrRead"}), frozenset({"name"}), "ugradert")
    assert reader.allows_operation("GetGPPatientList") and reader.allows_operation("GetPatientGPDetails")
    assert not reader.allows_operation("NavGetEncryptedPatientList")
