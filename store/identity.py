"""Norwegian person identity numbers: fødselsnummer, D-nummer, H-nummer and felles hjelpenummer.

Our own code, not python-stdnum: ``stdnum.no.fodselsnummer`` knows only the classic check digit (numbers
issued under the 2032 rule fail), reads D-number centuries from the pre-2021 series (wrong since the 2021
D-series extension), rejects felles hjelpenumre and Skatteetaten's Tenor synthetic numbers (month + 80) and
rejects birth dates after today (research person-register.md §4.4). The rules are small; here they are:

- 11 digits ``DDMMYY III K1 K2``; ``III`` is the individnummer.
- First digit 0–3: fødselsnummer (FNR). 4–7: D-nummer (DNR, day + 40). 8–9: felles hjelpenummer (FH,
  nine random digits 800000000–999999999 and two check digits; no date, no gender).
- Month 41–52: organisation-internal H-nummer (HNR, month + 40) — or NAV's Dolly synthetic number, which
  looks the same; only a caller who knows it reads Dolly data passes ``nav_synthetic=True``. Month 81–92:
  Tenor synthetic (month + 80), FNR or DNR by the day. Days and months outside these ranges, and day + 40
  together with month + 40 when not reading Dolly data, fit no family (``Reason.UNKNOWN_KIND``).
- Check digits: K1 weights 3,7,6,1,8,9,4,5,2 over digits 1–9; K2 weights 5,4,3,2,7,6,5,4,3,2 over
  digits 1–10. Classic rule: (Σ + K1) mod 11 == 0. Numbers issued from 2032 (to people of any age) may
  have remainder 0–3, so up to four K1 values are valid; K2 stays mod 11 == 0. FH check digits are
  computed by NHN, one value each, so FH numbers are held to the classic rule only.
- The date must exist in some century: 29.02 needs a year divisible by 4 (00 counts, as 2000).

``birth_date`` is the pre-2032 century reading of the individnummer series (1854–1899: 500–749,
1900–1999: 000–499, 1940–1999: 900–999, 2000–2039: 500–999) and is given only for classic-rule numbers.
D-numbers also use 600–999 for 1940–1999 and 200–499 for 2000–2039 births (2021 extension), so their
series overlap: a D-number gets a birth date only when exactly one century matches a series and makes a
real date (individ 610, year 40 → 1940), else None. A number issued from 2032 whose K1 happens to give
remainder 0 looks classic, and its century reading may be wrong: the register's own birth date wins.
"""

from __future__ import annotations

import calendar
import datetime
import random
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "IdKind",
    "IdentityNumber",
    "InvalidIdentifier",
    "Reason",
    "Synthetic",
    "classify",
    "generate",
    "is_valid",
    "near_valid",
    "parse",
]


class IdKind(StrEnum):
    FNR = "fnr"  # fødselsnummer
    DNR = "dnr"  # D-nummer (day + 40)
    HNR = "hnr"  # H-nummer (month + 40), organisation-internal
    FH = "fh"  # felles hjelpenummer (first digit 8 or 9, no date)


class Synthetic(StrEnum):
    NONE = "none"
    SKATTEETATEN = "skatteetaten"  # Tenor: month + 80
    NAV = "nav"  # Dolly: month + 40 (collides with H-nummer; only when asked for)


class Reason(StrEnum):
    LENGTH = "length"  # not exactly 11 characters
    NOT_DIGITS = "notDigits"  # 11 characters but not all ASCII digits
    CHECKSUM = "checksum"  # K1 or K2 wrong
    DATE = "date"  # day/month form no valid date in any century
    UNKNOWN_KIND = "unknownKind"  # day or month digits fit no number family


_KIND_NAMES = {
    IdKind.FNR: "fødselsnummer",
    IdKind.DNR: "D-nummer",
    IdKind.HNR: "H-nummer",
    IdKind.FH: "felles hjelpenummer",
}
_MESSAGES = {
    Reason.LENGTH: "identity number must be 11 characters long",
    Reason.NOT_DIGITS: "identity number must be 11 digits 0-9",
    Reason.CHECKSUM: "check digits are wrong",
    Reason.DATE: "the date digits form no valid date",
    Reason.UNKNOWN_KIND: "the day or month digits fit no identity number family",
}


