"""The washing pipeline: read → clean → block → compare → classify → report, one chunk of records at a time.

Per chunk (a few hundred to a few thousand records):

1. **clean** every record (:mod:`filematch.clean`);
2. **block**: records with a valid number go to one batched lookup (:func:`store.wash.find_briefs`: one
   ``IN`` query per 500 numbers, ceased numbers included, answering each person's *brief*, the current
   values a wash reads, flattened when the person was stored: :mod:`store.brief`); records without a
   usable number (none, invalid, or unknown to the store) and with enough demographics go to
   identification;
3. **compare**: identification by demographics is :func:`store.matching.identify` per record, under the
   engine's statement deadline (:func:`store.engine.deadline`): blocking passes on the search index,
   Fellegi–Sunter weights with parameters estimated from the register, a match probability; the briefs
   of the candidates are then loaded in one batch;
4. **classify** each record into exactly one :class:`~filematch.records.Code` (precedence below) and fill
   its :class:`~filematch.records.Result` from the person *as the caller's profile sees it*: the
   pipeline takes the profile's :class:`adapters.policy.Release` — which information elements the caller's
   access profile releases and how it masks each address protection level — the one release that
   ``server.access.apply_profile`` and the HL7 fast path read too (the server builds it with
   ``server.access.release_of``; filematch must not import the server; tests check that a wash answers
   exactly what ``apply_profile`` would release). :data:`UNMASKED` is an unmasked local run's.

Codes and precedence (the first that applies; docs/filematch.md has examples):

==============  ====================================================================================
INVALID         the line is broken, or there is neither a valid number nor enough demographics (two of:
                a name, a birth date or year, an address); ``reason`` says why (``number:checksum``, …)
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
IDENTIFIED      one candidate's match probability reaches MATCH_PROBABILITY (store.matching);
                ``number``; ``score`` is its posterior log-odds in bits (probability 2^s / (1 + 2^s):
                6.6 is 0.99; it does not saturate as the probability does)
AMBIGUOUS       no candidate alone reaches it, two or more together do; ``candidates`` lists their
                numbers (≤ 5), ``score`` the best one's
NOT_FOUND       a valid number the store does not know, or no candidate by demographics; also a record
                whose identification was stopped at the statement deadline (``reason``
                ``identification:timeout``: send it again)
UNAVAILABLE     read-through mode only: a valid number the store does not hold, while Persontjenesten could
                not be asked about the chunk's missing numbers (deadline, errors, circuit breaker open);
                or a record to identify by demographics while it could not be asked for their candidates;
                ``reason`` ``upstream:unavailable``: send it again. The chunk's other records are answered.
==============  ====================================================================================

In read-through mode (``source`` given: store/source.py) the chunk's valid numbers go to
``source.ensure_numbers`` in one call before the store is read (≤ 100 numbers per upstream call), and the
records to identify get their candidates through ``source.ensure_search`` before the chunk is scored
(:mod:`filematch.gather`: the searches, their stages and the bound on them per chunk).

Whatever the code, the status and death columns carry the person's current status, so an IDENTIFIED
person who has died is visible as such. Input problems that did not prevent washing are kept in
``reason`` (e.g. IDENTIFIED with ``number:checksum``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from sqlalchemy import Connection

from adapters.policy import DSF_CODES, MaskedLevel, Release
from filematch.clean import CleanRecord, check_number, clean, split_street
from filematch.gather import LATE, Gatherer, identify_criteria
from filematch.records import Code, InputRecord, Result
from store import brief as b
from store.engine import deadline
from store.errors import QueryTimeout
from store.identity import is_valid
from store.matching import Identification, IdentifyQuery, Outcome, identify
from store.model import stricter
from store.source import PersonSource, SourceUnavailable
from store.wash import cached_name_key as name_key
from store.wash import cached_street_key as street_key
from store.wash import find_briefs, load_briefs

__all__ = ["ELEMENTS", "UNMASKED", "ChunkResult", "MaskedLevel", "Release", "identify_queries", "wash"]

MAX_CANDIDATES = 5
_FAST = True  # the fast paths (_found_plain); False: the reference paths only (the equivalence tests)
ELEMENTS = ("identifiers", "name", "birth", "gender", "status", "death", "addresses")  # what a wash releases


UNMASKED = Release(frozenset(ELEMENTS))


@dataclass(slots=True)
class ChunkResult:
    results: list[Result]
    counts: Counter[str] = field(default_factory=Counter)
    persons: list[str] = field(default_factory=list)  # numbers returned (for the audit record)
    refused: list[str] = field(default_factory=list)  # why each broken line was refused (INVALID, no content)


_Shown = tuple[str, str, str, str, str, str, str, str, str, str, str, str, str, str]


def _shown(f: list[str], rel: Release) -> tuple[_Shown, bool, bool]:
    """What ``rel`` shows of a brief: the Result fields number … protection (the order of
    :class:`~filematch.records.Result` from ``number``, with ``input_number`` left empty), and whether the
    name and an unmasked address are shown (the classifier compares only those)."""
    els = rel.elements
    name = "name" in els and bool(f[b.GIVEN] or f[b.FAMILY])
    street = postnummer = poststed = kommune = protection = ""
    address = False
    if "addresses" in els and f[b.ADDR_TYPE]:
        level = stricter(f[b.ADDR_PROTECTION], f[b.PROTECTION])  # the effective level (adapters.policy)
        protection = DSF_CODES[level]
        m = rel.masked.get(level)
        if m is None:
            street, postnummer, poststed, kommune = f[b.ADDR_LINE], f[b.POSTNUMMER], f[b.POSTSTED], f[b.KOMMUNE]
            address = True
        else:
            street, kommune = m.placeholder, f[b.KOMMUNE] if m.keeps_kommune else ""
    given, middle, family = (f[b.GIVEN], f[b.MIDDLE], f[b.FAMILY]) if name else ("", "", "")
    return (
        f[b.NUMBER] if "identifiers" in els else "", "", given, middle, family,
        f[b.BIRTH] if "birth" in els else "", f[b.GENDER] if "gender" in els else "",
        f[b.STATUS] if "status" in els else "", f[b.DEATH] if "death" in els else "",
        street, postnummer, poststed, kommune, protection,
    ), name, address


_STATUS, _DEATH = 7, 8  # positions in _shown's list


def _changed(c: CleanRecord, f: list[str], name: bool, address: bool) -> str:
    """Which of name and address the input gives differently from the shown current data (``a,b``)."""
    out = []
    # (the exact-text comparisons first are shortcuts: equal text has equal keys; the common case)
    if name and (c.family or c.given):
        family_differs = bool(c.family) and c.family != f[b.FAMILY] and name_key(c.family) != f[b.FAMILY_KEY]
        given_differs = False
        if c.given and c.given != f[b.GIVEN]:
            given = name_key(c.given)
            given_differs = bool(given) and given not in (f[b.GIVEN_KEY], f[b.GIVEN_MIDDLE_KEY])
        if family_differs or given_differs:
            out.append("name")
    if address and (c.street or c.postnummer):
        differs = bool(c.postnummer) and c.postnummer != f[b.POSTNUMMER]
        if c.street and not differs and not (c.street == f[b.ADDR_LINE] and f[b.STREET] and f[b.HOUSE]):
            if f[b.STREET]:
                street, number = split_street(c.street)
                differs = street_key(street) != f[b.STREET_KEY] or (bool(number) and number != f[b.HOUSE])
            else:
                differs = True
        if differs:
            out.append("address")
    return ",".join(out)


def _found(c: CleanRecord, f: list[str], rel: Release) -> Result:
    shown, name, address = _shown(f, rel)
    current = f[b.NUMBER]
    changed = ""
    if shown[_STATUS] == "doed" or shown[_DEATH]:
        code = Code.DECEASED
    elif shown[_STATUS] == "utflyttet":
        code = Code.EMIGRATED
    elif current and current != c.number:
        code = Code.REPLACED
    elif f[b.PROTECTION] != "ugradert":
        code = Code.PROTECTED
    else:
        changed = _changed(c, f, name, address)
        code = Code.UPDATED if changed else Code.UNCHANGED
    src = c.source
    r = Result(src.seq, src.ref, code, *shown, changed, "", "", ";".join(c.problems),
               f[b.ADDR_TYPE] if rel.addresses else "")  # _address_type, inline (once per record)
    r.input_number = src.number.strip()
    return r


_OPEN = "ugradert"  # the unprotected level (store.model.PROTECTION_LEVELS[0])
_OPEN_DSF = DSF_CODES[_OPEN]
_ALL_SHOWN = frozenset(ELEMENTS)


def _plain_release(rel: Release) -> bool:
    """Whether ``rel`` shows every element a wash answers and leaves an unprotected address unmasked: then
    :func:`_found_plain` answers the common record (the local wash's :data:`UNMASKED`, and every profile
    that releases them all)."""
    return _ALL_SHOWN <= rel.elements and _OPEN not in rel.masked


# the brief fields _found_plain reads, taken in one C call (17 list subscripts through the module `b` were a
# tenth of its time)
_PLAIN_FIELDS = itemgetter(b.STATUS, b.NUMBER, b.ADDR_TYPE, b.DEATH, b.PROTECTION, b.ADDR_PROTECTION, b.GIVEN,
                           b.FAMILY, b.POSTNUMMER, b.ADDR_LINE, b.STREET, b.HOUSE, b.MIDDLE, b.BIRTH, b.GENDER,
                           b.POSTSTED, b.KOMMUNE)
_UPDATED, _UNCHANGED = Code.UPDATED, Code.UNCHANGED


def _found_plain(c: CleanRecord, f: list[str], rel: Release) -> Result:
    """:func:`_found` for a :func:`_plain_release` (the reference; tests/integration/test_wash_fast.py
    checks the two give the same file): a living, resident person asked for by the current number, with
    neither the person nor the address protected — 95 % of a client's register — is answered UNCHANGED or
    UPDATED straight from the brief, without :func:`_shown`'s per-element choices (a third of ``_found``'s
    time); anyone else goes to :func:`_found`."""
    (status, current, addr_type, death, protection, addr_protection, given, family, postnummer, line, street,
     house, middle, birth, gender, poststed, kommune) = _PLAIN_FIELDS(f)
    if (status == "doed" or status == "utflyttet" or death or (current and current != c.number)
            or protection != _OPEN or (addr_type and addr_protection != _OPEN)):
        return _found(c, f, rel)
    # what the input gives, as the brief has it (text equal to the shown value): nothing changed, as _changed
    # would find (its own shortcuts, tried here before the call: the common record)
    cs = c.street
    if ((not c.family or c.family == family) and (not c.given or c.given == given)
            and (not c.postnummer or c.postnummer == postnummer)
            and (not cs or (cs == line and street and house))):
        changed = ""
    else:
        changed = _changed(c, f, bool(given or family), bool(addr_type))
    src = c.source
    if addr_type:
        dsf = _OPEN_DSF
    else:
        line = postnummer = poststed = kommune = dsf = ""
    if not (given or family):
        middle = ""
    problems = c.problems
    return Result(src.seq, src.ref, _UPDATED if changed else _UNCHANGED, current, src.number.strip(),
                  given, middle, family, birth, gender, status, "",
                  line, postnummer, poststed, kommune, dsf, changed, "", "",
                  ";".join(problems) if problems else "", addr_type)


def _address_type(f: list[str], rel: Release) -> str:
    """The type of the reported address (kept on a masked one, as every face keeps it), if addresses are
    released."""
    return f[b.ADDR_TYPE] if rel.addresses else ""


def _identified(r: Result, f: list[str], rel: Release) -> None:
    """Fill ``r`` with what ``rel`` shows of the brief of the person it was identified as."""
    shown, _, _ = _shown(f, rel)
    (r.number, _, r.given, r.middle, r.family, r.birth, r.gender, r.status, r.death, r.street, r.postnummer,
     r.poststed, r.kommune, r.protection) = shown
    r.address_type = _address_type(f, rel)


def _query(c: CleanRecord) -> IdentifyQuery:
    street, _ = split_street(c.street) if c.street else ("", "")
    return IdentifyQuery(given=c.given, family=c.family, birth_date=c.birth_date, birth_year=c.birth_year,
                         gender=c.gender, postnummer=c.postnummer, kommune=c.kommune, street=street or None,
                         number="".join(c.source.number.split()) or None)


def identify_queries(records: Iterable[InputRecord]) -> Iterator[IdentifyQuery]:
    """The identification queries of the records without a valid number that could be identified (the
    sample ``pregbridge identify estimate`` fits m on)."""
    for rec in records:
        c = clean(rec)
        if not c.number and not rec.error and c.identifiable:
            yield _query(c)


def wash(conn: Connection, records: Sequence[InputRecord], release: Release = UNMASKED, *,
         source: PersonSource | None = None, request_id: str | None = None) -> ChunkResult:
    """Wash one chunk of records on a (read) connection; the results are in input order. With a ``source``
    (read-through mode) the chunk's valid numbers are made answerable from the store first, and identification
    gathers the chunk's candidates from it before scoring (:mod:`filematch.gather`)."""
    cleaned = [clean(r, validate_number=False) for r in records]
    numbers = [c.number for c in cleaned if c.number and not c.source.error]
    unavailable = False
    if source is not None and numbers:
        try:
            source.ensure_numbers([n for n in dict.fromkeys(numbers) if is_valid(n)], request_id=request_id)
        except SourceUnavailable:
            unavailable = True
    found = find_briefs(conn, numbers) if numbers else {}  # a stored number is a valid one
    results: list[Result | None] = [None] * len(cleaned)
    refused: list[str] = []
    to_identify: list[int] = []
    answer = _found_plain if _FAST and _plain_release(release) else _found
    for i, c in enumerate(cleaned):
        src = c.source
        if src.error:
            results[i] = Result(src.seq, src.ref, Code.INVALID, input_number=src.number.strip(), reason=src.error)
            refused.append(src.error)
            continue
        f = found.get(c.number) if c.number else None  # type: ignore[arg-type]
        if f is not None:
            results[i] = answer(c, f, release)
            continue
        check_number(c)
        if unavailable and c.number:
            results[i] = Result(src.seq, src.ref, Code.UNAVAILABLE, input_number=c.number,
                                reason=";".join([*c.problems, "upstream:unavailable"]))
            continue
        if c.identifiable:
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
        _identify(conn, cleaned, to_identify, results, release, source, request_id)
    done = [r for r in results if r is not None]
    # counted and listed in C (map, Counter): per record the Python loop cost as much as encoding its answer
    counts = Counter({code.value: n for code, n in Counter(map(_CODE, done)).items()})
    if any(map(_CANDIDATES, done)):
        persons: list[str] = []
        for r in done:
            if r.number:
                persons.append(r.number)
            if r.candidates:
                persons.extend(r.candidates.split())
    else:
        persons = [n for n in map(_NUMBER, done) if n]
    return ChunkResult(done, counts, persons, refused)


_CODE, _NUMBER, _CANDIDATES = attrgetter("code"), attrgetter("number"), attrgetter("candidates")


def _not_found(c: CleanRecord, *reasons: str) -> Result:
    return Result(c.source.seq, c.source.ref, Code.NOT_FOUND, input_number=c.source.number.strip(),
                  reason=";".join([*c.problems, *reasons]))


def _identify(conn: Connection, cleaned: list[CleanRecord], indexes: list[int], results: list[Result | None],
              release: Release, source: PersonSource | None = None, request_id: str | None = None) -> None:
    answers: dict[int, Identification] = {}
    timed_out: list[int] = []
    scope = release.scope
    queries = {i: _query(cleaned[i]) for i in indexes}

    def score(which: list[int]) -> None:
        for i in which:
            try:
                with deadline(conn):  # the engine's statement deadline, per record (none in a local run)
                    answers[i] = identify(conn, queries[i], scope=scope)
            except QueryTimeout:
                answers.pop(i, None)
                timed_out.append(i)

    if source is None:
        score(indexes)
    else:  # read-through: the chunk's candidates into the store before it is scored (filematch/gather.py)
        gather = Gatherer.for_chunk(source, len(indexes), request_id)
        try:
            gather.gather(queries.values())
            score(indexes)
            late = [i for i in indexes if i in answers and answers[i].outcome is not Outcome.IDENTIFIED
                    and identify_criteria(queries[i])[LATE]]
            if late:
                gather.stage(LATE, [queries[i] for i in late])
                score(late)
        except SourceUnavailable:  # no answer without the register's candidates: UNAVAILABLE, send it again
            for i in indexes:
                answers.pop(i, None)
                c = cleaned[i]
                results[i] = Result(c.source.seq, c.source.ref, Code.UNAVAILABLE, input_number=c.source.number.strip(),
                                    reason=";".join([*c.problems, "upstream:unavailable"]))
            timed_out.clear()
    for i in timed_out:
        results[i] = _not_found(cleaned[i], "identification:timeout")
    wanted: list[int] = []
    for ident in answers.values():
        if ident.outcome is Outcome.IDENTIFIED:
            wanted.append(ident.candidates[0].person_id)
        elif ident.outcome is Outcome.AMBIGUOUS:
            wanted.extend(c.person_id for c in ident.candidates[:MAX_CANDIDATES])
    briefs = load_briefs(conn, wanted) if wanted else {}
    numbers_released = "identifiers" in release.elements
    for i, ident in answers.items():
        r = _not_found(cleaned[i])
        best = ident.best
        if ident.outcome is Outcome.IDENTIFIED and best is not None and best.person_id in briefs:
            _identified(r, briefs[best.person_id], release)
            r.code, r.score = Code.IDENTIFIED, f"{best.score:.1f}"
        elif ident.outcome is Outcome.AMBIGUOUS and best is not None:
            numbers = []
            for cand in ident.candidates[:MAX_CANDIDATES]:
                f = briefs.get(cand.person_id)
                if numbers_released and f is not None and f[b.NUMBER]:
                    numbers.append(f[b.NUMBER])
            r.code, r.score, r.candidates = Code.AMBIGUOUS, f"{best.score:.1f}", " ".join(numbers)
        results[i] = r
