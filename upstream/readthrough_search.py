"""Searches in read-through mode (issue 18, item 2): the register's candidates stored, the face's own search after.

In read-through mode the store holds only the persons this site asked about, so a search (PREG searchPerson,
HL7 PDQ, Filematch identification by demographics) first asks Persontjenesten's ``search/person`` for its
candidates, stores every hit through the writer the sync uses (upstream.mapping → store.document →
the repository's ``save_prepared``: the document and every derived table), and the face then runs its own
search and scoring on the store — its scores, limits, TooManyHits and continuation stay its own.

**Criteria → search/person form fields** (:func:`search_form`). The form must find at least every person the
store's search (store/search.py) would find, so each criterion is sent in the form whose matching is *wider*
than the store's, and the store narrows it again:

==================  =====================================  ==========================================================
criterion           form field                             why that one
==================  =====================================  ==========================================================
family name         ``FamilyName`` (its words)             the store's block is "family key starts with the words":
                                                           the API's prefix of the whole family name
given name, name    ``FullName`` (first three words used)  the store matches a given word against *any* word of
of unknown role                                            given + middle name: FullName's "start of any part"
birth date / year   ``BirthDate`` ``YYYY-MM-DD`` / ``YYYY``
gender              ``Gender`` ``Female`` / ``Male``
kommune             ``MunicipalityNumber``                 the API matches residential, present and shared-residence
                                                           addresses; the store the primary one of them
postnummer          ``PostalCode``
street              ``StreetAddress``: the street's first  the store compares normalised street keys (``Kirkevn.`` =
                    word, cut where its key leaves the     ``Kirkeveien``); the API a prefix of "street number
                    store's (``Kirkevn.`` → ``Kirkev``)    letter"
==================  =====================================  ==========================================================

Name and street values are sent as the caller gave them (the API allows letters, white space and hyphens: a
value is cut before any other character). **Not expressed upstream, left to the store's search:** the
store's normalisation (``Aasen`` = ``Åsen``, ``Oedegaard`` = ``Ødegård``, accents dropped, a hyphen as a
word break) — the API finds only what its own matching finds, so such a spelling may miss a person a replica
finds; and address visibility (access profiles) — the store's search applies it to what was stored.

**Below the API's minimum** (a name of three letters and a birth date, a kommune or a street): a search by
name and postnummer alone is valid for the store but not for the API. It is not sent; the store's answer
from the persons it already holds stands.

**The 100-hit cap.** search/person answers at most :data:`UPSTREAM_MAX` persons. An answer that reaches the
cap may be cut short, so a search that does not give a gender is asked again once per gender (two more
calls); if an answer still reaches the cap, nothing is stored and :class:`~store.errors.TooManyHits` is
raised: the face answers "too many hits, narrow the search" (a replica with a limit above 100 would have
listed them; docs/upstream.md).

**Identification** (filematch/gather.py): a Filematch record's names, birth date and street become several
searches the API accepts, staged as :func:`store.matching.identify`'s blocking passes are; the pipeline asks a
stage's searches for a whole chunk through the read-through source (which calls this module) before scoring
it, within a bound on upstream calls per chunk.

Errors of the client (``UpstreamError``: unavailable, refused) propagate: the read-through source counts them
for its circuit breaker and turns them into ``store.source.SourceUnavailable``. Logs name counts only, never
a criterion's value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, Engine

from store.engine import write_transaction
from store.errors import InvalidInput, TooManyHits
from store.feed import write_lock
from store.loading import record_reject
from store.normalize import name_key, street_key
from store.repository import PersonRepository
from store.search import SearchCriteria
from upstream.bulk import map_answers
from upstream.errors import UpstreamUnavailable
from upstream.parts import ELEMENT_PARTS, information_parts
from upstream.spec import BULK_MAX
from upstream.sync import _settle_numbers

__all__ = ["UPSTREAM_MAX", "SearchClient", "search_form", "search_into_store", "store_answers"]

log = logging.getLogger("upstream.readthrough")

UPSTREAM_MAX = BULK_MAX  # persons one search/person answer holds at most (the contract's page)
ALL_PARTS = information_parts(ELEMENT_PARTS)
_GENDER = {"kvinne": "Female", "mann": "Male"}
_ORIGIN, _FILE = "read-through", "search/person"


class SearchClient(Protocol):
    def search_persons(self, criteria: Mapping[str, str], parts: Sequence[str], include_history: bool = False,
                       include_ain: bool = False) -> list[dict[str, Any]]: ...


# -- criteria → form ---------------------------------------------------------------------------------------


def _allowed(value: str) -> str:
    """``value`` up to its first character the API's name pattern refuses (letters, white space, hyphen)."""
    for i, ch in enumerate(value):
        if not (ch.isalpha() or ch.isspace() or ch == "-"):
            return value[:i].strip()
    return value.strip()


def _letters(value: str) -> int:
    return sum(1 for ch in value if ch.isalpha())


def _street(street: str) -> str | None:
    """The longest start of the street's first word whose key is a start of the store's street key."""
    key = street_key(street)
    word = _letters_prefix(street.strip().split()[0]) if street.strip() else ""
    for i in range(len(word), 2, -1):
        if key.startswith(name_key(word[:i]).replace(" ", "")):
            return word[:i]
    return None


