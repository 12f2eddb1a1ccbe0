"""Stage 1 of the pipeline: clean one client record into typed values and input problems.

Nothing is guessed: a value that does not parse is dropped and its problem noted (``birth:format``),
so the record can still be washed on what is left. Identity numbers are checked by
:func:`store.identity.parse` (check digits, date, kind); a failure is noted with the typed reason
(``number:checksum``, ``number:length``, …), never with the number.

Accepted spellings:

- numbers: digits with any spaces inside (``010180 12345``);
- dates: ``YYYY-MM-DD``, ``DD.MM.YYYY``, ``DDMMYYYY``; ``00`` for an unknown day (or day and month)
  keeps the year, and so does a bare ``YYYY``;
- gender: ``K``/``F``/``kvinne``/``female`` and ``M``/``mann``/``male`` (any case);
- street: a name followed by a house number and letter (``Storgata 12 B``) — split for comparison;
- postnummer: four digits.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from filematch.records import InputRecord
from store.identity import InvalidIdentifier, parse

__all__ = ["CleanRecord", "check_number", "clean", "parse_date", "split_street"]

_GENDERS = {"k": "kvinne", "f": "kvinne", "kvinne": "kvinne", "female": "kvinne", "w": "kvinne",
            "m": "mann", "mann": "mann", "male": "mann"}
_GENDERS.update({k.upper(): v for k, v in _GENDERS.items()})  # K, M as files usually spell them
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_COMPACT = re.compile(r"^(\d{2})(\d{2})(\d{4})$")
_YEAR = re.compile(r"^(\d{4})$")
_STREET = re.compile(r"^(.*?)[\s,]*(\d+)\s*([A-Za-z]?)$")
_MIN_YEAR = 1850
_THIS_YEAR = dt.date.today().year  # a long-running server's year is refreshed by the general path below


@dataclass(slots=True)
class CleanRecord:
    """A record's typed values. ``number`` is set only when valid; ``problems`` lists what was refused."""

    source: InputRecord
    number: str | None = None
    given: str = ""
    family: str = ""
    birth_date: dt.date | None = None
    birth_year: int | None = None
    gender: str | None = None
    street: str = ""
    postnummer: str | None = None
    kommune: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def identifiable(self) -> bool:
        """Enough demographics to identify the person without a number: two of a name (given or family), a
        birth date or year, and an address (postnummer, street or kommune); a missing one is neutral."""
        return sum((bool(self.given or self.family), bool(self.birth_date or self.birth_year),
                    bool(self.postnummer or self.street or self.kommune))) >= 2


def parse_date(text: str) -> tuple[dt.date | None, int | None]:
    """(date, year) of a birth date in an accepted spelling; ValueError if it is none of them."""
    s = text.strip()
    if len(s) == 10 and s[4] == "-" and s[7] == "-" and s.isascii():  # the common case, parsed in C
        try:
            iso = dt.date.fromisoformat(s)
        except ValueError:
            pass  # e.g. a day that does not exist: the general path below says which problem it is
        else:
            if _MIN_YEAR <= iso.year <= _THIS_YEAR:
                return iso, iso.year
    m = _ISO.match(s)
    if m:
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    else:
        m = _DOTTED.match(s) or _COMPACT.match(s)
        if m:
            d, mo, y = int(m[1]), int(m[2]), int(m[3])
        else:
            m = _YEAR.match(s)
            if not m:
                raise ValueError("format")
            d, mo, y = 0, 0, int(m[1])
    if not _MIN_YEAR <= y <= dt.date.today().year:
        raise ValueError("year")
    if d == 0 or mo == 0:
        return None, y
    return dt.date(y, mo, d), y  # ValueError for a day or month that does not exist


def split_street(text: str) -> tuple[str, str]:
    """('Storgata', '12B') of 'Storgata 12 B'; (text, '') when there is no house number."""
    s = " ".join(text.split())
    m = _STREET.match(s)
    if not m or not m[1]:
        return s, ""
    return m[1], (m[2] + m[3]).upper()


def check_number(c: CleanRecord) -> None:
    """Validate ``c.number`` (:func:`store.identity.parse`): an invalid one is dropped and its typed
    problem noted (``number:checksum`` …)."""
    if c.number:
        try:
            c.number = parse(c.number).number
        except InvalidIdentifier as exc:
            c.number = None
            c.problems.insert(0, f"number:{exc.reason.value}")  # first, wherever it is checked


def clean(rec: InputRecord, *, validate_number: bool = True) -> CleanRecord:
    """The record cleaned. With ``validate_number=False`` the number is only stripped of spaces and the
    caller validates it with :func:`check_number` when it needs to: the wash looks numbers up first and
    validates only those the store does not know (every stored number was validated when stored).

    Written for a wash's every record (the common values — a plain number, an ISO birth date, a known
    gender, a four-digit postnummer — are tested first and the record built once, positionally); the
    rules are those of the module docstring."""
    n = rec.number
    problems: list[str] = []
    birth_date: dt.date | None = None
    birth_year: int | None = None
    birth = rec.birth
    if len(birth) == 10 and birth[4] == "-" and birth[7] == "-" and birth.isascii():  # ISO, parsed in C
        try:
            birth_date = dt.date.fromisoformat(birth)
        except ValueError:
            pass
        else:
            birth_year = birth_date.year
            if not _MIN_YEAR <= birth_year <= _THIS_YEAR:
                birth_date = birth_year = None
    if birth_date is None and birth.strip():
        try:
            birth_date, birth_year = parse_date(birth)
        except ValueError as exc:
            problems.append(f"birth:{'format' if str(exc) in ('format', 'year') else 'date'}")
    gender = rec.gender
    if gender:
        g = _GENDERS.get(gender) or _GENDERS.get(gender.strip().lower())
        if g is None and gender.strip():
            problems.append("gender:format")
    else:
        g = None
    pn: str | None = rec.postnummer
    if pn:
        if not (len(pn) == 4 and pn.isascii() and pn.isdigit()):
            pn = pn.strip()
            if not (len(pn) == 4 and pn.isascii() and pn.isdigit()):
                if pn:
                    problems.append("postnummer:format")
                pn = None
    else:
        pn = None
    km: str | None = rec.kommune
    if km:
        km = km.strip()
        if km:
            if not (km.isdigit() and len(km) == 4):
                km = None
                problems.append("kommune:format")
        else:
            km = None
    else:
        km = None
    c = CleanRecord(rec, (n if n.isdigit() else "".join(n.split())) or None, " ".join(rec.given.split()),
                    " ".join(rec.family.split()), birth_date, birth_year, g, " ".join(rec.street.split()), pn, km,
                    problems)
    if validate_number:
        check_number(c)
    return c
