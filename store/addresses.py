"""The person's address: the one rule that search keys, identification and the Filematch wash follow.

A person has up to one current address of each type (Folkeregisteret: a fødselsnummer holder always has a
residence, ``bosted``; a D-nummer holder has none, and its present address, ``opphold``, is its primary
address). "The person's address" is the first current one in :data:`store.model.ADDRESS_ORDER` — bosted,
opphold, post, postUtland, deltBosted — which is also the order a person's addresses are kept and listed in
(PREG's list and HL7 PID-11 put it first). :func:`primary_address` is that rule, and every derived form
calls it:

- the wash brief (``store.brief.wash_address``): the address a Filematch answer reports and compares,
  ``primary_address(p)``;
- the search keys (``store.repository.search_row``: kommune, postnummer, street key), which searchPerson,
  HL7 PDQ and identification (``store.matching``, the Filematch wash's too) block and score by:
  ``primary_address(p, SEARCH_TYPES)``.

The one difference is the tail of the order: a foreign postal address (``postUtland``) has no Norwegian
kommune, postnummer or street to search by, and a shared residence (``deltBosted``, a child's second home)
is never the place a person is looked up by; so a person whose only current address is one of those is
reported with it by a wash but has no address keys. For every person who has a bosted, an opphold or a
post address the two give the same address (tests/unit/test_addresses.py checks every combination).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from store.model import ADDRESS_ORDER, ADDRESS_TYPES, Address, CurrentValues

__all__ = ["SEARCH_TYPES", "primary_address"]

#: The address types a person is searched and identified by: the head of :data:`ADDRESS_ORDER`.
SEARCH_TYPES: tuple[str, ...] = ADDRESS_ORDER[:3]
if set(ADDRESS_ORDER) != ADDRESS_TYPES or SEARCH_TYPES != ("bosted", "opphold", "post"):  # pragma: no cover
    raise ImportError("store.model's ADDRESS_ORDER must order every address type, residences first")

A = TypeVar("A", bound=Address)


def primary_address(p: CurrentValues[A], types: Sequence[str] = ADDRESS_ORDER) -> A | None:
    """The first current address of ``p`` by type in the order of ``types``, or None."""
    current = [a for a in p.addresses if a.meta.current]
    for t in types:
        for a in current:
            if a.type == t:
                return a
    return None
