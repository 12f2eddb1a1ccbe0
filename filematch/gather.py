"""Identification in read-through mode: a chunk's candidates gathered from Persontjenesten before it is scored.

In read-through mode the store holds only the persons this site asked about, so the blocking passes of
:func:`store.matching.identify` would find nobody. Before a chunk is scored, each record's demographics become
searches the register's ``search/person`` accepts (:func:`identify_criteria`: a name of three letters and a birth
date or a street; a postnummer alone is not enough), asked through the read-through source
(``PersonSource.ensure_search``), which stores the candidates; the chunk is then scored on the store by the
project's own identification, exactly as a replica scores it. A record's unknown number first brings the persons
whose number is one typing error from it (``ensure_numbers``, :func:`store.identity.near_valid`), as the
number block does in a replica.

Every search of every record of the chunk is asked *before* any record is scored: a record scored while its
own true person is not yet stored would be decided among fewer candidates than a replica sees, and a lone
look-alike fetched for another record could then pass the match threshold (measured: stopping after the
first stage that identifies, as identify's passes do, identified 1 record in 150 wrongly). The
searches are asked in the stages of identify's passes, each once however many records share it, a few at a
time (:data:`PARALLEL`), and a chunk asks at most :data:`CALLS_PER_RECORD` searches per record to identify:
past that bound the last stages are cut short (their records may then come out NOT_FOUND where a replica
identifies them; ``cut`` counts the searches left out).

A search whose answer passes the register's 100-hit cap is too broad to store (TooManyHits): it is skipped, and
the record's other searches still run. ``SourceUnavailable`` propagates: the pipeline answers the chunk's
records to identify with its unavailable code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from store.errors import InvalidInput, TooManyHits
from store.identity import near_valid
from store.matching import IdentifyQuery
from store.matching import _year_typos as year_typos  # the year-typo pass's own dates
from store.normalize import street_key
from store.search import SearchCriteria
from store.source import PersonSource

__all__ = ["CALLS_PER_RECORD", "LATE", "PARALLEL", "Gatherer", "identify_criteria"]

CALLS_PER_RECORD = 8  # searches one chunk may ask upstream per record it identifies (identify_criteria's most)
PARALLEL = 4  # searches of a stage in flight at once
STAGES = 3  # asked for every record before scoring; then LATE, for the records not identified
LATE = 3


def _word(text: str | None) -> str:
    """The letters the first word of ``text`` starts with."""
    first = (text or "").strip().split()
    out = []
    for ch in first[0] if first else "":
        if not ch.isalpha():
            break
        out.append(ch)
    return "".join(out)


def _valid(c: SearchCriteria) -> bool:
    try:
        c.validate()
    except InvalidInput:
        return False
    return True


def identify_criteria(q: IdentifyQuery) -> list[list[SearchCriteria]]:
    """The searches that gather a record's candidates upstream, by stage (as store.matching's passes):

    1. the birth date with the family name's first 3 letters, and with the given name's (a typo in the other
       name, a married name, a move);
    2. the birth year with the family name's first word, and with the given name's (a wrong day or month); the
       street with the family name (no birth date or a wrong one);
    3. the birth date with day and month swapped, with either name's first 3 letters; the birth year with the
       given name as family name (given and family name swapped);
    4. (LATE: only for a record the first three leave unidentified) the birth date with one digit of its year
       off (1923 for 1993), with the family name's first word (else the given name's).

    A name shorter than 3 letters is not used; a record with neither a birth date nor a street gets none."""
    family, given = _word(q.family), _word(q.given)
    family = family if len(family) >= 3 else ""
    given = given if len(given) >= 3 else ""
    year = q.birth_date.year if q.birth_date else q.birth_year
    stages: list[list[SearchCriteria]] = [[] for _ in range(STAGES + 1)]

    def by_names(stage: int, born: dt.date) -> None:
        if family:
            stages[stage].append(SearchCriteria(family=family[:3], birth_date=born))
        if given:
            stages[stage].append(SearchCriteria(given=given[:3], birth_date=born))

    if q.birth_date:
        by_names(0, q.birth_date)
    if year:
        if family:
            stages[1].append(SearchCriteria(family=family, birth_year=year))
        if given:
            stages[1].append(SearchCriteria(given=given, birth_year=year))
    if q.street and family and len(street_key(q.street)) >= 3:
        stages[1].append(SearchCriteria(family=family, street=q.street))
    d = q.birth_date
    if d and d.day != d.month and d.day <= 12:
        by_names(2, dt.date(d.year, d.day, d.month))
    if year and given:
        stages[2].append(SearchCriteria(family=given, birth_year=year))
    if d and (family or given):
        stages[LATE] += [SearchCriteria(family=family, birth_date=off) if family else
                         SearchCriteria(given=given, birth_date=off) for off in year_typos(d)]
    return [[c for c in stage if _valid(c)] for stage in stages]


@dataclass
class Gatherer:
    """Asks a chunk's searches through ``source``, stage by stage, within ``budget`` searches."""

    source: PersonSource
    budget: int
    request_id: str | None = None
    asked: int = 0  # searches asked
    too_broad: int = 0  # of them, answered TooManyHits (skipped)
    cut: int = 0  # searches left unasked because the budget was spent

    @classmethod
    def for_chunk(cls, source: PersonSource, records: int, request_id: str | None = None) -> Gatherer:
        return cls(source, CALLS_PER_RECORD * records, request_id)

    def numbers(self, queries: Iterable[IdentifyQuery]) -> None:
        """The persons holding a valid number one typing error from a record's unknown number."""
        near = sorted({n for q in queries if q.number for n in near_valid(q.number)})
        if near:
            self.source.ensure_numbers(near, request_id=self.request_id)

    def gather(self, queries: Iterable[IdentifyQuery]) -> None:
        """Every search of every query (and the near numbers first), stage by stage within the budget."""
        queries = list(queries)
        self.numbers(queries)
        for stage in range(STAGES):
            self.stage(stage, queries)

    def stage(self, stage: int, queries: Sequence[IdentifyQuery]) -> None:
        """Ask stage ``stage``'s searches of ``queries`` (each once), as many as the budget leaves."""
        wanted = list(dict.fromkeys(c for q in queries for c in identify_criteria(q)[stage]))
        room = max(0, self.budget - self.asked)
        self.cut += max(0, len(wanted) - room)
        wanted = wanted[:room]
        if not wanted:
            return
        self.asked += len(wanted)
        with ThreadPoolExecutor(min(PARALLEL, len(wanted))) as pool:
            for broad in pool.map(self._ask, wanted):
                self.too_broad += broad

    def _ask(self, c: SearchCriteria) -> bool:
        try:
            self.source.ensure_search(c, request_id=self.request_id)
        except TooManyHits:
            return True
        return False
