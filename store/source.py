"""Where persons missing from the store come from: the contract between the faces and read-through mode (issue 18).

In replica mode (the default) the store holds the whole population and no face has a source. In read-through mode
the composition root gives each face a ``PersonSource``; a face calls it *before* it opens its own read, and then
answers from the store exactly as a replica does:

- ``ensure_numbers(numbers)`` — lookups by number (PREG getPerson/getPersons/getAdresses/getPersonHistory, HL7 PIX
  and A19, Filematch by number). Numbers the store does not hold are fetched (``person/get-by-nin`` or
  ``person/bulk-by-nin``, ≤ 100 a call) and stored; numbers it holds are marked as asked about (retention).
  A number the register does not know stays unknown: the face answers "not found" as a replica would.
- ``ensure_search(criteria)`` — searches (PREG searchPerson, HL7 PDQ, Filematch identification): candidates come
  from ``search/person`` and are stored; the face then runs its own search and scoring on the store.

Both raise ``SourceUnavailable`` when the register could not answer within its deadline (or the circuit breaker is
open) *and* the answer depends on it; each face turns that into its own typed "unavailable" answer. Persons already
in the store never depend on the register being up.

``store`` defines the protocol so that faces need not import ``upstream`` (import-linter: only the composition
root and the CLI import ``upstream``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from store.errors import StoreUnavailable
from store.search import SearchCriteria


class SourceUnavailable(StoreUnavailable):
    """The upstream register did not answer in time, or calls to it are paused; carries no patient data.

    A :class:`~store.errors.StoreUnavailable`, so every face already knows its wire forms: SOAP
    ``Server.Unavailable``, HL7 AE with table 0357 code 207 (application internal error: the only code of the
    table for a failure inside the receiving application; 206 "application record locked" would tell the
    sender the record exists, which a miss does not know)."""

    def __init__(self, message: str = "the person register is unavailable; try again later") -> None:
        super().__init__(message)


class PersonSource(Protocol):
    def ensure_numbers(self, numbers: Sequence[str], *, request_id: str | None = None) -> None:
        """Make every number the register knows answerable from the store; mark held persons as asked about."""
        ...

    def ensure_search(self, criteria: SearchCriteria, *, request_id: str | None = None) -> None:
        """Store the register's candidates for these criteria (its minimum criteria, ≤ 100 hits)."""
        ...
