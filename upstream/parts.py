"""Which Persontjenesten information parts the sync fetches: only those some access profile can release.

The API's ``informationParts`` is its data-minimisation switch: a person request names the parts it wants,
and nothing else is sent. pregbridge asks for the union of the parts behind the information elements its
configured access profiles release (server.access.profiles.ELEMENTS; the composition root computes the
union and passes the element names here, since ``upstream`` may not import ``server``):

| element | information parts |
|---|---|
| identifiers | NorwegianIdentificationNumber (always: a person is kept and found by its numbers) |
| name | Name |
| birth | Birth |
| gender | Gender |
| status | Status |
| death | Death |
| addresses | ResidentialAddress, PresentAddress, SharedResidence, PostalAddress, ForeignPostalAddress (+ protection) |
| protection | AddressProtection |
| maritalStatus | MaritalStatus |
| citizenship | Citizenship |
| relations | FamilyRelation |
| history | (no part: the request's ``includeHistory``) |

An address is never fetched without AddressProtection: the person's level decides how every address is
masked. Every other part of the API (KRR contact information, identity documents, guardianship, residence
permits, …) is never fetched: no face shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["ELEMENT_PARTS", "information_parts"]

_ADDRESS_PARTS = ("ResidentialAddress", "PresentAddress", "SharedResidence", "PostalAddress", "ForeignPostalAddress",
                  "AddressProtection")

#: Information element (server.access.profiles.ELEMENTS) → the parts it needs.
ELEMENT_PARTS: Mapping[str, tuple[str, ...]] = {
    "identifiers": ("NorwegianIdentificationNumber",),
    "name": ("Name",),
    "birth": ("Birth",),
    "gender": ("Gender",),
    "status": ("Status",),
    "death": ("Death",),
    "addresses": _ADDRESS_PARTS,
    "protection": ("AddressProtection",),
    "maritalStatus": ("MaritalStatus",),
    "citizenship": ("Citizenship",),
    "relations": ("FamilyRelation",),
    "history": (),
}

_ORDER = {part: i for i, part in enumerate(p for parts in ELEMENT_PARTS.values() for p in parts)}


def information_parts(elements: Iterable[str], configured: Iterable[str] = ()) -> tuple[str, ...]:
    """The parts to fetch for profiles releasing ``elements`` (NorwegianIdentificationNumber always). A
    non-empty ``configured`` list (``[upstream] information_parts``) narrows it further; a configured part no
    profile releases is left out (never fetched). Unknown element names raise ValueError."""
    wanted = {"NorwegianIdentificationNumber"}
    for element in elements:
        if element not in ELEMENT_PARTS:
            raise ValueError(f"unknown information element {element!r}")
        wanted.update(ELEMENT_PARTS[element])
    narrowed = set(configured)
    if narrowed:
        wanted &= narrowed | {"NorwegianIdentificationNumber"}
        if "AddressProtection" not in wanted and wanted & set(_ADDRESS_PARTS):
            wanted.add("AddressProtection")  # an address is never fetched without the person's protection level
    return tuple(sorted(wanted, key=_ORDER.__getitem__))