class InvalidIdentifier(ValueError):
    """Why a number was refused. The message never contains the number itself."""

    reason: Reason
    number_kind: IdKind | None  # the kind the number looked like, if known

    def __init__(self, reason: Reason, number_kind: IdKind | None = None) -> None:
        self.reason = reason
        self.number_kind = number_kind
        prefix = f"{_KIND_NAMES[number_kind]}: " if number_kind is not None else ""
        super().__init__(prefix + _MESSAGES[reason])

    def __reduce__(self) -> tuple[type[InvalidIdentifier], tuple[Reason, IdKind | None]]:
        return (type(self), (self.reason, self.number_kind))


@dataclass(frozen=True, slots=True)
class IdentityNumber:
    number: str
    kind: IdKind
    synthetic: Synthetic
    rule: str  # "classic" (K1 remainder 0) or "2032" (K1 remainder 1–3)
    birth_date: datetime.date | None  # only where the century is derivable, see the module docstring
    day_month: tuple[int, int] | None  # after removing the +40/+80 offsets; None for FH

    @property
    def is_synthetic(self) -> bool:
        return self.synthetic is not Synthetic.NONE


# Weighted digit sums of a three-digit group at digit positions 1–3, 4–6 and 7–9, for K1 and K2.
def _table(w: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(w[0] * (v // 100) + w[1] * (v // 10 % 10) + w[2] * (v % 10) for v in range(1000))


_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1, 0)  # K1 weights of digits 1–11 (K2 itself does not count)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)  # K2 weights of digits 1–11
_K1A, _K1B, _K1C = _table(_W1[0:3]), _table(_W1[3:6]), _table(_W1[6:9])
_K2A, _K2B, _K2C = _table(_W2[0:3]), _table(_W2[3:6]), _table(_W2[6:9])
_K2_WEIGHT_OF_K1 = _W2[9]
_DIGITS3 = tuple(f"{v:03d}" for v in range(1000))
_DIGITS2 = tuple(f"{v:02d}" for v in range(100))

# (individnummer low, high, first year, last year) of each series.
_Series = tuple[tuple[int, int, int, int], ...]
_FNR_SERIES: _Series = (
    (500, 749, 1854, 1899),
    (0, 499, 1900, 1999),
    (900, 999, 1940, 1999),
    (500, 999, 2000, 2039),
)
_DNR_SERIES: _Series = _FNR_SERIES + ((600, 999, 1940, 1999), (200, 499, 2000, 2039))
_MONTH_OFFSET = {Synthetic.NONE: 0, Synthetic.NAV: 40, Synthetic.SKATTEETATEN: 80}
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(month: int, leap: bool) -> int:
    return 29 if month == 2 and leap else _DAYS[month - 1]


def _birth_date(kind: IdKind, day: int, month: int, yy: int, individ: int) -> datetime.date | None:
    years = {
        y0 // 100 * 100 + yy
        for lo, hi, y0, y1 in (_DNR_SERIES if kind is IdKind.DNR else _FNR_SERIES)
        if lo <= individ <= hi and y0 <= y0 // 100 * 100 + yy <= y1
    }
    years = {y for y in years if day <= _days_in_month(month, calendar.isleap(y))}
    return datetime.date(years.pop(), month, day) if len(years) == 1 else None


def parse(number: str, *, nav_synthetic: bool = False) -> IdentityNumber:
    """Validate and classify ``number``; raise :class:`InvalidIdentifier` if it is no identity number.

    Surrounding whitespace is stripped; nothing else is forgiven. ``nav_synthetic=True`` reads month + 40
    as NAV's Dolly synthetic numbers instead of H-numbers.
    """
    s = number.strip()
    if len(s) != 11:
        raise InvalidIdentifier(Reason.LENGTH)
    if not (s.isascii() and s.isdigit()):
        raise InvalidIdentifier(Reason.NOT_DIGITS)
    a, b, c, k1, k2 = int(s[0:3]), int(s[3:6]), int(s[6:9]), ord(s[9]) - 48, ord(s[10]) - 48
    remainder1 = (_K1A[a] + _K1B[b] + _K1C[c] + k1) % 11
    k2_ok = (_K2A[a] + _K2B[b] + _K2C[c] + _K2_WEIGHT_OF_K1 * k1 + k2) % 11 == 0
    if a >= 800:
        if remainder1 != 0 or not k2_ok:
            raise InvalidIdentifier(Reason.CHECKSUM, IdKind.FH)
        return IdentityNumber(s, IdKind.FH, Synthetic.NONE, "classic", None, None)

    day, month = int(s[0:2]), int(s[2:4])
    kind = IdKind.FNR
    if 41 <= day <= 71:
        kind, day = IdKind.DNR, day - 40
    elif not 1 <= day <= 31:
        raise InvalidIdentifier(Reason.UNKNOWN_KIND)
    synthetic = Synthetic.NONE
    if 81 <= month <= 92:
        synthetic, month = Synthetic.SKATTEETATEN, month - 80
    elif 41 <= month <= 52:
        month -= 40
        if nav_synthetic:
            synthetic = Synthetic.NAV
        elif kind is IdKind.DNR:
            raise InvalidIdentifier(Reason.UNKNOWN_KIND)
        else:
            kind = IdKind.HNR
    elif not 1 <= month <= 12:
        raise InvalidIdentifier(Reason.UNKNOWN_KIND)

    if remainder1 > 3 or not k2_ok:
        raise InvalidIdentifier(Reason.CHECKSUM, kind)
    yy = int(s[4:6])
    if day > _days_in_month(month, yy % 4 == 0):
        raise InvalidIdentifier(Reason.DATE, kind)
    if remainder1 != 0:
        return IdentityNumber(s, kind, synthetic, "2032", None, (day, month))
    birth_date = _birth_date(kind, day, month, yy, c)
    return IdentityNumber(s, kind, synthetic, "classic", birth_date, (day, month))


def is_valid(number: str, *, nav_synthetic: bool = False) -> bool:
    try:
        parse(number, nav_synthetic=nav_synthetic)
    except InvalidIdentifier:
        return False
    return True


_INV11 = (0, 1, 6, 4, 3, 9, 2, 8, 7, 5, 10)  # multiplicative inverses mod 11 (index 0 unused)
_NEAR_MUL = tuple(-_INV11[w] % 11 for w in _W2)  # K2 sum s2 -> the change of digit i that cancels it: s2 * this


def near_valid(number: str) -> list[str]:
    """Every valid number one typing error away from ``number``: one digit different, or two neighbouring
    digits swapped (the errors check digits exist to catch). Sorted; ``number`` itself is left out.

    Used to identify a client record whose number fails the check digits (store.matching). Fast because
    the check-digit sums are linear: for a changed digit at position i the K2 condition fixes the change
    modulo 11, so each position has at most one candidate digit, and each candidate is then fully validated.
    """
    s = number.strip()
    if len(s) != 11 or not (s.isascii() and s.isdigit()):
        return []
    d = [ord(ch) - 48 for ch in s]
    s1 = sum(w * x for w, x in zip(_W1, d, strict=True)) % 11
    s2 = sum(w * x for w, x in zip(_W2, d, strict=True)) % 11
    out: set[str] = set()
    for i in range(11):
        delta = s2 * _NEAR_MUL[i] % 11  # the change of digit i that makes K2 hold (0: none)
        new = d[i] + delta
        if new > 9:
            new -= 11  # the same change modulo 11, downwards; -1 is no digit
        if delta and new >= 0:
            r1 = (s1 + _W1[i] * (new - d[i])) % 11
            if r1 <= 3:
                n = s[:i] + chr(48 + new) + s[i + 1 :]
                if _valid_rest(n, r1):
                    out.add(n)
    for i in range(10):
        delta = d[i + 1] - d[i]
        if delta and (s2 + (_W2[i] - _W2[i + 1]) * delta) % 11 == 0:
            r1 = (s1 + (_W1[i] - _W1[i + 1]) * delta) % 11
            if r1 <= 3:
                n = s[:i] + s[i + 1] + s[i] + s[i + 2 :]
                if _valid_rest(n, r1):
                    out.add(n)
    out.discard(s)
    return sorted(out)


def _valid_rest(s: str, remainder1: int) -> bool:
    """:func:`is_valid` of 11 ASCII digits ``s`` whose K2 check holds and whose K1 remainder is ``remainder1``
    (at most 3): :func:`parse`'s remaining tests (kind, month, day), without its exception and result. A
    near number's candidates are validated by this, at a fifth of ``is_valid``'s cost (identification of a
    mistyped number in a wash; tests/unit/test_identity.py compares near_valid with a brute force over
    is_valid)."""
    if s[0] >= "8":  # a >= 800: felles hjelpenummer
        return remainder1 == 0
    day, month = int(s[0:2]), int(s[2:4])
    dnr = 41 <= day <= 71
    if dnr:
        day -= 40
    elif not 1 <= day <= 31:
        return False
    if 81 <= month <= 92:
        month -= 80
    elif 41 <= month <= 52:
        if dnr:
            return False
        month -= 40
    elif not 1 <= month <= 12:
        return False
    return day <= _days_in_month(month, int(s[4:6]) % 4 == 0)


def classify(number: str, *, nav_synthetic: bool = False) -> IdKind:
    """The kind of ``number``; raises :class:`InvalidIdentifier` like :func:`parse`."""
    return parse(number, nav_synthetic=nav_synthetic).kind


# Individnummer draw per birth year: lo + randrange(count), then + jump when at or past jump_from.
def _individ_draw(year: int) -> tuple[int, int, int, int]:
    if 1854 <= year <= 1899:
        return 500, 250, 1000, 0
    if 1900 <= year <= 1939:
        return 0, 500, 1000, 0
    if 1940 <= year <= 1999:
        return 0, 600, 500, 400  # 000–499 and 900–999
    if 2000 <= year <= 2039:
        return 500, 500, 1000, 0
    raise ValueError("no individnummer series for birth years outside 1854-2039")


def generate(
    kind: IdKind,
    birth_date: datetime.date | None,
    rng: random.Random,
    *,
    synthetic: Synthetic = Synthetic.SKATTEETATEN,
    female: bool | None = None,
) -> str:
    """Make a valid classic-rule number of ``kind``, deterministic for a given ``rng`` state.

    FNR, DNR and HNR need ``birth_date`` and draw an individnummer from the series of its year; ``female``
    (when given) makes the third individ digit even (female) or odd (male). ``synthetic`` adds 80
    (SKATTEETATEN) or 40 (NAV) to the month of FNR and DNR; HNR always adds 40 and is never synthetic.
    FH ignores ``birth_date``, ``synthetic`` and ``female``.
    """
    randrange = rng.randrange
    if kind == IdKind.FH:
        while True:
            base = randrange(800_000_000, 1_000_000_000)
            a, bc = divmod(base, 1_000_000)
            b, c = divmod(bc, 1000)
            k1 = -(_K1A[a] + _K1B[b] + _K1C[c]) % 11
            k2 = -(_K2A[a] + _K2B[b] + _K2C[c] + _K2_WEIGHT_OF_K1 * k1) % 11
            if k1 != 10 and k2 != 10:
                return _DIGITS3[a] + _DIGITS3[b] + _DIGITS3[c] + _DIGITS2[k1 * 10 + k2]
    if birth_date is None:
        raise ValueError(f"generate({kind.value!r}) needs a birth_date")
    lo, count, jump_from, jump = _individ_draw(birth_date.year)
    day = birth_date.day + (40 if kind == IdKind.DNR else 0)
    month = birth_date.month + (40 if kind == IdKind.HNR else _MONTH_OFFSET[synthetic])
    a, b = day * 10 + month // 10, month % 10 * 100 + birth_date.year % 100
    s1, s2 = _K1A[a] + _K1B[b], _K2A[a] + _K2B[b]
    head = _DIGITS3[a] + _DIGITS3[b]
    while True:
        c = lo + randrange(count)
        if c >= jump_from:
            c += jump
        if female is not None:
            c = c & ~1 | int(not female)
        k1 = -(s1 + _K1C[c]) % 11
        k2 = -(s2 + _K2C[c] + _K2_WEIGHT_OF_K1 * k1) % 11
        if k1 != 10 and k2 != 10:
            return head + _DIGITS3[c] + _DIGITS2[k1 * 10 + k2]
