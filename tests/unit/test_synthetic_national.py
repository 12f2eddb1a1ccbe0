"""The synthetic generator at national size (issue 19): identity numbers that run out with an error instead of
a loop, births spread over every day, a long tail of family and given names, and the compact resident lists
the registers are built from."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date

import pytest

from store.identity import IdKind, parse
from store.synthetic.names import FAMILY, FAMILY_NAMES, NamePicker, family_names, given_names
from store.synthetic.numbers import NumberBook, NumbersExhausted
from store.synthetic.places import Places
from store.synthetic.population import Builder
from store.synthetic.registers import Residents

SNAPSHOT = date(2026, 11, 20)


@pytest.mark.parametrize(("kind", "day", "female"), [
    (IdKind.FNR, date(1925, 1, 1), False),  # the day the old floor piled the oldest persons on
    (IdKind.FNR, date(2012, 6, 30), True),
    (IdKind.DNR, date(1961, 2, 28), False),
])
def test_a_day_runs_out_with_an_error_not_a_loop(kind: IdKind, day: date, female: bool) -> None:
    book, rng = NumberBook(), random.Random(5)
    everything = book.free(kind, day, female)
    assert 150 < len(everything) < 400
    taken = [book.take(kind, day.toordinal(), rng, female) for _ in everything]
    assert sorted(taken) == everything  # every valid number of the day and gender, each once
    for n in taken:
        parsed = parse(n)
        assert (parsed.kind, parsed.birth_date, int(n[8]) % 2 == 0) == (kind, day, female)
    with pytest.raises(NumbersExhausted, match=f"{kind.value} number is left for birth date {day.isoformat()}"):
        book.take(kind, day.toordinal(), rng, female)
    assert book.free(kind, day, not female)  # the other gender's numbers are still there
    assert book.take(kind, day.toordinal(), rng, not female) not in taken
    assert len(book) == len(taken) + 1


def test_fh_numbers_do_not_need_a_date_and_stay_unique() -> None:
    book, rng = NumberBook(), random.Random(1)
    numbers = {book.take(IdKind.FH, None, rng) for _ in range(500)}
    assert len(numbers) == 500 and all(parse(n).kind is IdKind.FH for n in numbers)
    with pytest.raises(ValueError, match="needs a birth date"):
        book.take(IdKind.FNR, None, rng)


def test_the_oldest_births_are_spread_over_many_days() -> None:
    builder = Builder(random.Random(3), Places(), SNAPSHOT, NumberBook())
    ten_years_ago = SNAPSHOT.toordinal() - 3653
    births = Counter(builder.birth_for_age(101, ten_years_ago) for _ in range(3_000))
    assert min(births) < date(1915, 1, 1).toordinal()  # no floor at 1925 any more
    assert len(births) > 300 and max(births.values()) < 30


def test_family_names_have_a_long_tail_with_the_commonest_at_about_one_percent() -> None:
    universe = family_names()
    assert len(universe) == len(set(universe)) == FAMILY_NAMES
    assert universe[:len(FAMILY)] == tuple(dict.fromkeys(FAMILY))
    assert all(n[0].isupper() and " " not in n for n in universe)
    picker = NamePicker(random.Random(11))
    draws = Counter(picker.family() for _ in range(200_000))
    top = draws.most_common(20)
    assert top[0][0] == "Hansen" and 0.008 < top[0][1] / 200_000 < 0.015
    assert 0.07 < sum(c for _, c in top) / 200_000 < 0.13  # the 20 commonest: about a tenth of persons
    assert len(draws) > 25_000  # tens of thousands of names in use
    assert sum(c for n, c in draws.items() if c <= 5) / 200_000 > 0.1  # and many rare ones


def test_given_names_by_cohort_with_a_modest_head() -> None:
    picker = NamePicker(random.Random(12))
    older = Counter(picker.given(False, 1955) for _ in range(50_000))
    newer = Counter(picker.given(False, 2015) for _ in range(50_000))
    assert older.most_common(1)[0][0] == "Jan" and newer.most_common(1)[0][0] == "Jakob"
    for counts in (older, newer):
        share = counts.most_common(1)[0][1] / 50_000
        assert 0.02 < share < 0.07
        doubles = sum(c for n, c in counts.items() if " " in n or "-" in n) / 50_000
        assert 0.08 < doubles < 0.2
        assert len(counts) > 1_000
    names, listed = given_names(True, True)
    assert len(names) == len(set(names)) and listed < len(names)


def test_residents_round_trip_compactly() -> None:
    here = Residents()
    here.add("01010112345", "2020-02-29")
    here.add("31129999999", "1999-12-31")
    assert len(here) == 2
    assert list(here) == [("01010112345", "2020-02-29"), ("31129999999", "1999-12-31")]
    assert here.numbers.itemsize == 8 and here.since.itemsize == 4
