"""Access profiles: which operations an account may call and which information elements it may see.

An :class:`AccessProfile` is the one statement of what an account may know, read by every face (SOAP,
HL7, Filematch) through :func:`authorize` (operations) and :mod:`server.access.masking` (elements and
protected addresses). What a profile may not see is returned blank with the structure kept, the old
PREG's promise (docs/access.md).

Information elements (closed set, :data:`ELEMENTS`, defined with the rest of the masking policy in
:mod:`adapters.policy`): identifiers, name, birth, gender, status, death,
addresses, protection, maritalStatus, citizenship, relations, history. ``history`` is not an element of
its own but a switch: without it only the current item of each element is released.

Address protection (``max_protection``): the highest level whose addresses the profile sees unmasked,
one of ugradert < klientadresse < fortrolig. **strengtFortrolig is never released**: PREG always
answered "Sperret adresse" for DSF code 6, and Folkeregisteret does not give a strengt fortrolig
residence to the health sector at all (only a Kripos-administered postal address). A profile may
therefore not name ``strengtFortrolig``; :meth:`AccessProfile.may_see` is False for it whatever the
profile says.

Built-in profiles:

- ``full``: every operation and element, history included, addresses up to ``fortrolig``.
- ``basis``: identifiers, name, birth, gender, status, death, addresses; no relations, history,
  marital status, citizenship or person-level protection element; addresses up to ``fortrolig``.
- ``utenHjemmel`` ("without legal basis"): as ``basis`` but ``max_protection = "ugradert"``: no
  protected address is released (klientadresse and fortrolig are masked too).

Sites add or replace profiles in a TOML file (:func:`load_profiles`)::

    [profiles.legekontor]
    operations = ["getPerson", "getAdresses"]      # or "*"
    elements = ["identifiers", "name", "birth", "addresses"]   # or "*"
    max_protection = "klientadresse"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from adapters.policy import ELEMENTS, RELEASABLE_LEVELS
from adapters.policy import may_see as _may_see
from server.access.errors import AuthorizationFailed

__all__ = [
    "BUILTIN_PROFILES",
    "ELEMENTS",
    "RELEASABLE_LEVELS",
    "ROLES",
    "AccessProfile",
    "authorize",
    "load_profiles",
    "resolve_profile",
]

ALL: Literal["*"] = "*"
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")  # account.profile is String(40)


@dataclass(frozen=True, slots=True)
class AccessProfile:
    """What an account may call and see. ``operations`` is a set of operation names or ``"*"`` (all)."""

    name: str
    operations: frozenset[str] | Literal["*"]
    elements: frozenset[str]
    max_protection: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"profile name {self.name!r} must be 1-40 characters of A-Z a-z 0-9 . _ -")
        unknown = sorted(set(self.elements) - ELEMENTS)
        if unknown:
            raise ValueError(f"profile {self.name}: unknown element(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(ELEMENTS))}")
        if self.max_protection not in RELEASABLE_LEVELS:
            never = self.max_protection == "strengtFortrolig"
            why = " (strengtFortrolig addresses are never released)" if never else ""
            raise ValueError(f"profile {self.name}: unknown max_protection {self.max_protection!r}{why}; "
                             f"one of {', '.join(RELEASABLE_LEVELS)}")
        if self.operations != ALL and not isinstance(self.operations, frozenset):
            raise ValueError(f"profile {self.name}: operations must be a frozenset or '*'")

    def allows_operation(self, operation: str) -> bool:
        """By name, or through a register role the profile lists among its operations (:data:`ROLES`)."""
        if self.operations == ALL or operation in self.operations:
            return True
        return any(operation in ROLES.get(role, ()) for role in self.operations)

    def allows(self, element: str) -> bool:
        """May the profile see this information element? Unknown element names are a programming error."""
        if element not in ELEMENTS:
            raise ValueError(f"unknown information element {element!r}")
        return element in self.elements

    def may_see(self, level: str) -> bool:
        """May the profile see an address of this protection level unmasked? Never for strengtFortrolig
        (the rule is :func:`adapters.policy.may_see`)."""
        return _may_see(self.max_protection, level)


# NHN Grunndata roles a profile may list among its operations; each grants the operations the register's
# contract documents for it (docs/access.md names the sources). "Administrator" is not offered: use "*".
_FLR_LOOKUP = frozenset({"GetPatientGPDetails", "GetPatientsGPDetails", "GetPatientsGPDetailsAtTime", "GetGPContract"})
_FLR_READ = _FLR_LOOKUP | {"GetPatientGPHistory", "GetGPContractsOnOffice", "GetGPPatientList",
                           "GetGPWithAssociatedGPContracts", "ConfirmGP", "GetGPContractIdsOperatingInPostalCode",
                           "SearchForGP", "QueryGPContracts", "GetPrimaryHealthCareTeam", "GetGPContractForNav"}
ROLES: Mapping[str, frozenset[str]] = {
    "FlrLookup": _FLR_LOOKUP,
    "FlrRead": _FLR_READ,
    "FlrReadExtended": frozenset({"GetGPContractForNav", "NavGetEncryptedPatientList",
                                  "NavGetEncryptedPatientListAlternate"}),
    "BusinessKommuneoverlegeApiRead": frozenset({"GetAreasForHPRNumber", "GetHPRNumbersForArea",
                                                 "SearchKommuneOverlegeInfo"}),
}

_BASIS = frozenset({"identifiers", "name", "birth", "gender", "status", "death", "addresses"})

BUILTIN_PROFILES: Mapping[str, AccessProfile] = {
    p.name: p
    for p in (
        AccessProfile("full", ALL, ELEMENTS, "fortrolig"),
        AccessProfile("basis", ALL, _BASIS, "fortrolig"),
        AccessProfile("utenHjemmel", ALL, _BASIS, "ugradert"),
    )
}


def authorize(profile: AccessProfile, operation: str) -> None:
    """Raise :class:`AuthorizationFailed` unless ``profile`` allows ``operation``."""
    if not profile.allows_operation(operation):
        raise AuthorizationFailed(f"operation {operation} is not allowed for access profile {profile.name}")


def resolve_profile(name: str, profiles: Mapping[str, AccessProfile]) -> AccessProfile:
    """The profile an account names; an unknown name fails closed (:class:`AuthorizationFailed`)."""
    try:
        return profiles[name]
    except KeyError:
        raise AuthorizationFailed("the account's access profile is not configured") from None


def _names(value: Any, what: str, profile: str) -> frozenset[str] | Literal["*"]:
    if value == ALL:
        return ALL
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"profile {profile}: {what} must be a list of strings or \"*\"")
    return frozenset(value)


def _profile(name: str, table: Any) -> AccessProfile:
    if not isinstance(table, dict):
        raise ValueError(f"profile {name}: [profiles.{name}] must be a table")
    keys = {"operations", "elements", "max_protection"}
    unknown, missing = sorted(set(table) - keys), sorted(keys - set(table))
    if unknown:
        raise ValueError(f"profile {name}: unknown key(s) {', '.join(unknown)}")
    if missing:
        raise ValueError(f"profile {name}: missing key(s) {', '.join(missing)}")
    elements = _names(table["elements"], "elements", name)
    max_protection = table["max_protection"]
    if not isinstance(max_protection, str):
        raise ValueError(f"profile {name}: max_protection must be a string")
    return AccessProfile(name, _names(table["operations"], "operations", name),
                         ELEMENTS if elements == ALL else elements, max_protection)


def load_profiles(path: Path | None) -> dict[str, AccessProfile]:
    """The built-in profiles, overridden and extended by ``[profiles.NAME]`` tables of a TOML file.

    A table replaces a built-in of the same name whole (every key is required, so nothing is inherited
    by accident). Unknown element names, protection levels or keys raise ValueError naming them.
    """
    profiles = dict(BUILTIN_PROFILES)
    if path is None:
        return profiles
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    extra = sorted(set(data) - {"profiles"})
    if extra:
        raise ValueError(f"{path}: unknown section(s) {', '.join(extra)}; only [profiles.NAME] tables")
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ValueError(f"{path}: profiles must be tables [profiles.NAME]")
    for name, table in tables.items():
        profiles[name] = _profile(name, table)
    return profiles
