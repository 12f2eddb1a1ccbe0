"""KRK, the contact register of the kommuneoverlege function: its file format, its rules, its queries.

What the register holds follows NHN's published description of it ("Har lansert kontaktregister for
kommunelegefunksjonen", nhn.no: an extension of the Grunndata business register) and its service contract
(``IKrkService``, NorskHelsenett/NHNDtoContracts, ``Krk/``, as of commit 6a0e3d1c):

* one **contact** per kommune, and optionally per **bydel** — bydel entries exist only in Oslo, Bergen,
  Trondheim, Stavanger and Drammen; a bydel anywhere else is refused;
* the **fylke** is never stored: it is derived from the kommune (the 2024 regional reform, store/geo.py);
* a **generic e-mail address and phone number** of the function (not a person's: an address shaped like
  ``firstname.lastname@`` or a mobile number is accepted with a warning), and an optional **nødnett
  number** (ISSI, a TETRA subscriber identity: 1–16777215);
* the HPR numbers of the doctors registered on the contact;
* an **inter-municipal arrangement**: a kommune-level contact covers its own kommune and may cover
  others, which then have no contact of their own.

File format (docs/krk.md): UTF-8 CSV with ``;`` separators and the header
``kommune;bydel;bydelsnavn;epost;telefon;nodnett;hpr;dekker``; ``hpr`` and ``dekker`` (the other kommuner
covered) are space-separated lists; empty lines and lines starting with ``#`` are skipped. Every bad line
gets its own message (:class:`Problem`, naming the line and the column, never the value); a file with
an error changes nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from sqlalchemy import Connection, Engine, delete, insert, select

from store import geo
from store import schema as s
from store.normalize import name_key, name_tokens

__all__ = [
    "BYDEL_KOMMUNER",
    "HEADER",
    "Contact",
    "KrkEntry",
    "KrkHit",
    "LoadResult",
    "Problem",
    "areas_for_hpr",
    "hpr_for_area",
    "load_krk_file",
    "parse_krk",
    "save_entries",
    "search",
]

HEADER: Final = ("kommune", "bydel", "bydelsnavn", "epost", "telefon", "nodnett", "hpr", "dekker")
# the five cities whose kommuneoverlege function may be registered per bydel (NHN's description)
BYDEL_KOMMUNER: Final = {"0301": "Oslo", "4601": "Bergen", "5001": "Trondheim", "1103": "Stavanger",
                         "3301": "Drammen"}
# bydeler of those cities that store/geo.py has no name for: Drammen's (no public list in our sources)
# and Stavanger's 08 and 09 (from 2020). The file must name them.
_NAMED_IN_FILE: Final = {"3301": frozenset(f"{i:02d}" for i in range(1, 100)), "1103": frozenset({"08", "09"})}
_MAX_ISSI: Final = 2**24 - 1
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
# local parts (or their words) that name a function, not a person
_GENERIC_WORDS: Final = frozenset({
    "post", "postmottak", "kommuneoverlege", "kommuneoverlegen", "kommunelege", "kommunelegen", "smittevern",
    "smittevernlege", "legevakt", "helse", "helsetjenesten", "helsetjeneste", "samfunnsmedisin", "beredskap",
    "kontakt", "kommune", "overlege", "lege", "firmapost", "sentralbord", "servicetorg", "mottak", "info",
    "folkehelse", "miljoretta", "miljorettet", "helsevern", "tjenester", "tjeneste",
})


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    level: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.level}: {self.message}"


@dataclass(frozen=True, slots=True)
class KrkEntry:
    """One contact of the file: a kommune's (``bydel`` None) or a bydel's."""

    line: int
    kommune: str
    bydel: str | None
    bydel_name: str | None
    email: str
    phone: str
    issi: str | None
    hpr: tuple[str, ...]
    covers: tuple[str, ...] = ()

    @property
    def area(self) -> str:
        return self.bydel or self.kommune


@dataclass
class LoadResult:
    contacts: int = 0
    covered: int = 0
    removed: list[str] = field(default_factory=list)  # areas whose contact the file replaced by coverage


def _normal_phone(text: str) -> str | None:
    digits = re.sub(r"[\s-]", "", text)
    for prefix in ("+47", "0047"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 8:
            digits = digits[len(prefix):]
    return digits if len(digits) == 8 and digits.isascii() and digits.isdigit() else None


def _looks_personal(email: str) -> bool:
    """A local part of two or more name-like words (``kari.nordmann``), none of them a function word."""
    local = email.partition("@")[0].lower()
    words = [w for w in re.split(r"[._-]+", local) if w]
    if len(words) < 2 or any(not w.isalpha() for w in words):
        return False
    return not any(name_key(w).replace(" ", "") in _GENERIC_WORDS for w in words)


def _bydel_name(kommune: str, number: str, given: str | None, line: int,
                problems: list[Problem]) -> str | None:
    if kommune not in BYDEL_KOMMUNER:
        problems.append(Problem(line, "error", "bydel: a bydel is allowed only in Oslo, Bergen, Trondheim, "
                                               "Stavanger and Drammen"))
        return None
    if len(number) != 6 or not number.isdigit() or number[:4] != kommune:
        problems.append(Problem(line, "error", "bydel: not a bydelsnummer of this kommune (6 digits, the "
                                               "kommunenummer and two more)"))
        return None
    known = geo.bydel(number)
    if known is not None:
        if given and name_key(given) != name_key(known.navn):
            problems.append(Problem(line, "warning", "bydelsnavn: differs from the register's name of this "
                                                     "bydel, which is used"))
        return known.navn
    if number[4:] in _NAMED_IN_FILE.get(kommune, frozenset()):
        if not given:
            problems.append(Problem(line, "error", "bydelsnavn: required for this bydel (the project's "
                                                   "geography has no name for it)"))
            return None
        return given
    problems.append(Problem(line, "error", "bydel: no such bydel in this kommune"))
    return None


def _entry(line: int, row: dict[str, str], problems: list[Problem]) -> KrkEntry | None:
    errors_before = sum(p.level == "error" for p in problems)
    kommune = row["kommune"]
    if geo.kommune(kommune) is None:
        problems.append(Problem(line, "error", "kommune: not a kommunenummer valid from 2024-01-01"))
        return None
    bydel = row["bydel"] or None
    bydel_name = _bydel_name(kommune, bydel, row["bydelsnavn"] or None, line, problems) if bydel else None
    email = row["epost"]
    if not email:
        problems.append(Problem(line, "error", "epost: required (the function's generic address)"))
    elif not _EMAIL.match(email):
        problems.append(Problem(line, "error", "epost: not an e-mail address"))
    elif _looks_personal(email):
        problems.append(Problem(line, "warning", "epost: looks like a person's address; the register wants "
                                                 "the function's generic address"))
    phone = _normal_phone(row["telefon"]) if row["telefon"] else None
    if not row["telefon"]:
        problems.append(Problem(line, "error", "telefon: required (the function's generic number)"))
    elif phone is None:
        problems.append(Problem(line, "error", "telefon: not a Norwegian phone number (8 digits, +47 allowed)"))
    elif phone[0] in "49":
        problems.append(Problem(line, "warning", "telefon: a mobile number; the register wants the "
                                                 "function's generic number"))
    issi = row["nodnett"] or None
    if issi is not None and not (issi.isascii() and issi.isdigit() and 0 < int(issi) <= _MAX_ISSI):
        problems.append(Problem(line, "error", f"nodnett: not an ISSI (a number from 1 to {_MAX_ISSI})"))
    hpr = tuple(row["hpr"].split())
    if any(not (h.isascii() and h.isdigit() and 0 < int(h) <= 2**31 - 1) for h in hpr):
        problems.append(Problem(line, "error", "hpr: not a list of HPR numbers"))
    covers = tuple(row["dekker"].split())
    if covers and bydel:
        problems.append(Problem(line, "error", "dekker: only a kommune's contact covers other kommuner"))
    for other in covers:
        if geo.kommune(other) is None:
            problems.append(Problem(line, "error", "dekker: names a number that is not a 2024 kommunenummer"))
            break
        if other == kommune:
            problems.append(Problem(line, "error", "dekker: names the contact's own kommune"))
            break
    if sum(p.level == "error" for p in problems) > errors_before:
        return None
    assert phone is not None
    return KrkEntry(line, kommune, bydel, bydel_name, email, phone, issi, tuple(dict.fromkeys(hpr)),
                    tuple(dict.fromkeys(covers)))


def parse_krk(text: str) -> tuple[list[KrkEntry], list[Problem]]:
    """The entries of a KRK file and every problem found (errors and warnings, by line)."""
    problems: list[Problem] = []
    entries: list[KrkEntry] = []
    text = text.removeprefix("\ufeff")
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return [], [Problem(0, "error", "the file has no header line")]
    header_line, header = lines[0]
    names = tuple(c.strip().lower() for c in header.split(";"))
    if names != HEADER:
        return [], [Problem(header_line, "error", "the header must be exactly: " + ";".join(HEADER))]
    for n, line in lines[1:]:
        cells = next(csv.reader(io.StringIO(line), delimiter=";"))
        if len(cells) != len(HEADER):
            problems.append(Problem(n, "error", f"{len(cells)} columns; {len(HEADER)} expected"))
            continue
        entry = _entry(n, dict(zip(HEADER, (c.strip() for c in cells), strict=True)), problems)
        if entry is not None:
            entries.append(entry)
    _check_together(entries, problems)
    return entries, problems


def _check_together(entries: Sequence[KrkEntry], problems: list[Problem]) -> None:
    """Rules across lines: an area once; a kommune covered once; a covered kommune has no contact of its own."""
    seen: dict[str, int] = {}
    covered_by: dict[str, int] = {}
    for e in entries:
        if e.area in seen:
            problems.append(Problem(e.line, "error", f"the same kommune or bydel as line {seen[e.area]}"))
        seen.setdefault(e.area, e.line)
        for k in e.covers:
            if k in covered_by:
                problems.append(Problem(e.line, "error", f"dekker: a kommune is covered by line {covered_by[k]} "
                                                         "too"))
            covered_by.setdefault(k, e.line)
    for e in entries:
        if e.bydel is None and e.kommune in covered_by:
            problems.append(Problem(e.line, "error", f"this kommune is covered by line {covered_by[e.kommune]}; "
                                                     "a covered kommune has no contact of its own"))
        if e.bydel is not None and e.kommune in covered_by:
            problems.append(Problem(e.line, "error", f"this kommune is covered by line {covered_by[e.kommune]}; "
                                                     "its bydeler have no contact of their own"))


def save_entries(conn: Connection, entries: Iterable[KrkEntry], *, replace: bool,
                 now: dt.datetime | None = None) -> LoadResult:
    """Write checked entries: the whole register (``replace``) or an update by kommune/bydel.

    In an update, a kommune the file covers leaves the arrangement it was in; if it had a contact of its
    own, that contact (and its bydeler's) is removed (``LoadResult.removed``); a kommune that gets its own
    contact leaves the arrangement that covered it.
    """
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    entries = list(entries)
    result = LoadResult()
    if replace:
        for table in (s.krk_hpr, s.krk_coverage, s.krk_contact):
            conn.execute(delete(table))
    else:
        areas = [e.area for e in entries]
        taken = sorted({k for e in entries for k in e.covers})
        gone = conn.execute(select(s.krk_contact.c.area).where(
            s.krk_contact.c.kommune.in_(taken))).scalars().all() if taken else []
        result.removed = sorted(set(gone) - set(areas))
        for chunk in _chunks(sorted(set(areas) | set(gone))):
            conn.execute(delete(s.krk_hpr).where(s.krk_hpr.c.area.in_(chunk)))
            conn.execute(delete(s.krk_coverage).where(s.krk_coverage.c.area.in_(chunk)))
            conn.execute(delete(s.krk_contact).where(s.krk_contact.c.area.in_(chunk)))
        own = sorted({e.kommune for e in entries if e.bydel is None} | set(taken))
        for chunk in _chunks(own):
            conn.execute(delete(s.krk_coverage).where(s.krk_coverage.c.kommune.in_(chunk)))
    contacts = [{"area": e.area, "kommune": e.kommune, "bydel": e.bydel, "bydel_name": e.bydel_name,
                 "email": e.email, "phone": e.phone, "issi": e.issi, "updated_at": now} for e in entries]
    coverage = [{"kommune": k, "area": e.area} for e in entries if e.bydel is None for k in (e.kommune, *e.covers)]
    hpr = [{"area": e.area, "hpr_number": h} for e in entries for h in e.hpr]
    for table, rows in ((s.krk_contact, contacts), (s.krk_coverage, coverage), (s.krk_hpr, hpr)):
        if rows:
            conn.execute(insert(table), rows)
    result.contacts, result.covered = len(contacts), len(coverage)
    return result


def load_krk_file(engine: Engine, path: Path, *, replace: bool) -> tuple[LoadResult | None, list[Problem]]:
    """Check a KRK file and, when it has no error, write it in one transaction. Returns the result (None when
    nothing was written) and every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None, [Problem(0, "error", "the file is not UTF-8")]
    entries, problems = parse_krk(text)
    if any(p.level == "error" for p in problems):
        return None, problems
    with engine.begin() as conn:
        return save_entries(conn, entries, replace=replace), problems


def _chunks(items: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# -- queries --------------------------------------------------------------------------------------------


def areas_for_hpr(conn: Connection, hpr_number: int) -> list[str]:
    """The kommuner and bydeler where the doctor takes part: the contacts' areas and the kommuner they cover."""
    areas = conn.execute(select(s.krk_hpr.c.area).where(s.krk_hpr.c.hpr_number == str(hpr_number))).scalars().all()
    if not areas:
        return []
    covered = conn.execute(select(s.krk_coverage.c.kommune).where(s.krk_coverage.c.area.in_(areas))).scalars().all()
    return sorted(set(areas) | set(covered))


def hpr_for_area(conn: Connection, area: str) -> list[str]:
    """HPR numbers of the doctors of a kommune (its own contact, or the one covering it) or of a bydel (its
    own contact; else the kommune's)."""
    target = area
    if len(area) == 6:
        found = conn.execute(select(s.krk_contact.c.area).where(s.krk_contact.c.area == area)).scalar()
        if found is not None:
            return _hpr_of(conn, area)
        target = area[:4]
    host = conn.execute(select(s.krk_coverage.c.area).where(s.krk_coverage.c.kommune == target)).scalar()
    return _hpr_of(conn, host) if host is not None else []


def _hpr_of(conn: Connection, area: str) -> list[str]:
    rows = conn.execute(select(s.krk_hpr.c.hpr_number).where(s.krk_hpr.c.area == area)).scalars().all()
    return sorted(rows, key=int)


@dataclass(frozen=True, slots=True)
class Contact:
    area: str
    kommune: str
    bydel: str | None
    bydel_name: str | None
    email: str
    phone: str
    issi: str | None


@dataclass(frozen=True, slots=True)
class KrkHit:
    """One SearchResult: a kommune, its fylke, the kommuner of its arrangement and its contacts."""

    kommune: geo.Kommune
    covered: tuple[geo.Kommune, ...]
    contacts: tuple[Contact, ...]


def _matching_kommuner(term: str) -> list[geo.Kommune]:
    """Kommuner whose number starts with the digits asked (2: a fylke, 4: a kommune, 6: a bydel's kommune), or
    whose kommune, fylke or bydel name has a word starting with each word asked."""
    text = term.strip()
    if text.isascii() and text.isdigit():
        prefix = text[:4]
        return [k for k in geo.kommuner() if k.nummer.startswith(prefix)]
    words = name_tokens(text)
    if not words:
        return []

    def matches(name: str) -> bool:
        have = name_tokens(name)
        return all(any(h.startswith(w) for h in have) for w in words)

    out = []
    for k in geo.kommuner():
        names = [k.navn, k.fylkesnavn, *(b.navn for b in geo.bydeler(k.nummer))]
        if any(matches(n) for n in names):
            out.append(k)
    return out


def search(conn: Connection, term: str, *, limit: int = 400) -> list[KrkHit]:
    """SearchKommuneOverlegeInfo: one hit per kommune matched, in kommunenummer order."""
    kommuner = _matching_kommuner(term)[:limit]
    if not kommuner:
        return []
    numbers = [k.nummer for k in kommuner]
    host_of = dict(conn.execute(select(s.krk_coverage.c.kommune, s.krk_coverage.c.area)
                                .where(s.krk_coverage.c.kommune.in_(numbers))).all())
    hosts = sorted(set(host_of.values()))
    members: dict[str, list[str]] = {}
    for kommune, area in conn.execute(select(s.krk_coverage.c.kommune, s.krk_coverage.c.area)
                                      .where(s.krk_coverage.c.area.in_(hosts))):
        members.setdefault(area, []).append(kommune)
    rows = conn.execute(select(s.krk_contact).where(
        s.krk_contact.c.area.in_(hosts) | s.krk_contact.c.kommune.in_(numbers))).mappings().all()
    contacts = {r["area"]: Contact(r["area"], r["kommune"], r["bydel"], r["bydel_name"], r["email"], r["phone"],
                                   r["issi"]) for r in rows}
    hits = []
    for k in kommuner:
        host = host_of.get(k.nummer)
        own = [c for c in contacts.values() if c.kommune == k.nummer and c.bydel is not None]
        main = [contacts[host]] if host in contacts else []
        covered = tuple(g for g in (geo.kommune(n) for n in sorted(members.get(host or "", []))) if g is not None)
        hits.append(KrkHit(k, covered, tuple(main + sorted(own, key=lambda c: c.area))))
    return hits
