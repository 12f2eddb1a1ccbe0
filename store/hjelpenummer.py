"""Felles hjelpenummer (FH): allocation for a person without a number, and linking to a real number.

Allocation is idempotent: the request's identifying fields are normalised (store.normalize) and hashed,
and ``fh_request`` maps that key to the number given, so a repeated identical request — a retry, or the
same patient registered twice at the desk — answers the same number. A new FH person is stored like any
other: a Folkeregister-shaped document with the FH identifier in use, status ``aktiv``, source ``NHN``.
Numbers are drawn at random from the 8/9 series (research: 800000000–999999999 + two check digits)
with the operating system's random source, retried on the rare collision.

Both take the store's write lock (the advisory lock ingestion takes on PostgreSQL; on SQLite the caller
begins the transaction with ``BEGIN IMMEDIATE``), so concurrent calls — a client retrying the same
request, two desks, an ingest — are serialised instead of failing on the request key or a person id.

Plausibility (a request creates a person, so its content is bounded before anything is stored): each name
part at most :data:`MAX_NAME_CHARS` characters and :data:`MAX_NAME_WORDS` words, a birth date neither in
the future nor before :data:`EARLIEST_BIRTH`, a house number 1–9999 with an optional letter (Matrikkelen's
range), a postnummer (a foreign postcode: at most 10 letters and digits) and a kommune of 4 digits, a country
code of at most 3 letters, street and poststed at most :data:`MAX_NAME_CHARS` characters; anything else is
InvalidInput naming the field.

Linking: when the FH person is identified as a person with a fødselsnummer or D-nummer, the FH number is
added to that person as a ceased identifier, and the FH-only person's own record is closed (status
``opphoert``, its FH identifier ceased) and leaves the identifier index, so every lookup by the FH number
from then on finds the identified person, with that person's current number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
from dataclasses import dataclass, replace

from sqlalchemy import Connection, delete, insert, select

from store import identity
from store import schema as s
from store.errors import InvalidIdentifierError, InvalidInput, NotFound, ValueTooLong
from store.feed import write_lock
from store.model import Address, Birth, Identifier, IdentifierStatus, Meta, Name, Person, Value
from store.normalize import name_key
from store.repository import Lookup, PersonRepository

__all__ = ["HjelpenummerRequest", "allocate", "link"]

_random = random.SystemRandom()

MAX_NAME_CHARS = 100  # characters of a name part, a street or a poststed
MAX_NAME_WORDS = 10  # words of a name part
EARLIEST_BIRTH = dt.date(1850, 1, 1)
_HOUSE = re.compile(r"([0-9]{1,4})\s*([A-Za-z]?)")
_FOUR_DIGITS = re.compile(r"[0-9]{4}")
_POSTCODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z -]{0,9}")


@dataclass(frozen=True, slots=True)
class HjelpenummerRequest:
    given: str
    middle: str | None
    family: str
    gender: str  # kvinne | mann
    birth_date: dt.date
    street: str | None = None
    house_number: str | None = None
    postnummer: str | None = None
    poststed: str | None = None
    kommune: str | None = None
    country: str | None = None

    def key(self) -> str:
        parts = [name_key(self.given), name_key(self.middle), name_key(self.family), self.gender,
                 self.birth_date.isoformat(), name_key(self.street), (self.house_number or "").strip().lower(),
                 (self.postnummer or "").strip(), (self.kommune or "").strip(), (self.country or "").strip().upper()]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def validate(self, today: dt.date) -> None:
        """Raise InvalidInput unless the request is plausible (the module docstring's bounds)."""
        for field, value in (("given name", self.given), ("middle name", self.middle), ("family name", self.family),
                             ("street", self.street), ("poststed", self.poststed)):
            if value is not None and (len(value) > MAX_NAME_CHARS or len(value.split()) > MAX_NAME_WORDS):
                raise ValueTooLong(f"{field} is longer than {MAX_NAME_CHARS} characters or {MAX_NAME_WORDS} words")
        if not EARLIEST_BIRTH <= self.birth_date <= today:
            raise InvalidInput(f"birth date must be between {EARLIEST_BIRTH.isoformat()} and today")
        self.house()
        if self.country is not None and not (1 <= len(self.country.strip()) <= 3 and self.country.strip().isalpha()):
            raise InvalidInput("country must be a country code of at most 3 letters")
        if self.kommune is not None and not _FOUR_DIGITS.fullmatch(self.kommune.strip()):
            raise InvalidInput("kommune must be 4 digits")
        if self.postnummer is not None and not (_FOUR_DIGITS if not self.foreign() else _POSTCODE).fullmatch(
                self.postnummer.strip()):
            raise InvalidInput("postnummer must be 4 digits (a foreign postcode: at most 10 letters and digits)")

    def foreign(self) -> bool:
        return bool(self.country and self.country.strip().upper() not in ("NO", "NOR"))

    def house(self) -> tuple[int | None, str | None]:
        """(house number, house letter) of the request; InvalidInput unless 1–9999 with an optional letter."""
        if self.house_number is None or not self.house_number.strip():
            return None, None
        m = _HOUSE.fullmatch(self.house_number.strip())
        if m is None or not 1 <= int(m.group(1)) <= 9999:
            raise InvalidInput("house number must be 1-9999, optionally followed by a letter")
        return int(m.group(1)), m.group(2).upper() or None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _new_number(repo: PersonRepository) -> str:
    for _ in range(100):
        number = identity.generate(identity.IdKind.FH, None, _random)
        if not repo.ids_for_numbers([number]):
            return number
    raise RuntimeError("could not draw a free felles hjelpenummer")  # pragma: no cover - 2e8 numbers


def allocate(conn: Connection, req: HjelpenummerRequest) -> tuple[str, bool]:
    """(number, new): the FH number for this person, allocating one the first time."""
    req.validate(_now().date())
    key = req.key()
    write_lock(conn)
    known = conn.execute(select(s.fh_request.c.number).where(s.fh_request.c.request_key == key)).scalar()
    if known is not None:
        return known, False
    repo = PersonRepository(conn)
    now = _now()
    today = now.date()
    number = _new_number(repo)
    meta = Meta(True, today, None, now, "NHN")
    address: tuple[Address, ...] = ()
    if req.street or req.postnummer or req.kommune or req.country:
        house, letter = req.house()
        foreign = req.foreign()
        address = (Address("postUtland" if foreign else "post", "utenlandsk" if foreign else "vegadresse",
                           street=req.street, house_number=house, house_letter=letter, postnummer=req.postnummer,
                           poststed=req.poststed, kommune=req.kommune.strip() if req.kommune else None,
                           country=req.country.upper()[:3] if req.country else None, meta=meta),)
    person = Person(
        person_key=f"fh-{number}",
        identifiers=(Identifier(number, "fh", IdentifierStatus.IN_USE, meta),),
        names=(Name(req.given.strip(), req.family.strip(), (req.middle or "").strip() or None, meta),),
        birth=(Birth(req.birth_date, req.birth_date.year, meta=meta),),
        gender=(Value(req.gender, meta),),
        status=(Value("aktiv", meta),),
        addresses=address,
    )
    repo.save(person, now=now)
    conn.execute(insert(s.fh_request).values(request_key=key, number=number, person_key=person.person_key,
                                             created_at=now))
    return number, True


def _parse(number: str) -> identity.IdentityNumber:
    try:
        return identity.parse(number)
    except identity.InvalidIdentifier as exc:
        raise InvalidIdentifierError(str(exc), reason=exc.reason.value) from None


def link(conn: Connection, fh_number: str, number: str) -> Lookup:
    """Cease the FH number and make it resolve to the person with ``number``; returns that person."""
    if _parse(fh_number).kind != identity.IdKind.FH:
        raise InvalidIdentifierError("hjelpenummer is not a felles hjelpenummer", reason="unknownKind")
    if _parse(number).kind == identity.IdKind.FH:
        raise InvalidIdentifierError("personnummer must be a fødselsnummer or D-nummer", reason="unknownKind")
    write_lock(conn)
    repo = PersonRepository(conn)
    target = repo.find(number)
    fh = repo.find(fh_number)
    if target is None or fh is None:
        raise NotFound("no person with that number")
    if fh.person_id == target.person_id:
        return target  # already linked
    now = _now()
    ceased = Meta(False, fh.matched.meta.valid_from, now.date(), now, "NHN")
    linked = replace(target.person, identifiers=(*target.person.identifiers,
                                                 Identifier(fh_number, "fh", IdentifierStatus.CEASED, ceased)))
    # close the FH-only record: history kept in its document, but it leaves the identifier index
    closed = replace(
        fh.person,
        identifiers=tuple(replace(i, status=IdentifierStatus.CEASED, meta=ceased) for i in fh.person.identifiers),
        status=(*(replace(v, meta=replace(v.meta, current=False, valid_to=now.date())) for v in fh.person.status),
                Value("opphoert", Meta(True, now.date(), None, now, "NHN"))),
    )
    repo.save(closed, now=now)
    conn.execute(delete(s.person_identifier).where(s.person_identifier.c.person_id == fh.person_id))
    repo.save(linked, now=now)
    found = repo.find(fh_number)
    assert found is not None and found.person_id == target.person_id
    return found
