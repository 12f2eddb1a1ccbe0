"""The wash's fast paths against their references (session 9, issue 19's wash target).

- ``filematch.pipeline._found_plain`` (a record found by its number, under a release that shows every
  element and leaves an unprotected address unmasked) against ``_found``, the general path it replaces for
  that case: the same population and client file washed with ``pipeline._FAST`` on and off give the same
  bytes in every format, for every built-in and custom profile, with every protection level of the person
  and of the address, deaths, emigrants, replaced numbers, moved and renamed persons, mistyped numbers
  (identified by demographics) and broken lines;
- ``filematch.clean.clean`` against the code it replaced (kept below verbatim as ``_clean_reference``), on
  hostile spellings of every field and on random text (hypothesis).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

import filematch.pipeline as pipeline
from filematch.clean import _GENDERS, CleanRecord, check_number, clean, parse_date
from filematch.formats import FORMATS
from filematch.formats.text import TextOptions
from filematch.local import wash_file
from filematch.records import Code, InputRecord
from filematch.testdata import numbered_records, persons
from server.access import BUILTIN_PROFILES, AccessProfile
from server.http.filematch import release_of
from store.engine import read_connection
from tests.integration.test_filematch_release import (  # persons at every protection level
    _protect,
    loaded_population,
)

PROFILES = [
    *BUILTIN_PROFILES.values(),
    AccessProfile("navnOgAdresse", "*", frozenset({"name", "addresses"}), "klientadresse"),
    AccessProfile("alleUgradert", "*", frozenset({"identifiers", "name", "birth", "gender", "status", "death",
                                                  "addresses", "protection"}), "ugradert"),
    AccessProfile("utenAdresse", "*", frozenset({"identifiers", "name", "status", "gender"}), "fortrolig"),
]


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, list[InputRecord]]]:
    engine, path = loaded_population(tmp_path_factory.mktemp("washfast"), 1500, 31)
    # current, ceased and mistyped numbers (numbered_records: 3 % fail their check digits: identified)
    records = list(numbered_records(path, 1500, seed=5, valid=0.80, ceased=0.08, invalid=0.08))
    by_ref = {r.ref.split("-")[0]: r for r in records}
    for doc in persons(path):  # every ceased number too
        rec = by_ref.get(f"T{next((i['number'] for i in doc['identifiers'] if i['status'] == 'iBruk'), '')}")
        for old in (i["number"] for i in doc["identifiers"] if i["status"] != "iBruk"):
            if rec is not None:
                records.append(dataclasses.replace(rec, seq=len(records) + 1, number=old))
    _protect(engine, records)
    rng = random.Random(8)
    donors = [r for r in records if r.street]
    for r in records:  # the client's register is out of date, or spelt otherwise, here and there
        roll = rng.random()
        if roll < 0.10:
            other = rng.choice(donors)
            r.street, r.postnummer = other.street, other.postnummer
            if roll < 0.03:
                r.family = other.family
        elif roll < 0.18:
            r.family = rng.choice(donors).family
        elif roll < 0.24:
            r.given = rng.choice(donors).given
        elif roll < 0.28:
            r.street = r.street.upper().replace(" ", "  ")
        elif roll < 0.31:
            r.given, r.family = f" {r.given.lower()} ", r.family.upper()
        elif roll < 0.33:
            r.birth, r.gender, r.postnummer = f" {r.birth} ", " k ", f"{r.postnummer} "
        elif roll < 0.35:
            r.birth, r.postnummer, r.kommune = "1971-02-30", "12a4", "03x1"
        elif roll < 0.37:
            r.street, r.postnummer, r.given = "", "", ""
        elif roll < 0.38:
            r.number = f"{r.number[:6]} {r.number[6:]}"
    records.append(InputRecord(len(records) + 1, ref="broken", error="line 9 has 3 fields, expected 9"))
    yield engine, records
    engine.dispose()


def _answers(engine: Engine, records: list[InputRecord], profile: AccessProfile | None,
             fast: bool) -> dict[str, bytes]:
    release = pipeline.UNMASKED if profile is None else release_of(profile)
    saved = pipeline._FAST
    pipeline._FAST = fast
    try:
        with read_connection(engine) as conn:
            results = [r for k in range(0, len(records), 400)
                       for r in pipeline.wash(conn, records[k : k + 400], release).results]
    finally:
        pipeline._FAST = saved
    options = TextOptions()
    return {name: fmt.header(options) + fmt.encode(results, options) + fmt.footer(options)
            for name, fmt in FORMATS.items()}


def test_the_file_has_every_case(population: tuple[Engine, list[InputRecord]]) -> None:
    engine, records = population
    with read_connection(engine) as conn:
        res = pipeline.wash(conn, records)
    codes = {r.code for r in res.results}
    assert {Code.UNCHANGED, Code.UPDATED, Code.REPLACED, Code.PROTECTED, Code.DECEASED, Code.EMIGRATED,
            Code.IDENTIFIED, Code.INVALID} <= codes
    assert {r.protection for r in res.results} >= {"0", "4", "7", "6"}
    assert {r.changed for r in res.results} >= {"name", "address", "name,address"}
    assert any(r.reason.startswith("birth:") for r in res.results)
    assert any("postnummer:format" in r.reason for r in res.results)
    assert sum(r.code is Code.UNCHANGED for r in res.results) > len(records) // 3  # the fast path's case


@pytest.mark.parametrize("profile", [None, *PROFILES], ids=lambda p: p.name if p else "unmasked")
def test_the_fast_path_answers_what_the_reference_answers(population: tuple[Engine, list[InputRecord]],
                                                         profile: AccessProfile | None) -> None:
    engine, records = population
    fast, reference = _answers(engine, records, profile, True), _answers(engine, records, profile, False)
    for name in FORMATS:
        assert fast[name] == reference[name], name


def test_the_fast_path_is_taken(population: tuple[Engine, list[InputRecord]], monkeypatch: pytest.MonkeyPatch
                                ) -> None:
    """(The equivalence above would also hold if the fast path were never taken.)"""
    engine, records = population
    calls: list[int] = []
    general = pipeline._found

    def counted(*a: object) -> object:
        calls.append(1)
        return general(*a)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "_found", counted)
    with read_connection(engine) as conn:
        res = pipeline.wash(conn, records)
    plain = sum(r.code in (Code.UNCHANGED, Code.UPDATED) for r in res.results)
    assert plain > 500 and len(calls) < len(records) - plain


def test_the_fast_path_on_addresses_without_a_street_or_house(population: tuple[Engine, list[InputRecord]]
                                                             ) -> None:
    """An address given as lines (no street: a post box, an address abroad) or a street without a house number,
    which the client spells exactly as the answer would: the reference answers UPDATED for the one (its
    address cannot be compared) and UNCHANGED for the other."""
    from store import brief as b
    from store.wash import find_briefs

    engine, records = population
    with read_connection(engine) as conn:
        found = find_briefs(conn, [r.number for r in records if r.number])
    compared = 0
    for rec in records:
        f = found.get(rec.number)
        if f is None or not f[b.ADDR_TYPE]:
            continue
        for street, house in (("", ""), (f[b.STREET], ""), ("", f[b.HOUSE])):
            g = list(f)
            g[b.STREET], g[b.HOUSE] = street, house
            g[b.ADDR_LINE] = f"{street} {house}".strip() if street else "Postboks 12, Sentrum"
            r = dataclasses.replace(rec, street=g[b.ADDR_LINE], postnummer=f[b.POSTNUMMER])
            c = clean(r, validate_number=False)
            for release in (pipeline.UNMASKED, release_of(BUILTIN_PROFILES["full"])):
                assert pipeline._found_plain(c, g, release) == pipeline._found(c, g, release)
            compared += 1
    assert compared > 1000


def test_a_local_wash_file_is_the_same(population: tuple[Engine, list[InputRecord]], tmp_path: Path) -> None:
    engine, records = population
    src = tmp_path / "in.csv"
    fields = ["ref", "number", "given", "family", "birth", "gender", "street", "postnummer", "poststed", "kommune"]
    src.write_text(";".join(fields) + "\n" + "".join(
        ";".join(getattr(r, f).replace(";", " ") for f in fields) + "\n" for r in records if not r.error),
        encoding="utf-8")
    out: dict[bool, bytes] = {}
    for fast in (True, False):
        saved, pipeline._FAST = pipeline._FAST, fast
        try:
            path = tmp_path / f"out-{fast}.csv"
            with path.open("wb") as f:
                wash_file(engine, src, f, FORMATS["csv"], chunk_size=300)
            out[fast] = path.read_bytes()
        finally:
            pipeline._FAST = saved
    assert out[True] == out[False]
    assert out[True].count(b"\n") == sum(1 for r in records if not r.error) + 1


# -- clean against the code it replaced -------------------------------------------------------------------

def _clean_reference(rec: InputRecord, *, validate_number: bool = True) -> CleanRecord:
    """filematch.clean.clean before session 9 (verbatim but for the names)."""
    c = CleanRecord(rec, given=" ".join(rec.given.split()), family=" ".join(rec.family.split()),
                    street=" ".join(rec.street.split()))
    n = rec.number
    c.number = (n if n.isdigit() else "".join(n.split())) or None
    if validate_number:
        check_number(c)
    if rec.birth.strip():
        try:
            c.birth_date, c.birth_year = parse_date(rec.birth)
        except ValueError as exc:
            c.problems.append(f"birth:{'format' if str(exc) in ('format', 'year') else 'date'}")
    if rec.gender:
        c.gender = _GENDERS.get(rec.gender) or _GENDERS.get(rec.gender.strip().lower())
        if c.gender is None and rec.gender.strip():
            c.problems.append("gender:format")
    pn = rec.postnummer.strip()
    if pn:
        if len(pn) == 4 and pn.isascii() and pn.isdigit():
            c.postnummer = pn
        else:
            c.problems.append("postnummer:format")
    km = rec.kommune.strip()
    if km:
        c.kommune = km if km.isdigit() and len(km) == 4 else None
        if c.kommune is None:
            c.problems.append("kommune:format")
    return c


HOSTILE = {
    "number": ["", "01018012345", "010180 12345", " 01018012345 ", "0101801234", "abc", "٠١٠١٨٠١٢٣٤٥", "\t"],
    "birth": ["", "1980-01-01", " 1980-01-01 ", "1980-02-30", "1849-01-01", f"{dt.date.today().year + 1}-01-01",
              "01.01.1980", "1.1.1980", "01011980", "1980", "1980-00-00", "2011-W01-2", "19800101", "x" * 10,
              "1980-01-1 ", " 980-01-01", "１９８０-01-01", "1980-01-01\n"],
    "gender": ["", "K", "k", " m ", "kvinne", "MANN", "x", " ", "Female"],
    "postnummer": ["", "0150", " 0150", "0150 ", "150", "01500", "01a0", "٠١٥٠", " ", "\t0150\t"],
    "kommune": ["", "0301", " 0301 ", "301", "03a1", "٠٣٠١", " "],
    "given": ["", "Kari", " Kari  Anne ", "kari\tanne", "\u00a0Kari"],
    "family": ["", "Nordmann", "NORD  MANN", " "],
    "street": ["", "Storgata 1", " Storgata  1 B ", "\n"],
}


def _same(rec: InputRecord) -> None:
    for validate in (True, False):
        assert dataclasses.asdict(clean(rec, validate_number=validate)) == dataclasses.asdict(
            _clean_reference(rec, validate_number=validate)), rec


def test_clean_is_the_reference_on_hostile_spellings() -> None:
    rng = random.Random(3)
    for field, values in HOSTILE.items():
        for v in values:
            _same(dataclasses.replace(InputRecord(1, ref="r", number="01018012345", birth="1980-01-01"), **{field: v}))
    for _ in range(3000):
        _same(InputRecord(1, "r", **{f: rng.choice(v) for f, v in HOSTILE.items()}))


_TEXT = st.text(alphabet=st.sampled_from("0123456789-. \t\nkKmM\u00a0٠x/"), max_size=12)


@settings(max_examples=400, deadline=None)
@given(number=_TEXT, birth=_TEXT, gender=_TEXT, postnummer=_TEXT, kommune=_TEXT, street=_TEXT)
def test_clean_is_the_reference_on_random_text(number: str, birth: str, gender: str, postnummer: str,
                                               kommune: str, street: str) -> None:
    _same(InputRecord(1, "r", number, "Kari", "Nordmann", birth, gender, street, postnummer, "", kommune))


def test_a_birth_date_check_is_the_module_rule() -> None:
    assert clean(InputRecord(1, birth="1849-12-31")).problems == ["birth:format"]
    assert clean(InputRecord(1, birth=" 1980-01-01 ")).birth_date == dt.date(1980, 1, 1)


def test_a_one_process_wash_tunes_the_collector_and_restores_it(population: tuple[Engine, list[InputRecord]],
                                                                tmp_path: Path) -> None:
    import gc

    from filematch.local import _GC_YOUNG

    engine, records = population
    src = tmp_path / "in.csv"
    src.write_text("ref;number;given;family;birth\n" + "".join(f"{r.ref};{r.number};;;\n" for r in records[:50]),
                   encoding="utf-8")
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    during: list[tuple[int, int]] = []
    with (tmp_path / "out.csv").open("wb") as out:
        wash_file(engine, src, out, FORMATS["csv"], chunk_size=10,
                  progress=lambda _n: during.append((gc.get_threshold()[0], gc.get_freeze_count())))
    assert during and all(t == _GC_YOUNG and f >= frozen for t, f in during)
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen
