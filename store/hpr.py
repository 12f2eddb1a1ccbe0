"""HPR (Helsepersonellregisteret) queries, and what a record says at a point in time.

Records are ``hpr_person`` documents (docs/registers.md, ``hpr.jsonl``). Lookups go through the columns
store/registers.py fills (HPR number, fødselsnummer, name keys, birth date, last update) and through
``hpr_approval`` (approval id, category); no query scans the table.

**Validity at a time** (:func:`at`): HPR v2's ``påTidspunkt`` asks for the register as it stood at that
moment. A record seen at a time keeps the approvals (Godkjenninger) whose ``valid`` period holds that
day, and inside each the specialities and requisition rights valid that day and the suspensions in force
that day. A period holds a day ``d`` when ``from <= d`` and (``to`` is null or ``d <= to``). The whole
record with its history is :func:`get` without :func:`at` (``HentPersonMedHistorikk``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, and_, func, or_, select

from store import schema as s
from store.normalize import family_key, name_key

__all__ = ["KEY_LAYOUT", "HprQuery", "approval", "at", "by_nin", "changed", "get", "get_many", "holds", "key_columns",
           "search"]

Doc = dict[str, Any]

#: The layout of :func:`key_columns` (store.derived records it as ``layout.hpr_person``). ``h1``: the keys
#: migration 0013 and the loads before migration 0020 wrote, with the name key that dropped the e after an ø
#: (Løen → lon); ``h2``: today's name key (Løen → loeen).
KEY_LAYOUT = "h2"


def key_columns(doc: Mapping[str, Any]) -> dict[str, str | None]:
    """The name-key columns of an ``hpr_person`` row, from its document (the search's family and given name
    keys, at most 200 characters; None where the name is missing or not a string)."""
    family, given = doc.get("familyName"), doc.get("givenName")
    return {"family_key": (family_key(family)[:200] or None) if isinstance(family, str) else None,
            "given_key": (name_key(given)[:200] or None) if isinstance(given, str) else None}


def holds(period: Mapping[str, Any] | None, day: dt.date) -> bool:
    """Whether a ``{from, to}`` period (dates, ``to`` null for open) holds ``day``."""
    if not period:
        return False
    start, end = period.get("from"), period.get("to")
    if start is None or str(start)[:10] > day.isoformat():
        return False
    return end is None or str(end)[:10] >= day.isoformat()


def at(doc: Mapping[str, Any], when: dt.datetime | dt.date) -> Doc:
    """The record as it stood on ``when``'s day (module docstring)."""
    day = when.date() if isinstance(when, dt.datetime) else when
    approvals = []
    for a in doc.get("approvals") or ():
        if not holds(a.get("valid"), day):
            continue
        approvals.append(dict(
            a,
            specialities=[x for x in a.get("specialities") or () if holds(x.get("valid"), day)],
            requisitionRights=[x for x in a.get("requisitionRights") or () if holds(x.get("valid"), day)],
            suspensions=[x for x in a.get("suspensions") or () if holds(x.get("period"), day)],
        ))
    return dict(doc, approvals=approvals)


def _docs(conn: Connection, query: Select[Any]) -> list[Doc]:
    return [dict(d) for d in conn.execute(query).scalars()]


def get(conn: Connection, hpr_number: int) -> Doc | None:
    found = _docs(conn, select(s.hpr_person.c.doc).where(s.hpr_person.c.hpr_number == str(hpr_number)))
    return found[0] if found else None


def get_many(conn: Connection, numbers: Iterable[int]) -> dict[int, Doc]:
    wanted = sorted({str(n) for n in numbers})
    out: dict[int, Doc] = {}
    for i in range(0, len(wanted), 500):
        rows = conn.execute(select(s.hpr_person.c.hpr_number, s.hpr_person.c.doc)
                            .where(s.hpr_person.c.hpr_number.in_(wanted[i:i + 500])))
        out.update((int(n), dict(d)) for n, d in rows)
    return out


def by_nin(conn: Connection, nin: str) -> Doc | None:
    """The record of a fødselsnummer or D-nummer (the lowest HPR number if several name it)."""
    found = _docs(conn, select(s.hpr_person.c.doc).where(s.hpr_person.c.nin == nin)
                  .order_by(func.length(s.hpr_person.c.hpr_number), s.hpr_person.c.hpr_number).limit(1))
    return found[0] if found else None


