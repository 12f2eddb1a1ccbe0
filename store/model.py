"""Domain types of the person register: a Folkeregister-shaped person whose every element keeps history.

Plain frozen dataclasses, no SQLAlchemy: the repository maps them to rows, ``store.document`` to the
JSON documents of docs/data-formats.md. Every element item carries :class:`Meta` (FREG's
erGjeldende, gyldighetstidspunkt, opphoerstidspunkt, ajourholdstidspunkt, kilde).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

__all__ = [
    "ADDRESS_FORMS",
    "ADDRESS_ORDER",
    "ADDRESS_TYPES",
    "GENDERS",
    "IDENTIFIER_KIND_ORDER",
    "MARITAL_STATUSES",
    "PERSON_STATUSES",
    "PROTECTION_LEVELS",
    "RELATION_ROLES",
    "STAY_ELSEWHERE",
    "Address",
    "Birth",
    "Citizenship",
    "CurrentValues",
    "Death",
    "Identifier",
    "IdentifierStatus",
    "MaritalStatus",
    "Meta",
    "Name",
    "Person",
    "Protection",
    "Relation",
    "Value",
    "current",
]


#: Which number in use a person is known by: a fødselsnummer before a D-nummer before a felles hjelpenummer
#: before an H-nummer (other kinds last).
IDENTIFIER_KIND_ORDER: dict[str, int] = {"fnr": 0, "dnr": 1, "fh": 2, "hnr": 3}


class IdentifierStatus(StrEnum):
    IN_USE = "iBruk"
    CEASED = "opphoert"


PERSON_STATUSES = frozenset(
    {"bosatt", "utflyttet", "forsvunnet", "doed", "opphoert", "foedselsregistrert", "midlertidig",
     "inaktiv", "ikkeBosatt", "aktiv"}
)
GENDERS = frozenset({"kvinne", "mann"})
ADDRESS_TYPES = frozenset({"bosted", "opphold", "post", "deltBosted", "postUtland"})
#: The order of a person's addresses, by type: the residence, else the present address (the primary address of
#: a D-nummer holder), before the postal ones, a shared residence last. A person's addresses are kept in this
#: order (store.document), each type's items in the order registered, so every face lists the primary address
#: first (HL7 PID-11's first repetition), and the Filematch wash reports the first current one (store.brief).
ADDRESS_ORDER = ("bosted", "opphold", "post", "postUtland", "deltBosted")
ADDRESS_FORMS = frozenset({"vegadresse", "matrikkeladresse", "ukjentBosted", "utenlandsk", "postboks", "fritekst"})
PROTECTION_LEVELS = ("ugradert", "klientadresse", "fortrolig", "strengtFortrolig")  # ordered: least to most
_PROTECTION_RANK = {level: i for i, level in enumerate(PROTECTION_LEVELS)}


def stricter(a: str, b: str) -> str:
    """The stricter of two address protection levels (:data:`PROTECTION_LEVELS`)."""
    return a if _PROTECTION_RANK[a] >= _PROTECTION_RANK[b] else b

MARITAL_STATUSES = frozenset(
    {"uoppgitt", "ugift", "gift", "enkeEllerEnkemann", "skilt", "separert", "registrertPartner",
     "separertPartner", "skiltPartner", "gjenlevendePartner"}
)
RELATION_ROLES = frozenset({"mor", "far", "medmor", "barn", "soesken", "ektefelleEllerPartner", "doedfoedtBarn"})
#: Why a present address (opphold) is elsewhere than the residence: FREG oppholdAnnetSted.
STAY_ELSEWHERE = frozenset({"militaer", "utenriks", "paaSvalbard", "pendler"})


@dataclass(frozen=True, slots=True)
class Meta:
    current: bool = True
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None
    registered_at: dt.datetime | None = None
    source: str | None = None


@dataclass(frozen=True, slots=True)
class Identifier:
    number: str
    kind: str  # store.identity.IdKind value
    status: str = IdentifierStatus.IN_USE
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class Name:
    given: str
    family: str
    middle: str | None = None
    meta: Meta = field(default_factory=Meta)

    @property
    def full(self) -> str:
        return " ".join(p for p in (self.given, self.middle, self.family) if p)


@dataclass(frozen=True, slots=True)
class Birth:
    date: dt.date | None
    year: int | None
    place: str | None = None
    kommune: str | None = None
    country: str | None = None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class Value:
    """A single coded value with history: gender, person status."""

    value: str
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class Death:
    date: dt.date | None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class Address:
    type: str
    form: str
    street: str | None = None
    house_number: int | None = None
    house_letter: str | None = None
    unit: str | None = None
    co: str | None = None
    gardsnummer: int | None = None
    bruksnummer: int | None = None
    festenummer: int | None = None
    lines: tuple[str, ...] = ()
    country: str | None = None
    postnummer: str | None = None
    poststed: str | None = None
    kommune: str | None = None
    bydel: str | None = None
    protection: str = "ugradert"
    moved_at: dt.date | None = None
    meta: Meta = field(default_factory=Meta)
    # a shared residence (deltBosted): the period of the parents' agreement (FREG startdatoForKontrakt,
    # sluttdatoForKontrakt; Persontjenesten contractValidFrom/To), which is not the item's own validity
    contract_from: dt.date | None = None
    contract_to: dt.date | None = None
    # a present address (opphold, the primary address of a D-nummer holder): why the person stays there
    # rather than at the residence (FREG oppholdAnnetSted, :data:`STAY_ELSEWHERE`)
    stay_elsewhere: str | None = None


@dataclass(frozen=True, slots=True)
class Protection:
    level: str
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class MaritalStatus:
    value: str
    spouse: str | None = None
    date: dt.date | None = None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class Citizenship:
    country: str
    acquired: dt.date | None = None
    meta: Meta = field(default_factory=Meta)


@dataclass(frozen=True, slots=True)
class Relation:
    related_number: str | None
    related_role: str
    my_role: str | None = None
    meta: Meta = field(default_factory=Meta)


class _HasMeta(Protocol):
    @property
    def meta(self) -> Meta: ...


T = TypeVar("T", bound=_HasMeta)


def current(items: tuple[T, ...]) -> T | None:
    """The current item of an element, or None."""
    for item in items:
        if item.meta.current:
            return item
    return None


A = TypeVar("A", bound="_AddressLike")


class _AddressLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def protection(self) -> str: ...
    @property
    def meta(self) -> Meta: ...


class CurrentValues(Generic[A]):
    """The current values of a person's elements, for :class:`Person` and for the views the faces encode
    (server.access.MaskedPerson), which have the same element attributes."""

    __slots__ = ()
    identifiers: tuple[Identifier, ...]
    names: tuple[Name, ...]
    birth: tuple[Birth, ...]
    gender: tuple[Value, ...]
    status: tuple[Value, ...]
    death: tuple[Death, ...]
    addresses: tuple[A, ...]
    protection: tuple[Protection, ...]

    @property
    def current_identifier(self) -> Identifier | None:
        """The number in use: a fødselsnummer before a D-nummer before a felles hjelpenummer."""
        in_use = [i for i in self.identifiers if i.status == IdentifierStatus.IN_USE]
        return min(in_use, key=lambda i: IDENTIFIER_KIND_ORDER.get(i.kind, 9), default=None)

    @property
    def name(self) -> Name | None:
        return current(self.names)

    @property
    def birth_date(self) -> dt.date | None:
        b = current(self.birth)
        return b.date if b else None

    @property
    def current_status(self) -> str | None:
        s = current(self.status)
        return s.value if s else None

    @property
    def current_gender(self) -> str | None:
        g = current(self.gender)
        return g.value if g else None

    @property
    def death_date(self) -> dt.date | None:
        d = current(self.death)
        return d.date if d else None

    def strictest_protection(self) -> str:
        """The strictest protection in force, from the person's protection and current addresses."""
        levels = [p.level for p in self.protection if p.meta.current]
        levels += [a.protection for a in self.addresses if a.meta.current]
        return max(levels, key=_PROTECTION_RANK.__getitem__, default="ugradert")

    def current_addresses(self) -> tuple[A, ...]:
        return tuple(a for a in self.addresses if a.meta.current)

    def address(self, type_: str) -> A | None:
        for a in self.addresses:
            if a.meta.current and a.type == type_:
                return a
        return None


@dataclass(frozen=True, slots=True)
class Person(CurrentValues[Address]):
    person_key: str
    identifiers: tuple[Identifier, ...]
    names: tuple[Name, ...] = ()
    birth: tuple[Birth, ...] = ()
    gender: tuple[Value, ...] = ()
    status: tuple[Value, ...] = ()
    death: tuple[Death, ...] = ()
    addresses: tuple[Address, ...] = ()
    protection: tuple[Protection, ...] = ()
    marital_status: tuple[MaritalStatus, ...] = ()
    citizenship: tuple[Citizenship, ...] = ()
    relations: tuple[Relation, ...] = ()

    @property
    def protection_level(self) -> str:
        return self.strictest_protection()
