"""store.identity: Skatteetaten's published vectors, one test per refusal reason, and round-trip properties.

Check digits are recomputed here from Skatteetaten's published weights (mod 11: 3 7 6 1 8 9 4 5 2 for the first
check digit, 5 4 3 2 7 6 5 4 3 2 for the second), independently of the module's lookup tables.
"""

from __future__ import annotations

import datetime
import pickle
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import identity
from store.identity import IdKind, InvalidIdentifier, Reason, Synthetic, generate, parse

W1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
W2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def k1_remainder(number: str) -> int:
    return (sum(w * int(d) for w, d in zip(W1, number[:9], strict=True)) + int(number[9])) % 11


def with_check_digits(nine: str, remainder: int = 0) -> str | None:
    """``nine`` + the K1 giving that K1 remainder + the one K2 that fits; None when a digit would be 10."""
    k1 = (remainder - sum(w * int(d) for w, d in zip(W1, nine, strict=True))) % 11
    if k1 == 10:
        return None
    ten = nine + str(k1)
    k2 = -sum(w * int(d) for w, d in zip(W2, ten, strict=True)) % 11
    return None if k2 == 10 else ten + str(k2)


def checked(date_digits: str) -> str:
    """A classic-rule number: six date digits, the first individnummer from 123 up that gives check digits."""
    return next(n for i in range(123, 1000) if (n := with_check_digits(f"{date_digits}{i:03d}")) is not None)


D = datetime.date
NONE, TENOR, NAV = Synthetic.NONE, Synthetic.SKATTEETATEN, Synthetic.NAV


# --- Skatteetaten's foedselsnummer.csv (research §4.2) and the Tenor D-numbers of §3.5 ---------------------

VALID = [
    # number, kind, synthetic, rule, birth_date, (day, month)
    ("30108299939", IdKind.FNR, NONE, "2032", None, (30, 10)),
    ("30908299902", IdKind.FNR, TENOR, "2032", None, (30, 10)),
    ("20036914700", IdKind.FNR, NONE, "classic", D(1969, 3, 20), (20, 3)),
    ("03851598730", IdKind.FNR, TENOR, "classic", D(2015, 5, 3), (3, 5)),
    ("29020073150", IdKind.FNR, NONE, "classic", D(2000, 2, 29), (29, 2)),
    ("55102499947", IdKind.DNR, NONE, "2032", None, (15, 10)),
    ("41819077906", IdKind.DNR, TENOR, "2032", None, (1, 1)),
    # individ 773 with year 90 exists only in the 2021 D-series extension (750-899 → 1940-1999)
    ("41819077302", IdKind.DNR, TENOR, "classic", D(1990, 1, 1), (1, 1)),
    # individ 610 with year 40: only the extension (600-999 → 1940-1999) fits; stdnum cannot tell
    ("41814061033", IdKind.DNR, TENOR, "classic", D(1940, 1, 1), (1, 1)),
    # individ 218 with year 00: 1900 (000-499) or 2000 (extension 200-499) → not derivable
    ("41810021827", IdKind.DNR, TENOR, "classic", None, (1, 1)),
]


@pytest.mark.parametrize(("number", "kind", "synthetic", "rule", "birth_date", "day_month"), VALID)
def test_published_valid_vectors(number, kind, synthetic, rule, birth_date, day_month):
    parsed = parse(number)
    assert parsed == identity.IdentityNumber(number, kind, synthetic, rule, birth_date, day_month)
    assert parsed.is_synthetic is (synthetic is not NONE)
    assert identity.is_valid(number)
    assert identity.classify(number) is kind


def test_2032_vector_fails_the_classic_rule_and_passes_the_new():
    assert k1_remainder("30108299939") == 1
    assert k1_remainder("55102499947") == 2


@pytest.mark.parametrize(
    ("number", "reason", "kind"),
    [
        # K1 remainder 1 would pass the 2032 rule, but K2 is wrong
        ("20036914712", Reason.CHECKSUM, IdKind.FNR),
        # check digits are right (classic); 29.02 in a year ending 01 is no date in any century
        ("29020105729", Reason.DATE, IdKind.FNR),
    ],
)
def test_published_invalid_vectors(number, reason, kind):
    with pytest.raises(InvalidIdentifier) as info:
        parse(number)
    assert (info.value.reason, info.value.number_kind) == (reason, kind)
    assert not identity.is_valid(number)


