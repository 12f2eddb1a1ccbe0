"""The one exception root of pregbridge, and the store's leaves.

    PregbridgeError                      wire: Server / AE / 207
    ├── InvalidInput                     wire: Client.InvalidRequest / AE / 101
    │   ├── InvalidIdentifierError       wire: Client.InvalidIdentifier / AE / 102
    │   ├── ValueTooLong                 wire: Client.InvalidRequest / AE / 104 (a field over its bound)
    │   └── InvalidDocument              a person/feed/register record breaks a rule (bulk load, ingest)
    ├── NotFound                         wire: Client.NotFound / AE / 204
    ├── TooManyHits                      wire: Client.TooManyHits / AE / 207
    ├── FeedError                        change-feed ingestion refused a file; nothing applied
    │   ├── FeedGap                      the sequence numbers are not contiguous
    │   └── FeedFormatError              a line is not an event (no sequence number, not JSON)
    └── StoreUnavailable                 wire: Server.Unavailable / AE / 207
        ├── QueryTimeout                 a query ran past the statement deadline (store.engine)
        └── SourceUnavailable            read-through: Persontjenesten could not say (store/source.py)

Each class names its wire forms as class attributes (SOAP fault code, HL7 acknowledgement code and
HL7 table 0357 error code); the faces read them instead of keeping their own tables. Messages never
contain patient data (names, numbers, addresses): they name fields, line numbers and sequence numbers.
Foreign exceptions (SQLAlchemy, json, lxml) are translated at one seam per module.
"""

from __future__ import annotations

__all__ = [
    "FeedError",
    "FeedFormatError",
    "FeedGap",
    "InvalidDocument",
    "InvalidIdentifierError",
    "InvalidInput",
    "NotFound",
    "PregbridgeError",
    "QueryTimeout",
    "StoreUnavailable",
    "TooManyHits",
    "ValueTooLong",
]


class PregbridgeError(Exception):
    soap_fault_code: str = "Server"
    hl7_ack_code: str = "AE"
    hl7_error_code: str = "207"  # table 0357: application internal error

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(PregbridgeError):
    soap_fault_code = "Client.InvalidRequest"
    hl7_error_code = "101"  # required field missing / bad input


class InvalidIdentifierError(InvalidInput):
    soap_fault_code = "Client.InvalidIdentifier"
    hl7_error_code = "102"  # data type error

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ValueTooLong(InvalidInput):
    """A request field is longer than its bound (characters, words, repetitions): bounded work per request."""

    hl7_error_code = "104"  # value too long


class InvalidDocument(InvalidInput):
    """A record of a load or feed file breaks a rule; ``where`` names the record (line, personId)."""

    def __init__(self, message: str, *, field: str | None = None, where: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.where = where

    def __str__(self) -> str:
        parts = [self.where, self.field and f"field {self.field}", self.message]
        return ": ".join(p for p in parts if p)


class NotFound(PregbridgeError):
    soap_fault_code = "Client.NotFound"
    hl7_error_code = "204"  # unknown key identifier


class TooManyHits(PregbridgeError):
    soap_fault_code = "Client.TooManyHits"

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class FeedError(PregbridgeError):
    pass


class FeedGap(FeedError):
    def __init__(self, message: str, *, expected: int, found: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found


class FeedFormatError(FeedError):
    pass


class StoreUnavailable(PregbridgeError):
    soap_fault_code = "Server.Unavailable"


class QueryTimeout(StoreUnavailable):
    """A request's reads ran past the statement deadline (``[store] statement_timeout``) and were stopped by
    the database. Table 0357 has no code for it: 207 (application internal error) with AE, since sending
    the same query again would take as long (narrow it instead)."""
