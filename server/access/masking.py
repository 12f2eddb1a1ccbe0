"""The one masking policy of every face: what a profile may not see is blanked, the structure stays.

Pure functions over :mod:`store.model` types, no I/O. Every face (PREG SOAP, HL7, Filematch) encodes a
:class:`MaskedPerson` instead of a :class:`store.model.Person`, so no face can forget a rule.

Elements. An element the profile does not allow (:data:`adapters.policy.ELEMENTS`) becomes an
empty tuple; the attribute is still there, so encoders still emit the empty element (empty XML element,
empty HL7 component) as the old PREG did. Without ``history`` only current items are kept.

Protected addresses. Each address is released at its *effective* level: the stricter of its own
protection and the person's strictest level in force (:attr:`store.model.Person.protection_level`),
so that a person who is fortrolig does not leak through an older or postal address that happens to be
ugradert. When the profile may not see that level (never for strengtFortrolig), the address becomes an
:class:`AddressView` with ``masked=True``, the DSF-era protection code and PREG's placeholder text. The
levels, codes, placeholders and which levels keep the kommune are :mod:`adapters.policy`'s (its table),
and the decisions of one profile are its :class:`adapters.policy.Release` (:func:`release_of`, cached): the
HL7 fast path and the Filematch wash take the same release, so the three renderings cannot drift.

Every other content field (form, street, numbers, unit, c/o, matrikkel, lines, country, postnummer,
poststed, bydel, moving date, a shared residence's contract period, a present address's stayElsewhere, and
the item's validity dates and source) is blanked; ``type``, ``protection``, ``dsf_code``, ``placeholder``
and ``meta.current`` remain; the kommune where the level keeps it. A site that must not release the
kommune gives the profile ``max_protection = "ugradert"`` and drops ``addresses``.

The address-level code and placeholder are always present on a masked address (they say *why* it is
blank); the person-level ``protection`` element follows the profile like any other element.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, TypeVar

from adapters.policy import DSF_CODES, PLACEHOLDERS, Release, dsf_code
from server.access.profiles import AccessProfile
from store.model import (
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
    "Release",
    "apply_profile",
    "dsf_code",
    "release_of",
    "search_scope",
    "visible_address",
    "visible_identifiers",
]


@lru_cache(maxsize=256)
def release_of(profile: AccessProfile) -> Release:
    """What ``profile`` releases (:class:`adapters.policy.Release`): the one statement of its masking that
    :func:`apply_profile`, the HL7 fast path and the Filematch wash all read (profiles are immutable;
    cached)."""
    return Release.of(profile.elements, profile.max_protection)


def search_scope(profile: AccessProfile) -> SearchScope:
    """What ``profile`` may search and score by (store.search, store.matching): the elements it sees, and the
    address levels it sees unmasked (street, postnummer) or with their kommune — so that no search or
    identification answers differently for a value the profile may not see."""
    return release_of(profile).scope


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
    return _view(address, release_of(profile), floor)


def _view(address: Address, release: Release, floor: str) -> AddressView:
    level = stricter(address.protection, floor)
    code = dsf_code(level)
    shown = release.masked.get(level)
    if shown is None:
        a = address
        return AddressView(a.type, a.form, a.street, a.house_number, a.house_letter, a.unit, a.co, a.gardsnummer,
                           a.bruksnummer, a.festenummer, a.lines, a.country, a.postnummer, a.poststed, a.kommune,
                           a.bydel, level, a.moved_at, a.meta, a.contract_from, a.contract_to, a.stay_elsewhere,
                           masked=False, dsf_code=code, placeholder=None)
    return AddressView(
        type=address.type,
        form="",
        kommune=address.kommune if shown.keeps_kommune else None,
        protection=level,
        meta=Meta(current=address.meta.current),
        masked=True,
        dsf_code=code,
        placeholder=shown.placeholder,
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
    release = release_of(profile)
    return _keep(identifiers, release.identifiers, release.history)


def apply_profile(person: Person, profile: AccessProfile) -> MaskedPerson:
    """``person`` as ``profile`` may see it: disallowed elements empty, history dropped unless allowed,
    addresses as :class:`AddressView` masked per :mod:`adapters.policy`."""
    r = release_of(profile)
    history = r.history
    floor = person.protection_level
    addresses = _keep(person.addresses, r.addresses, history)
    return MaskedPerson(
        person_key=person.person_key,
        identifiers=_keep(person.identifiers, r.identifiers, history),
        names=_keep(person.names, r.name, history),
        birth=_keep(person.birth, r.birth, history),
        gender=_keep(person.gender, r.gender, history),
        status=_keep(person.status, r.status, history),
        death=_keep(person.death, r.death, history),
        addresses=tuple(_view(a, r, floor) for a in addresses),
        protection=_keep(person.protection, r.protection, history),
        marital_status=_keep(person.marital_status, r.marital_status, history),
        citizenship=_keep(person.citizenship, r.citizenship, history),
        relations=_keep(person.relations, r.relations, history),
        profile=profile.name,
        released=r.elements,
    )