def approval(conn: Connection, approval_id: int) -> tuple[Doc, Doc] | None:
    """``(record, approval)`` of an approval id."""
    number = conn.execute(select(s.hpr_approval.c.hpr_number)
                          .where(s.hpr_approval.c.approval_id == approval_id).limit(1)).scalar()
    doc = get(conn, int(number)) if number is not None else None
    if doc is None:
        return None
    for a in doc.get("approvals") or ():
        if a.get("id") == approval_id:
            return doc, dict(a)
    return None


@dataclass(frozen=True, slots=True)
class HprQuery:
    """The Søkeparametre filters the store answers (ANDed); ``None`` = not asked."""

    hpr_number: int | None = None
    nin: str | None = None
    given: str | None = None  # word prefixes of the given name(s)
    family: str | None = None  # prefix of the family name
    name: str | None = None  # every word a prefix of a given or family name word
    birth_date: dt.date | None = None
    gender: str | None = None  # Kjønn code value (3101)
    categories: tuple[str, ...] = ()  # Helsepersonellkategorier (9060 values), any of
    changed_from: dt.datetime | None = None  # SistEndretPeriode
    changed_to: dt.datetime | None = None
    page: int = 1
    page_size: int = 100


def _filtered(q: HprQuery) -> Select[Any]:
    p = s.hpr_person.c
    query = select(p.hpr_number)
    if q.hpr_number is not None:
        query = query.where(p.hpr_number == str(q.hpr_number))
    if q.nin is not None:
        query = query.where(p.nin == q.nin)
    if q.family:
        key = family_key(q.family)
        query = query.where(p.family_key >= key, p.family_key < key + "\x7f")
    if q.given:
        key = name_key(q.given)
        query = query.where(p.given_key >= key, p.given_key < key + "\x7f")
    if q.name:
        words = name_key(q.name).split()
        query = query.where(or_(*(and_(p.family_key >= w, p.family_key < w + "\x7f") for w in words)))
    if q.birth_date is not None:
        query = query.where(p.birth_date == q.birth_date)
    if q.changed_from is not None:
        query = query.where(p.last_updated >= q.changed_from)
    if q.changed_to is not None:
        query = query.where(p.last_updated <= q.changed_to)
    if q.categories:
        query = query.where(p.hpr_number.in_(select(s.hpr_approval.c.hpr_number)
                                             .where(s.hpr_approval.c.category.in_(q.categories))))
    return query


def _name_matches(doc: Mapping[str, Any], words: Sequence[str]) -> bool:
    have = name_key(" ".join(str(doc.get(k) or "") for k in ("givenName", "middleName", "familyName"))).split()
    return all(any(h.startswith(w) for h in have) for w in words)


def _gender_matches(doc: Mapping[str, Any], value: str) -> bool:
    gender = doc.get("gender")
    return isinstance(gender, Mapping) and str(gender.get("value")) == value


def search(conn: Connection, q: HprQuery) -> tuple[int, list[Doc]]:
    """``(total, page of records)`` ordered by HPR number. ``name`` selects the records whose family name
    starts with one of its words (indexed), then keeps those where every word starts a name word;
    ``gender`` is checked on the records the other filters selected."""
    numbers = sorted(conn.execute(_filtered(q)).scalars(), key=lambda n: (len(n), n))
    start = (max(q.page, 1) - 1) * q.page_size
    if not q.name and q.gender is None:
        page = numbers[start:start + q.page_size]
        docs = get_many(conn, [int(n) for n in page])
        return len(numbers), [docs[int(n)] for n in page if int(n) in docs]
    words = name_key(q.name).split() if q.name else []
    matched: list[Doc] = []
    total = 0
    for i in range(0, len(numbers), 500):
        docs = get_many(conn, [int(n) for n in numbers[i:i + 500]])
        for n in numbers[i:i + 500]:
            doc = docs.get(int(n))
            if doc is None or (words and not _name_matches(doc, words)) or (
                    q.gender is not None and not _gender_matches(doc, q.gender)):
                continue
            if start <= total < start + q.page_size:
                matched.append(doc)
            total += 1
    return total, matched


def changed(conn: Connection, since: dt.datetime, until: dt.datetime, page: int, page_size: int
            ) -> tuple[int, list[Doc]]:
    """Records last updated in ``[since, until]`` (UTC), a page of them in update order."""
    p = s.hpr_person.c
    where = and_(p.last_updated >= since, p.last_updated <= until)
    total = int(conn.execute(select(func.count()).select_from(s.hpr_person).where(where)).scalar() or 0)
    docs = _docs(conn, select(p.doc).where(where).order_by(p.last_updated, p.hpr_number)
                 .offset((max(page, 1) - 1) * page_size).limit(page_size))
    return total, docs
