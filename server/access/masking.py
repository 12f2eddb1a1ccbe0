"""The one masking policy of every face: what a profile may not see is blanked, the structure stays.

Pure functions over :mod:`store.model` types, no I/O. Every face (PREG SOAP, HL7, Filematch) encodes a
:class:`MaskedPerson` instead of a :class:`store.model.Person`, so no face can forget a rule.

Elements. An element the profile does not allow (:data:`server.access.profiles.ELEMENTS`) becomes an
empty tuple; the attribute is still there, so encoders still emit the empty element (empty XML element,
empty HL7 component) as the old PREG did. Without ``history`` only current items are kept.

Protected addresses. Each address is released at its *effective* level: the stricter of its own
protection and the person's strictest level in force (:attr:`store.model.Person.protection_level`),
so that a person who is fortrolig does not leak through an older or postal address that happens to be
ugradert. When the profile may not see that level (:meth:`AccessProfile.may_see`; never for
strengtFortrolig), the address becomes an :class:`AddressView` with ``masked=True``, the DSF-era
protection code and PREG's placeholder text (release P23-1):

| level | DSF code | placeholder | kommune kept |
|---|---|---|---|
| ugradert | 0 | (never masked) | — |
| klientadresse | 4 | "Sperret adr. klientadr." | yes |
| fortrolig | 7 | "Sperret adr. fortrolig" | yes |
| strengtFortrolig | 6 | "Sperret adresse" | no |

Every other content field (form, street, numbers, unit, c/o, matrikkel, lines, country, postnummer,
poststed, bydel, moving date, a shared residence's contract period, a present address's stayElsewhere, and
the item's validity dates and source) is blanked; ``type``,
``protection``, ``dsf_code``, ``placeholder`` and ``meta.current`` remain. The kommune of a
klientadresse or fortrolig address is kept because responsibility for health and welfare services
follows the kommune of residence and DSF released it for code 7 (a kode-6 person's kommune is unknown to
the services, which is why they are served centrally); it is blanked for strengtFortrolig. A site that
must not release it gives the profile ``max_protection = "ugradert"`` and drops ``addresses``.

The address-level code and placeholder are always present on a masked address (they say *why* it is
blank); the person-level ``protection`` element follows the profile like any other element.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from server.access.profiles import AccessProfile
from store.model import (
    PROTECTION_LEVELS,
    Address,
    Birth,
    Citizenship,
    CurrentValues,
    Death,
    Identifier,
    MaritalStatus,
    Meta,
    Name,
    Person,
    Protection,
    Relation,
    Value,
    stricter,
)
from store.search import SearchScope

__all__ = [
    "DSF_CODES",
    "PLACEHOLDERS",
    "AddressView",
    "MaskedPerson",
    "apply_profile",
    "dsf_code",
    "masked_levels",
    "search_scope",
    "visible_address",
    "visible_identifiers",
]

DSF_CODES: Mapping[str, str] = {"ugradert": "0", "klientadresse": "4", "strengtFortrolig": "6", "fortrolig": "7"}
PLACEHOLDERS: Mapping[str, str] = {
    "klientadresse": "Sperret adr. klientadr.",
    "fortrolig": "Sperret adr. fortrolig",
    "strengtFortrolig": "Sperret adresse",
}
_KEEPS_KOMMUNE = frozenset({"klientadresse", "fortrolig"})


def dsf_code(level: str) -> str:
    """The DSF-era protection code (SPES-KD) of a protection level."""
    try:
        return DSF_CODES[level]
    except KeyError:
        raise ValueError(f"unknown protection level {level!r}") from None


def masked_levels(profile: AccessProfile) -> dict[str, tuple[str, bool]]:
    """The protection levels ``profile`` may not see, each → (its placeholder, whether the kommune is kept):
    how :func:`visible_address` shows an address at that effective level, for faces that encode addresses
    without building :class:`AddressView` objects (the Filematch wash, HL7 PIDs from current views)."""
    return {level: (PLACEHOLDERS[level], level in _KEEPS_KOMMUNE)
            for level in PROTECTION_LEVELS if not profile.may_see(level)}


def search_scope(profile: AccessProfile) -> SearchScope:
    """What ``profile`` may search and score by (store.search, store.matching): the elements it sees, and the
    address levels it sees unmasked (street, postnummer) or with their kommune — so that no search or
    identification answers differently for a value the profile may not see."""
    return SearchScope.of(profile.elements, {level: keeps for level, (_, keeps) in masked_levels(profile).items()})


@dataclass(frozen=True, slots=True)
class AddressView(Address):
    """An address as a profile may see it: the fields of :class:`Address` (content blanked when masked) plus
    ``masked``, ``dsf_code`` and ``placeholder`` (PREG's text in place of a masked address, else None)."""

    masked: bool = False
    dsf_code: str = "0"
    placeholder: str | None = None


def visible_address(address: Address, profile: AccessProfile, *, floor: str = "ugradert") -> AddressView:
    """``address`` as ``profile`` may see it, at the stricter of its own protection and ``floor``
    (the person's strictest level in force; :func:`apply_profile` passes it)."""
    level = stricter(address.protection, floor)
    code = dsf_code(level)
    if profile.may_see(level):
        a = address
        return AddressView(a.type, a.form, a.street, a.house_number, a.house_letter, a.unit, a.co, a.gardsnummer,
                           a.bruksnummer, a.festenummer, a.lines, a.country, a.postnummer, a.poststed, a.kommune,
                           a.bydel, level, a.moved_at, a.meta, a.contract_from, a.contract_to, a.stay_elsewhere,
                           masked=False, dsf_code=code, placeholder=None)
    return AddressView(
        type=address.type,
        form="",
        kommune=address.kommune if level in _KEEPS_KOMMUNE else None,
        protection=level,
        meta=Meta(current=address.meta.current),
        masked=True,
        dsf_code=code,
        placeholder=PLACEHOLDERS[level],
    )


@dataclass(frozen=True, slots=True)
class MaskedPerson(CurrentValues[AddressView]):
    """A :class:`store.model.Person` as one profile may see it: the same attributes, disallowed ones empty.

    ``released`` names the information elements the profile allowed (encoders may use it to tell
    "withheld" from "none registered"); ``profile`` names the profile.
    """

    person_key: str
    identifiers: tuple[Identifier, ...]
    names: tuple[Name, ...]
    birth: tuple[Birth, ...]
    gender: tuple[Value, ...]
    status: tuple[Value, ...]
    death: tuple[Death, ...]
    addresses: tuple[AddressView, ...]
    protection: tuple[Protection, ...]
    marital_status: tuple[MaritalStatus, ...]
    citizenship: tuple[Citizenship, ...]
    relations: tuple[Relation, ...]
    profile: str
    released: frozenset[str]

    @property
    def protection_level(self) -> str | None:
        """The person's strictest protection in force, or None when the profile withholds ``protection``."""
        if "protection" not in self.released:
            return None
        return self.strictest_protection()


class _HasMeta(Protocol):
    @property
    def meta(self) -> Meta: ...


_T = TypeVar("_T", bound=_HasMeta)


def _keep(items: tuple[_T, ...], allowed: bool, history: bool) -> tuple[_T, ...]:
    if not allowed:
        return ()
    return items if history else tuple(i for i in items if i.meta.current)


def visible_identifiers(identifiers: tuple[Identifier, ...], profile: AccessProfile) -> tuple[Identifier, ...]:
    """The identifiers ``profile`` may see: none without ``identifiers``, current ones only without ``history``.
    :func:`apply_profile` keeps exactly these; a face that reads only identifiers (HL7 PIX) calls this."""
    return _keep(identifiers, profile.allows("identifiers"), profile.allows("history"))


def apply_profile(person: Person, profile: AccessProfile) -> MaskedPerson:
    """``person`` as ``profile`` may see it: disallowed elements empty, history dropped unless allowed,
    addresses as :class:`AddressView` masked per the table in the module docstring."""
    history = profile.allows("history")
    floor = person.protection_level
    addresses = _keep(person.addresses, profile.allows("addresses"), history)
    return MaskedPerson(
        person_key=person.person_key,
        identifiers=visible_identifiers(person.identifiers, profile),
        names=_keep(person.names, profile.allows("name"), history),
        birth=_keep(person.birth, profile.allows("birth"), history),
        gender=_keep(person.gender, profile.allows("gender"), history),
        status=_keep(person.status, profile.allows("status"), history),
        death=_keep(person.death, profile.allows("death"), history),
        addresses=tuple(visible_address(a, profile, floor=floor) for a in addresses),
        protection=_keep(person.protection, profile.allows("protection"), history),
        marital_status=_keep(person.marital_status, profile.allows("maritalStatus"), history),
        citizenship=_keep(person.citizenship, profile.allows("citizenship"), history),
        relations=_keep(person.relations, profile.allows("relations"), history),
        profile=profile.name,
        released=frozenset(profile.elements),
    )