# --- one test per reason; messages never carry the number -----------------------------------------------


def assert_refused(number: str, reason: Reason, kind: IdKind | None, *, nav_synthetic: bool = False) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        parse(number, nav_synthetic=nav_synthetic)
    exc = info.value
    assert exc.reason is reason
    assert exc.number_kind is kind
    assert isinstance(exc, ValueError)
    message = str(exc)
    assert message
    if number.strip():
        assert number.strip() not in message
        assert number.strip()[:6] not in message  # not even the date part


@pytest.mark.parametrize("number", ["2003691470", "200369147000", "", "   "])
def test_reason_length(number):
    assert_refused(number, Reason.LENGTH, None)


@pytest.mark.parametrize("number", ["2003691470A", "20036 14700", "２００３６９１４７００", "+2003691470"])
def test_reason_not_digits(number):
    assert_refused(number, Reason.NOT_DIGITS, None)


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("20036914712", IdKind.FNR),
        ("20036914701", IdKind.FNR),  # K2 off by one
        ("20036914710", IdKind.FNR),  # K1 off by one: remainder 1 passes K1's 2032 rule, K2 then fails
        ("55102499948", IdKind.DNR),
    ],
)
def test_reason_checksum(number, kind):
    assert_refused(number, Reason.CHECKSUM, kind)


def test_reason_date_31_february():
    assert_refused(checked("310285"), Reason.DATE, IdKind.FNR)
    assert_refused(checked("710285"), Reason.DATE, IdKind.DNR)
    assert_refused(checked("310485"), Reason.DATE, IdKind.FNR)


@pytest.mark.parametrize(
    "date_digits",
    [
        "001085",  # day 00
        "321085",  # day 32
        "401085",  # day 40: D-nummer day 0
        "721085",  # day 72 (D-nummer day + 40 stops at 71)
        "150085",  # month 00
        "151385",  # month 13
        "152585",  # month 25: 3rd digit 2
        "156585",  # month 65: 3rd digit 6
        "159385",  # month 93
        "554585",  # D-nummer with month + 40: no family unless reading NAV's Dolly numbers
    ],
)
def test_reason_unknown_kind(date_digits):
    assert_refused(checked(date_digits), Reason.UNKNOWN_KIND, None)


def test_whitespace_around_is_stripped_but_inside_is_not():
    assert parse(" 20036914700\n").number == "20036914700"
    assert_refused("200369 14700", Reason.LENGTH, None)


def test_exception_pickles_with_its_reason():
    original = InvalidIdentifier(Reason.DATE, IdKind.DNR)
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.reason, copy.number_kind, str(copy)) == (Reason.DATE, IdKind.DNR, str(original))


# --- month + 40: H-nummer or NAV Dolly -------------------------------------------------------------------


def test_month_plus_40_is_h_number_unless_nav_synthetic_is_asked_for():
    number = checked("154585")
    h = parse(number)
    assert (h.kind, h.synthetic, h.day_month, h.birth_date) == (IdKind.HNR, NONE, (15, 5), D(1985, 5, 15))
    nav = parse(number, nav_synthetic=True)
    assert (nav.kind, nav.synthetic, nav.is_synthetic) == (IdKind.FNR, NAV, True)


def test_fh_numbers_are_held_to_the_classic_rule():
    classic = with_check_digits("812345678")
    assert classic is not None
    assert parse(classic).kind is IdKind.FH
    later = [with_check_digits("812345678", remainder) for remainder in (1, 2, 3)]
    assert any(later)
    for number in filter(None, later):
        assert_refused(number, Reason.CHECKSUM, IdKind.FH)


# --- properties -------------------------------------------------------------------------------------------