def _letters_prefix(word: str) -> str:
    out = []
    for ch in word:
        if not ch.isalpha():
            break
        out.append(ch)
    return "".join(out)


def search_form(c: SearchCriteria) -> dict[str, str] | None:
    """search/person's form fields for criteria the store's search accepts (module docstring's table); None
    when the API's minimum criteria cannot be met (the search is then not sent)."""
    form: dict[str, str] = {}
    if c.family:
        family = _allowed(c.family)
        if family:
            form["FamilyName"] = family
    words = [w for w in (_allowed(v) for v in (c.given, c.full_name) if v) if w]
    if words:
        form["FullName"] = " ".join(words)
    if c.birth_date:
        form["BirthDate"] = c.birth_date.isoformat()
    elif c.birth_year:
        form["BirthDate"] = f"{c.birth_year:04d}"
    if c.gender in _GENDER:
        form["Gender"] = _GENDER[c.gender]
    if c.kommune:
        form["MunicipalityNumber"] = c.kommune
    if c.postnummer:
        form["PostalCode"] = c.postnummer
    if c.street:
        street = _street(c.street)
        if street:
            form["StreetAddress"] = street
    names = sum(_letters(form.get(k, "")) for k in ("FamilyName", "FullName"))
    place = "BirthDate" in form or "MunicipalityNumber" in form or _letters(form.get("StreetAddress", "")) >= 3
    return form if names >= 3 and place else None


# -- storing -----------------------------------------------------------------------------------------------


def write_answers(conn: Connection, persons: Sequence[dict[str, Any]], *, operation: str) -> tuple[list[int], int]:
    """Map, validate and write Persontjenesten persons in ``conn``'s transaction (which holds the store's write
    lock), as the sync does: every derived table, ceased numbers settled; a person that breaks a rule goes to
    ``reject`` (origin ``read-through``, file the API ``operation``). Returns (the stored persons' ids, in the
    order given, each once; the number rejected). The one writer of read-through mode: lookups by number
    (upstream.readthrough) and searches."""
    answers = [(raw["id"], raw) for raw in persons if isinstance(raw.get("id"), str) and raw["id"]]
    if not answers:
        return [], 0
    mapped = map_answers(answers)
    ids = PersonRepository(conn).save_prepared([(p, None) for p in mapped.persons]) if mapped.persons else []
    _settle_numbers(conn, [n for group in mapped.settle for n in group])
    for person_id, reason, raw in mapped.rejects:
        record_reject(conn, origin=_ORIGIN, file=operation, line=None, key=person_id[:64], reason=reason, raw=raw)
    if mapped.rejects:
        log.warning("read-through: %d person(s) of an answer of %s rejected (see pregbridge rejects)",
                    len(mapped.rejects), operation)
    return list(dict.fromkeys(ids)), len(mapped.rejects)


def store_answers(engine: Engine, persons: Sequence[dict[str, Any]]) -> list[int]:
    """:func:`write_answers` of a search's persons in one short write transaction; the stored persons' ids."""
    if not persons:
        return []
    with write_transaction(engine) as conn:
        write_lock(conn)
        return write_answers(conn, persons, operation=_FILE)[0]


# -- the search --------------------------------------------------------------------------------------------


def _ask(client: SearchClient, form: Mapping[str, str], parts: Sequence[str], ends: float) -> list[dict[str, Any]]:
    if time.monotonic() >= ends:
        raise UpstreamUnavailable("Persontjenesten: search/person was not asked, the deadline had passed")
    return client.search_persons(form, parts, include_history=True, include_ain=True)


def search_into_store(client: SearchClient, engine: Engine, criteria: SearchCriteria, *, request_id: str | None,
                      deadline: float, parts: Sequence[str] = ALL_PARTS) -> list[int]:
    """Ask search/person for the criteria's candidates, store them, return their ids in the store.

    ``deadline`` is the seconds the search may take: no call starts after it has passed (UpstreamUnavailable);
    each call is bounded by the client's own deadline (the read-through source's ``lookup_deadline``), so a search
    split by gender (three calls) ends within about three of them at worst. Criteria the store's search refuses,
    or below the API's minimum, are not sent (``[]``: the face's own search then answers or refuses). An answer
    at the cap that a split by gender cannot bring under it raises TooManyHits with nothing stored."""
    try:
        criteria.validate()
    except InvalidInput:
        return []
    form = search_form(criteria)
    if form is None:
        log.debug("read-through search %s: below search/person's minimum criteria, not sent", request_id or "-")
        return []
    ends = time.monotonic() + deadline
    hits = _ask(client, form, parts, ends)
    calls = 1
    if len(hits) >= UPSTREAM_MAX:
        if "Gender" in form:
            raise _too_broad()
        hits = []
        for gender in _GENDER.values():
            part = _ask(client, {**form, "Gender": gender}, parts, ends)
            calls += 1
            if len(part) >= UPSTREAM_MAX:
                raise _too_broad()
            hits += part
    ids = store_answers(engine, hits)
    log.info("read-through search %s: %d call(s), %d person(s) stored", request_id or "-", calls, len(ids))
    return ids


def _too_broad() -> TooManyHits:
    return TooManyHits(f"more than {UPSTREAM_MAX} persons match in Persontjenesten; add criteria", limit=UPSTREAM_MAX)
