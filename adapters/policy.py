"""The protection and masking policy, defined once: levels, DSF codes, placeholders, elements, releases.

Every face shows a person as one access profile may see it, and each has its own rendering for speed: the
PREG SOAP face and the general HL7 encoder encode a ``server.access.MaskedPerson`` (built by
``server.access.apply_profile``), the HL7 fast path encodes a stored current view (server/hl7/pid.py), and
the Filematch wash reads a stored brief (filematch/pipeline.py). All three take their decisions from one
:class:`Release`, built here from a profile's elements and address ceiling, and every code, text and rule
they use is a value of this module — no face keeps a copy. The module sits below the server and Filematch
(the layers: server → filematch → adapters → store) so that each of them can import it;
``server.access.release_of`` builds the release of a profile (cached), and
tests/integration/test_release_renderings.py holds the three renderings to each other for every profile
and protection level.

Protection levels (:data:`LEVELS`), from the least to the most protected (store.model.PROTECTION_LEVELS).
An address is judged at its *effective* level, the stricter of its own protection and the person's
strictest in force (:meth:`Release.masked_at`), so a fortrolig person's older or postal address does not
leak. A profile sees addresses unmasked up to its ``max_protection``; a level above it is *masked*: the
address keeps its type, the DSF-era protection code (SPES-KD) and PREG's placeholder text (release
P23-1), and every content field is blanked:

| level | DSF code | placeholder | kommune kept | releasable |
|---|---|---|---|---|
| ugradert | 0 | (never masked) | — | yes |
| klientadresse | 4 | "Sperret adr. klientadr." | yes | yes |
| fortrolig | 7 | "Sperret adr. fortrolig" | yes | yes |
| strengtFortrolig | 6 | "Sperret adresse" | no | **never** |

The kommune of a klientadresse or fortrolig address is kept because responsibility for health and welfare
services follows the kommune of residence and DSF released it for code 7 (a kode-6 person's kommune is
unknown to the services, which is why they are served centrally). A strengt fortrolig address is released
to no profile: PREG always answered "Sperret adresse" for DSF code 6, and Folkeregisteret does not give a
strengt fortrolig residence to the health sector at all.

Information elements (:data:`ELEMENTS`, a closed set): a profile releases some of them; what it does not
release is shown empty with the structure kept. ``history`` is a switch, not an element of its own: without
it only current items are released.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from store.model import PROTECTION_LEVELS, stricter
from store.search import SearchScope

__all__ = [
    "DSF_CODES",
    "ELEMENTS",
    "LEVELS",
    "PLACEHOLDERS",
    "RELEASABLE_LEVELS",
    "Level",
    "MaskedLevel",
    "Release",
    "dsf_code",
    "may_see",
]


@dataclass(frozen=True, slots=True)
class Level:
    """One address protection level: its DSF code, how a masked address of it shows, whether any profile
    may release it."""

    name: str
    dsf_code: str
    placeholder: str | None  # None: never masked
    keeps_kommune: bool  # a masked address of this level keeps its kommune
    releasable: bool  # a profile's max_protection may name it


LEVELS: Mapping[str, Level] = {lv.name: lv for lv in (
    Level("ugradert", "0", None, False, True),
    Level("klientadresse", "4", "Sperret adr. klientadr.", True, True),
    Level("fortrolig", "7", "Sperret adr. fortrolig", True, True),
    Level("strengtFortrolig", "6", "Sperret adresse", False, False),
)}
assert tuple(LEVELS) == PROTECTION_LEVELS  # one order of levels: store.model's

DSF_CODES: Mapping[str, str] = {name: lv.dsf_code for name, lv in LEVELS.items()}
PLACEHOLDERS: Mapping[str, str] = {name: lv.placeholder for name, lv in LEVELS.items() if lv.placeholder}
RELEASABLE_LEVELS = tuple(name for name, lv in LEVELS.items() if lv.releasable)

ELEMENTS = frozenset({
    "identifiers", "name", "birth", "gender", "status", "death", "addresses", "protection",
    "maritalStatus", "citizenship", "relations", "history",
})


def dsf_code(level: str) -> str:
    """The DSF-era protection code (SPES-KD) of a protection level."""
    try:
        return DSF_CODES[level]
    except KeyError:
        raise ValueError(f"unknown protection level {level!r}") from None


def may_see(max_protection: str, level: str) -> bool:
    """May a profile whose ceiling is ``max_protection`` see an address of ``level`` unmasked? Never for a
    level no profile may release (strengtFortrolig)."""
    lv = LEVELS.get(level)
    if lv is None:
        raise ValueError(f"unknown protection level {level!r}")
    return lv.releasable and PROTECTION_LEVELS.index(level) <= PROTECTION_LEVELS.index(max_protection)


class MaskedLevel(NamedTuple):
    """How an address at one protection level that a profile may not see is shown."""

    placeholder: str  # the address line in its place
    keeps_kommune: bool


@dataclass(frozen=True, eq=False, slots=True)
class Release:
    """What one access profile releases of a person: the one value every face's masking reads.

    ``elements``: the information elements released (:data:`ELEMENTS`); ``masked``: effective protection
    level → how an address at that level is shown (a level not in it is released unmasked). The flags
    (``name``, ``history``, …) are ``elements`` as attributes, for the fast paths. Picklable (Filematch
    sends it to worker processes). :meth:`of` is the policy; the plain constructor serves an unmasked
    local wash (``filematch.pipeline.UNMASKED``) and tests.
    """

    elements: frozenset[str]
    masked: Mapping[str, MaskedLevel] = field(default_factory=dict)
    identifiers: bool = field(init=False)
    history: bool = field(init=False)
    name: bool = field(init=False)
    birth: bool = field(init=False)
    gender: bool = field(init=False)
    status: bool = field(init=False)
    death: bool = field(init=False)
    addresses: bool = field(init=False)
    protection: bool = field(init=False)
    marital_status: bool = field(init=False)
    citizenship: bool = field(init=False)
    relations: bool = field(init=False)
    # what a search or identification may use (no answer may depend on what the release hides): made once
    # with the release, not per query (a PDQ search reads it per message)
    scope: SearchScope = field(init=False)

    def __post_init__(self) -> None:
        els = self.elements
        for attr, element in _FLAGS:
            object.__setattr__(self, attr, element in els)
        object.__setattr__(self, "scope", SearchScope.of(els, {level: m.keeps_kommune
                                                               for level, m in self.masked.items()}))

    @classmethod
    def of(cls, elements: Iterable[str], max_protection: str) -> Release:
        """The release of a profile that allows ``elements`` and sees addresses up to ``max_protection``."""
        masked = {name: MaskedLevel(lv.placeholder or "", lv.keeps_kommune)
                  for name, lv in LEVELS.items() if not may_see(max_protection, name)}
        return cls(frozenset(elements), masked)

    def masked_at(self, protection: str, floor: str) -> MaskedLevel | None:
        """How an address of its own ``protection`` is masked for a person whose strictest level in force is
        ``floor``, or None when it is released unmasked."""
        return self.masked.get(stricter(protection, floor))


_FLAGS = (("identifiers", "identifiers"), ("history", "history"), ("name", "name"), ("birth", "birth"),
          ("gender", "gender"), ("status", "status"), ("death", "death"), ("addresses", "addresses"),
          ("protection", "protection"), ("marital_status", "maritalStatus"), ("citizenship", "citizenship"),
          ("relations", "relations"))
assert {element for _, element in _FLAGS} == ELEMENTS
