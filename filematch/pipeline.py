"""The washing pipeline: read → clean → block → compare → classify → report, one chunk of records at a time.

Per chunk (a few hundred to a few thousand records):

1. **clean** every record (:mod:`filematch.clean`);
2. **block**: records with a valid number go to one batched lookup (:func:`store.wash.find_numbers`: one
   ``IN`` query per 500 numbers, ceased numbers included, each person decoded *lean*: its current values
   only); records without a usable number (none, invalid, or unknown to the store) and with enough
   demographics go to identification;
3. **compare**: identification by demographics is :func:`store.matching.identify_many` (the answers of
   :func:`store.matching.identify`: blocking on the search index, Fellegi–Sunter-style scores, with each
   record's keys normalised once); the persons of the candidates are then loaded in one batch;
4. **classify** each record into exactly one :class:`~filematch.records.Code` (precedence below) and fill
   its :class:`~filematch.records.Result` from the person *as the caller's profile sees it*: the
   pipeline takes a ``view`` function (``server.access.apply_profile`` bound to the caller's profile, wired
   by the server; the identity for an unmasked local run), because filematch must not import the server.

Codes and precedence (the first that applies; docs/filematch.md has examples):

==============  ====================================================================================
INVALID         the line is broken, or there is neither a valid number nor enough demographics
                (given + family + birth date or year); ``reason`` says why (``number:checksum``, …)
*found by the number asked for:*
DECEASED        person status ``doed`` or a death date (``death`` column)
EMIGRATED       person status ``utflyttet``
REPLACED        the number asked for is no longer the person's current one (a D-nummer replaced by a
                fødselsnummer, a corrected number); ``number`` is the current one
PROTECTED       the person has a protected address (klientadresse, fortrolig, strengt fortrolig); the
                address is masked per profile; UPDATED/UNCHANGED are not told (that would reveal
                whether the client holds the protected address)
UPDATED         name or address differ from the input (``changed`` says which)
UNCHANGED       everything the input gave agrees
*no usable number (none, invalid, or unknown to the store): identified by demographics:*
IDENTIFIED      one candidate scores ≥ ACCEPT and leads the next by ≥ LEAD; ``number``, ``score``
AMBIGUOUS       candidates above CANDIDATE but none clear; ``candidates`` lists their numbers (≤ 5)
NOT_FOUND       a valid number the store does not know, or no candidate by demographics
==============  ====================================================================================

Whatever the code, the status and death columns carry the person's current status, so an IDENTIFIED
person who has died is visible as such. Input problems that did not prevent washing are kept in
``reason`` (e.g. IDENTIFIED with ``number:checksum``).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Connection

from filematch.clean import CleanRecord, clean, split_street
from filematch.records import Code, InputRecord, Result
from store.matching import IdentifyQuery, Outcome, identify_many
from store.model import Identifier, Name, Person
from store.repository import Lookup
from store.wash import cached_name_key as name_key
from store.wash import cached_street_key as street_key
from store.wash import find_numbers, load_lean

__all__ = ["AddressLike", "ChunkResult", "PersonView", "View", "unmasked", "wash"]

DSF_CODES = {"ugradert": "0", "klientadresse": "4", "fortrolig": "7", "strengtFortrolig": "6"}
_ADDRESS_ORDER = ("bosted", "opphold", "post", "postUtland", "deltBosted")
MAX_CANDIDATES = 5


class AddressLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def street(self) -> str | None: ...
    @property
    def house_number(self) -> int | None: ...
    @property
    def house_letter(self) -> str | None: ...
    @property
    def lines(self) -> tuple[str, ...]: ...
    @property
    def postnummer(self) -> str | None: ...
    @property
    def poststed(self) -> str | None: ...
    @property
    def kommune(self) -> str | None: ...
    @property
    def protection(self) -> str: ...


class PersonView(Protocol):
    """What the output reads of a person: :class:`store.model.Person` and ``server.access.MaskedPerson`` fit."""

    @property
    def current_identifier(self) -> Identifier | None: ...
    @property
    def name(self) -> Name | None: ...
    @property
    def birth_date(self) -> dt.date | None: ...
    @property
    def current_gender(self) -> str | None: ...
    @property
    def current_status(self) -> str | None: ...
    @property
    def death_date(self) -> dt.date | None: ...
    def current_addresses(self) -> Sequence[AddressLike]: ...


View = Callable[[Person], PersonView]


def unmasked(person: Person) -> PersonView:
    """The view of a local, unmasked run: the person itself."""
    return person


@dataclass(slots=True)
class ChunkResult:
    results: list[Result]
    counts: Counter[str] = field(default_factory=Counter)
    persons: list[str] = field(default_factory=list)  # numbers returned (for the audit record)


def _iso(d: dt.date | None) -> str:
    return d.isoformat() if d else ""


def _address(v: PersonView) -> AddressLike | None:
    current = v.current_addresses()
    for t in _ADDRESS_ORDER:
        for a in current:
            if a.type == t:
                return a
    return current[0] if current else None


def _line(a: AddressLike) -> str:
    placeholder = getattr(a, "placeholder", None)
    if placeholder:
        return str(placeholder)
    if a.street:
        return f"{a.street} {a.house_number or ''}{a.house_letter or ''}".strip()
    return ", ".join(a.lines)


def _fill(r: Result, v: PersonView, person: Person) -> None:
    cur = v.current_identifier
    r.number = cur.number if cur else ""
    n = v.name
    if n:
        r.given, r.middle, r.family = n.given, n.middle or "", n.family
    r.birth = _iso(v.birth_date)
    r.gender = v.current_gender or ""
    r.status = v.current_status or ""
    r.death = _iso(v.death_date)
    a = _address(v)
    if a is not None:
        r.street, r.postnummer, r.poststed, r.kommune = _line(a), a.postnummer or "", a.poststed or "", a.kommune or ""
        level = max(a.protection, person.protection_level, key=list(DSF_CODES).index)
        r.protection = DSF_CODES.get(level, "")


def _changed(c: CleanRecord, v: PersonView) -> list[str]:
    """Which of name and address the input gives differently from the (visible) current data."""
    out = []
    n = v.name
    if n and (c.family or c.given):
        family_differs = bool(c.family) and name_key(c.family) != name_key(n.family)
        given = name_key(c.given)
        given_differs = bool(given) and given not in (name_key(n.given), name_key(f"{n.given} {n.middle or ''}"))
        if family_differs or given_differs:
            out.append("name")
    a = _address(v)
    if a is not None and getattr(a, "placeholder", None) is None and (c.street or c.postnummer):
        differs = bool(c.postnummer) and c.postnummer != (a.postnummer or "")
        if c.street and not differs:
            name, number = split_street(c.street)
            if a.street:
                house = f"{a.house_number or ''}{a.house_letter or ''}".upper()
                differs = street_key(name) != street_key(a.street) or (bool(number) and number != house)
            else:
                differs = True
        if differs:
            out.append("address")
    return out


def _found(c: CleanRecord, lookup: Lookup, view: View) -> Result:
    p = lookup.person
    v = view(p)
    r = Result(c.source.seq, c.source.ref, Code.UNCHANGED, input_number=c.source.number.strip())
    _fill(r, v, p)
    current = p.current_identifier
    if v.current_status == "doed" or v.death_date is not None:
        r.code = Code.DECEASED
    elif v.current_status == "utflyttet":
        r.code = Code.EMIGRATED
    elif current is not None and current.number != lookup.matched.number:
        r.code = Code.REPLACED
    elif p.protection_level != "ugradert":
        r.code = Code.PROTECTED
    else:
        changed = _changed(c, v)
        if changed:
            r.code, r.changed = Code.UPDATED, ",".join(changed)
    r.reason = ";".join(c.problems)
    return r


def _query(c: CleanRecord) -> IdentifyQuery:
    street, _ = split_street(c.street) if c.street else ("", "")
    return IdentifyQuery(given=c.given, family=c.family, birth_date=c.birth_date, birth_year=c.birth_year,
                         gender=c.gender, postnummer=c.postnummer, kommune=c.kommune, street=street or None)


def wash(conn: Connection, records: Sequence[InputRecord], view: View = unmasked) -> ChunkResult:
    """Wash one chunk of records on a (read) connection; the results are in input order."""
    cleaned = [clean(r) for r in records]
    numbers = [c.number for c in cleaned if c.number and not c.source.error]
    found = find_numbers(conn, numbers) if numbers else {}
    results: list[Result | None] = [None] * len(cleaned)
    to_identify: list[int] = []
    for i, c in enumerate(cleaned):
        src = c.source
        if src.error:
            results[i] = Result(src.seq, src.ref, Code.INVALID, input_number=src.number.strip(), reason=src.error)
        elif c.number and c.number in found:
            results[i] = _found(c, found[c.number], view)
        elif c.identifiable:
            if c.number:
                c.problems.append("number:unknown")
            to_identify.append(i)
        elif c.number:
            results[i] = Result(src.seq, src.ref, Code.NOT_FOUND, input_number=c.number,
                                reason=";".join([*c.problems, "number:unknown"]))
        else:
            why = c.problems or ["number:missing"]
            results[i] = Result(src.seq, src.ref, Code.INVALID, input_number=src.number.strip(),
                                reason=";".join([*why, "demographics:insufficient"]))
    if to_identify:
        _identify(conn, cleaned, to_identify, results, view)
    out = ChunkResult([r for r in results if r is not None])
    for r in out.results:
        out.counts[r.code.value] += 1
        if r.number:
            out.persons.append(r.number)
        if r.candidates:
            out.persons.extend(r.candidates.split())
    return out


def _identify(conn: Connection, cleaned: list[CleanRecord], indexes: list[int],
              results: list[Result | None], view: View) -> None:
    answers = dict(zip(indexes, identify_many(conn, [_query(cleaned[i]) for i in indexes]), strict=True))
    wanted: list[int] = []
    for ident in answers.values():
        if ident.outcome is Outcome.IDENTIFIED:
            wanted.append(ident.candidates[0].person_id)
        elif ident.outcome is Outcome.AMBIGUOUS:
            wanted.extend(c.person_id for c in ident.candidates[:MAX_CANDIDATES])
    persons = load_lean(conn, wanted) if wanted else {}
    for i, ident in answers.items():
        c = cleaned[i]
        r = Result(c.source.seq, c.source.ref, Code.NOT_FOUND, input_number=c.source.number.strip(),
                   reason=";".join(c.problems))
        best = ident.best
        if ident.outcome is Outcome.IDENTIFIED and best is not None and best.person_id in persons:
            p = persons[best.person_id]
            _fill(r, view(p), p)
            r.code, r.score = Code.IDENTIFIED, f"{best.score:.1f}"
        elif ident.outcome is Outcome.AMBIGUOUS and best is not None:
            numbers = []
            for cand in ident.candidates[:MAX_CANDIDATES]:
                cand_person = persons.get(cand.person_id)
                cur = view(cand_person).current_identifier if cand_person is not None else None
                if cur is not None:
                    numbers.append(cur.number)
            r.code, r.score, r.candidates = Code.AMBIGUOUS, f"{best.score:.1f}", " ".join(numbers)
        results[i] = r