KINDS = st.sampled_from(
    [
        (IdKind.FNR, NONE),
        (IdKind.FNR, TENOR),
        (IdKind.FNR, NAV),
        (IdKind.DNR, NONE),
        (IdKind.DNR, TENOR),
        (IdKind.DNR, NAV),
        (IdKind.HNR, NONE),
        (IdKind.HNR, TENOR),  # HNR ignores the synthetic argument
    ]
)
BIRTH_DATES = st.dates(min_value=D(1854, 1, 1), max_value=D(2039, 12, 31))


@given(KINDS, BIRTH_DATES, st.none() | st.booleans(), st.integers(0, 2**64))
def test_generated_numbers_parse_back(kind_synthetic, birth_date, female, seed):
    kind, synthetic = kind_synthetic
    number = generate(kind, birth_date, random.Random(seed), synthetic=synthetic, female=female)
    parsed = parse(number, nav_synthetic=synthetic is NAV)
    expected_synthetic = NONE if kind is IdKind.HNR else synthetic
    assert (parsed.kind, parsed.synthetic, parsed.rule) == (kind, expected_synthetic, "classic")
    assert parsed.day_month == (birth_date.day, birth_date.month)
    if kind is IdKind.DNR:
        assert parsed.birth_date in (None, birth_date)  # the true century is always a candidate
    else:
        assert parsed.birth_date == birth_date
    if female is not None:
        assert int(number[8]) % 2 == (0 if female else 1)


@given(st.integers(0, 2**64))
def test_generated_fh_numbers(seed):
    number = generate(IdKind.FH, None, random.Random(seed))
    assert number[0] in "89"
    parsed = parse(number)
    assert (parsed.kind, parsed.synthetic, parsed.rule) == (IdKind.FH, NONE, "classic")
    assert parsed.birth_date is None
    assert parsed.day_month is None


@given(
    BIRTH_DATES,
    st.sampled_from([0, 40]),
    st.sampled_from([0, 40, 80]),
    st.integers(0, 999),
    st.booleans(),
)
def test_2032_rule_accepts_exactly_the_k1_with_remainder_0_to_3(date, day_off, month_off, individ, nav):
    nine = f"{date.day + day_off:02d}{date.month + month_off:02d}{date.year % 100:02d}{individ:03d}"
    nav = nav or (day_off == 40 and month_off == 40)
    accepted: dict[int, list[int]] = {}
    for k1 in range(10):
        for k2 in range(10):
            if identity.is_valid(f"{nine}{k1}{k2}", nav_synthetic=nav):
                accepted.setdefault(k1, []).append(k2)
    expected = {}
    for remainder in range(4):
        number = with_check_digits(nine, remainder)
        if number is not None:
            expected[int(number[9])] = [int(number[10])]
    assert accepted == expected
    assert len(accepted) <= 4
    for k1, (k2,) in accepted.items():
        rule = parse(f"{nine}{k1}{k2}", nav_synthetic=nav).rule
        assert rule == ("classic" if k1_remainder(f"{nine}{k1}{k2}") == 0 else "2032")


@given(st.text(alphabet="0123456789", min_size=11, max_size=11) | st.text(max_size=14), st.booleans())
def test_parse_refuses_only_with_invalid_identifier(number, nav):
    try:
        parsed = parse(number, nav_synthetic=nav)
    except InvalidIdentifier as exc:
        if len(number.strip()) >= 6:
            assert number.strip() not in str(exc)
    else:
        assert parsed.number == number.strip()
        assert identity.is_valid(number, nav_synthetic=nav)


def test_same_seed_same_numbers():
    def batch(seed: int) -> list[str]:
        rng = random.Random(seed)
        day = D(1987, 7, 14)
        return [generate(kind, day, rng) for kind in IdKind for _ in range(50)]

    assert batch(2024) == batch(2024)
    assert batch(2024) != batch(2025)


def test_generate_needs_a_birth_date_in_the_series_years():
    rng = random.Random(0)
    with pytest.raises(ValueError):
        generate(IdKind.FNR, None, rng)
    with pytest.raises(ValueError):
        generate(IdKind.DNR, D(1853, 12, 31), rng)
    with pytest.raises(ValueError):
        generate(IdKind.HNR, D(2040, 1, 1), rng)


