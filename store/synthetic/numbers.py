"""Which synthetic identity numbers the population has handed out, in memory that does not grow with it.

A fødselsnummer or D-nummer is a birth date plus an individnummer (three digits) plus two check digits, so
the numbers taken on one birth date fit in one 1,000-bit mask, and a whole population — 5.6 million persons
spread over about 37,000 birth dates — in a few megabytes, where a set of number strings would take several
hundred. Felles hjelpenumre (FH) carry no date and are few (~0.05 % of persons): they are kept in a set.

Only so many numbers exist per birth date and gender (about 200 in the series of most years: 500 or 600
individnumre, half of them per gender, five in six with valid check digits). :meth:`NumberBook.take`
draws at random; when many draws in a row are taken it lists what is left for that date and gender and
picks from it, and when nothing is left it raises :class:`NumbersExhausted` rather than draw forever.
"""

from __future__ import annotations

import random
from datetime import date

from store.identity import IdKind, InvalidIdentifier, generate, parse

__all__ = ["NumberBook", "NumbersExhausted"]

_RANDOM_TRIES = 64  # a date at most half full fails 64 draws in a row with probability 2**-64
# Check digits (Skatteetaten's modulus-11 rule): weights of digits 1–9 for K1 and of digits 1–10 for K2.
_W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


class NumbersExhausted(ValueError):
    """Every number of one kind, birth date and gender is taken (the population is too large for it)."""


def _with_check_digits(first9: str) -> str | None:
    k1 = -sum(w * int(d) for w, d in zip(_W1, first9, strict=True)) % 11
    if k1 == 10:
        return None
    k2 = -sum(w * int(d) for w, d in zip(_W2, first9 + str(k1), strict=True)) % 11
    return None if k2 == 10 else f"{first9}{k1}{k2}"


class NumberBook:
    """The numbers taken so far: a bitmask of individnumre per (kind, birth date), and a set for FH."""

    def __init__(self) -> None:
        self._taken: dict[tuple[IdKind, int], int] = {}
        self._fh: set[str] = set()

    def __len__(self) -> int:
        return len(self._fh) + sum(mask.bit_count() for mask in self._taken.values())

    def take(self, kind: IdKind, birth: int | None, rng: random.Random, female: bool | None = None) -> str:
        """A number of ``kind`` not taken before (``birth`` is a date ordinal; None for FH), now taken.

        Raises :class:`NumbersExhausted` when none is left for that birth date and gender.
        """
        if kind is IdKind.FH:
            while True:
                n = generate(kind, None, rng)
                if n not in self._fh:
                    self._fh.add(n)
                    return n
        if birth is None:
            raise ValueError(f"a {kind.value} number needs a birth date")
        day = date.fromordinal(birth)
        key = (kind, birth)
        mask = self._taken.get(key, 0)
        for _ in range(_RANDOM_TRIES):
            n = generate(kind, day, rng, female=female)
            bit = 1 << int(n[6:9])
            if not mask & bit:
                self._taken[key] = mask | bit
                return n
        free = self.free(kind, day, female)
        if not free:
            sex = "" if female is None else " female" if female else " male"
            raise NumbersExhausted(f"no unused synthetic {kind.value} number is left for birth date "
                                   f"{day.isoformat()}{sex}: the population is too large for one day")
        n = rng.choice(free)
        self._taken[key] = mask | 1 << int(n[6:9])
        return n

    def free(self, kind: IdKind, day: date, female: bool | None = None) -> list[str]:
        """Every valid synthetic number of ``kind`` for ``day`` (and gender) not taken yet, in order."""
        sample = generate(kind, day, random.Random(0))  # its first six digits: day and month as written
        mask = self._taken.get((kind, day.toordinal()), 0)
        out = []
        for individ in range(1000):
            if mask >> individ & 1 or female is not None and individ % 2 != int(not female):
                continue
            n = _with_check_digits(f"{sample[:6]}{individ:03d}")
            if n is None:
                continue
            try:
                parsed = parse(n)
            except InvalidIdentifier:
                continue
            if parsed.kind is kind and parsed.birth_date == day:
                out.append(n)
        return out