def test_d_number_with_month_plus_40_needs_nav_synthetic():
    number = checked("554585")
    parsed = parse(number, nav_synthetic=True)
    assert (parsed.kind, parsed.synthetic, parsed.day_month) == (IdKind.DNR, NAV, (15, 5))


def test_leap_day_of_year_00_picks_the_century_where_it_exists():
    # D-nummer individ 300, year 00: 1900 (000-499) or 2000 (extension 200-499); 29.02 exists only in 2000
    d_number = with_check_digits("690200300")
    assert d_number is not None
    assert parse(d_number).birth_date == D(2000, 2, 29)
    # Fødselsnummer individ 300 reads 1900, where 29.02 does not exist. A number issued from 2032 may still
    # look like this (remainder 0, any individnummer), so it is valid, without a birth date.
    fnr = with_check_digits("290200300")
    assert fnr is not None
    parsed = parse(fnr)
    assert (parsed.rule, parsed.birth_date, parsed.day_month) == ("classic", None, (29, 2))


# -- numbers one typing error away ---------------------------------------------------------------------


def _near_by_brute_force(s: str) -> list[str]:
    subs = {s[:i] + c + s[i + 1 :] for i in range(11) for c in "0123456789"}
    swaps = {s[:i] + s[i + 1] + s[i] + s[i + 2 :] for i in range(10)}
    return sorted(n for n in (subs | swaps) - {s} if identity.is_valid(n))


@given(st.text("0123456789", min_size=11, max_size=11))
def test_near_valid_is_every_valid_number_one_typo_away(s: str) -> None:
    assert identity.near_valid(s) == _near_by_brute_force(s)


@given(st.integers(0, 2**32), st.sampled_from([IdKind.FNR, IdKind.DNR, IdKind.FH]), st.integers(0, 10),
       st.booleans())
def test_a_mistyped_number_has_the_true_one_among_its_near_valid_numbers(seed: int, kind: IdKind, pos: int,
                                                                        swap: bool) -> None:
    rng = random.Random(seed)
    true = generate(kind, datetime.date(1990, 1, 1) + datetime.timedelta(rng.randrange(9000)), rng)
    if swap:
        pos = min(pos, 9)
        typo = true[:pos] + true[pos + 1] + true[pos] + true[pos + 2 :]
    else:
        typo = true[:pos] + str((int(true[pos]) + 1 + rng.randrange(9)) % 10) + true[pos + 1 :]
    if typo != true:
        assert true in identity.near_valid(typo)


def test_near_valid_of_what_is_no_number() -> None:
    assert identity.near_valid("1234") == [] and identity.near_valid("1234567890x") == []


def test_near_valid_agrees_with_the_brute_force_near_valid_numbers() -> None:
    # random digit strings (the hypothesis test above) are seldom near a valid date; these are: every kind's
    # numbers (leap days, D-nummer, H-nummer, 2032 remainders, felles hjelpenummer) with one typing error, so
    # near_valid's own validity test (_valid_rest) meets every branch of parse's
    rng = random.Random(19)
    seen = 0
    for _ in range(1500):
        kind = rng.choice([IdKind.FNR, IdKind.DNR, IdKind.FH])
        true = generate(kind, datetime.date(1854, 1, 1) + datetime.timedelta(rng.randrange(66000)), rng)
        pos = rng.randrange(11)
        if rng.random() < 0.5 and pos < 10:
            typo = true[:pos] + true[pos + 1] + true[pos] + true[pos + 2 :]
        else:
            typo = true[:pos] + str(rng.randrange(10)) + true[pos + 1 :]
        for s in (typo, "".join(rng.choice("0123456789") for _ in range(11)), f"{rng.randrange(1, 32):02d}"
                  f"{rng.choice([2, 42, 82, 13, 52, 92]):02d}{rng.randrange(10**7):07d}"):
            near = identity.near_valid(s)
            assert near == _near_by_brute_force(s)
            seen += len(near)
    assert seen > 3000  # the test met valid numbers, not only empty answers
