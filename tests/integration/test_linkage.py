"""Fellegi–Sunter identification: comparison levels, estimated parameters stored with the store, the CLI."""

from __future__ import annotations

import datetime as dt
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from filematch.testdata import noisy_records, truth_of
from store.document import from_document
from store.linkage.compare import BIRTH, FAMILY, GIVEN, KNOWN_SIMILAR, compare
from store.linkage.estimate import estimate
from store.linkage.params import DEFAULT, forget, parameters_for, save
from store.matching import _COLS, IdentifyQuery, Outcome, _Query, identify
from store.repository import PersonRepository
from store.search import ALL_RELEASABLE
from tests.factories import person_doc

ROOT = Path(__file__).resolve().parents[2]


def _rec(family: str, given: str, born: dt.date | None, year: int | None = None) -> tuple:  # type: ignore[type-arg]
    return (family, tuple(given.split()), born, year or (born.year if born else None), "mann", "0150", None, "storg")


@pytest.mark.parametrize(("query", "row", "levels", "swapped"), [
    (_rec("nordmann", "ola", dt.date(1980, 5, 17)), _rec("nordmann", "ola", dt.date(1980, 5, 17)), (1, 1, 1), False),
    (_rec("nordmann", "ola", dt.date(1980, 4, 7)), _rec("nordmann", "ola", dt.date(1980, 7, 4)), (1, 1, 2), False),
    (_rec("nordmann", "o", dt.date(1980, 5, 18)), _rec("nordmann", "ola", dt.date(1980, 5, 17)), (1, 4, 3), False),
    (_rec("nordman", "ola jan", None, 1980), _rec("nordmann", "jan", dt.date(1980, 5, 17)), (2, 2, 5), False),
    (_rec("ola", "nordmann", dt.date(1981, 1, 1)), _rec("nordmann", "ola", dt.date(1980, 5, 17)), (1, 1, 6), True),
    # swapped, the family field holding a first and a middle name
    (_rec("tone marte", "tveiten", dt.date(1960, 3, 27)), _rec("tveiten", "tone marte", dt.date(1960, 3, 27)),
     (1, 1, 1), True),
    (_rec("", "", None), _rec("nordmann", "ola", dt.date(1980, 5, 17)), (0, 0, 0), False),
])
def test_comparison_levels(query: tuple, row: tuple, levels: tuple[int, int, int],  # type: ignore[type-arg]
                           swapped: bool) -> None:
    vector, was_swapped = compare(query, row)
    assert (vector[FAMILY], vector[GIVEN], vector[BIRTH]) == levels and was_swapped is swapped


def _store(engine: Engine, people: list[tuple[str, str, str, str, str]]) -> dict[str, int]:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        return {key: repo.save(from_document(person_doc(key, given=given, family=family, born=born, postnummer=post)))
                for key, given, family, born, post in people}



def _store_married_ingrid(engine: Engine) -> dict[str, int]:
    """Twenty Ola Hansens, and Ingrid Kvernmo, born Lysgaard (her earlier family name in the name history)."""
    from tests.factories import meta

    ids = _store(engine, [(f"o{i}", "Ola", "Hansen", f"19{50 + i}-01-0{1 + i % 9}", "0150") for i in range(20)])
    married = person_doc("married", given="Ingrid", family="Kvernmo", born="1971-04-05", gender="kvinne",
                         postnummer="7010", street="Munkegata")
    married["names"] = [{"given": "Ingrid", "middle": None, "family": "Lysgaard", **meta(False, "1971-04-05",
                                                                                          "1999-06-01")},
                        {"given": "Ingrid", "middle": None, "family": "Kvernmo", **meta(True, "1999-06-01")}]
    with engine.begin() as conn:
        ids["married"] = PersonRepository(conn).save(from_document(married))
    return ids

def test_a_common_name_agreeing_weighs_less_than_a_rare_one(engine: Engine) -> None:
    people = [(f"h{i}", "Ola", "Hansen", f"19{50 + i}-01-0{1 + i % 9}", "0150") for i in range(30)]
    people.append(("rare", "Ola", "Kvernmo", "1960-03-03", "0150"))
    ids = _store(engine, people)
    with engine.begin() as conn:
        params = estimate(conn, pairs=2000)
        assert params.tf["family"]["hansen"] == 30 and "kvernmo" not in params.tf["family"]  # held by one only
        assert params.weight_exact(FAMILY, "kvernmo") > params.weight_exact(FAMILY, "hansen") + 4
        version = save(conn, params)
    with engine.connect() as conn:
        assert parameters_for(conn).version == version >= 1
        # with a birth date one digit off, the rare name is more evidence for its person than the common one
        rare = identify(conn, IdentifyQuery(given="Ola", family="Kvernmo", birth_date=dt.date(1960, 3, 8)),
                        scope=ALL_RELEASABLE)
        common = identify(conn, IdentifyQuery(given="Ola", family="Hansen", birth_date=dt.date(1951, 1, 7)),
                          scope=ALL_RELEASABLE)
    assert rare.best is not None and rare.best.person_id == ids["rare"]
    assert common.best is None or common.best.probability < rare.best.probability


def test_em_estimates_m_from_a_sample_and_identification_uses_it(engine: Engine, tmp_path: Path) -> None:
    """Estimated on a small synthetic population with noisy records as the sample: the estimated parameters
    identify the sample at least as well as the defaults, without a wrong identification."""
    from store.loading import load_population
    from store.synthetic import generate_population

    generate_population(tmp_path / "pop", 1500, 3, feed_days=0)
    load_population(engine, tmp_path / "pop")
    records = noisy_records(tmp_path / "pop" / "persons.jsonl", 300, 5)
    from filematch.pipeline import identify_queries

    pairs = [(q, truth_of(r.ref)) for r in records for q in identify_queries([r])]
    with engine.connect() as conn:
        numbers: dict[int, str] = dict(conn.exec_driver_sql("SELECT person_id, number FROM person_identifier").all())

    def score() -> tuple[int, int]:
        right = wrong = 0
        with engine.connect() as conn:
            for q, true in pairs:
                r = identify(conn, q, scope=ALL_RELEASABLE)
                if r.outcome == Outcome.IDENTIFIED and r.best is not None:
                    right += numbers[r.best.person_id] == true
                    wrong += numbers[r.best.person_id] != true
        return right, wrong

    forget()
    default_right, default_wrong = score()
    with engine.begin() as conn:
        params = estimate(conn, [q for q, _ in pairs], pairs=5000)
        save(conn, params)
    assert params.m != DEFAULT.m and 0.05 <= params.prior <= 0.95
    right, wrong = score()
    assert wrong <= 0.01 * right and default_wrong <= 0.01 * default_right  # few names in a small population
    assert right >= default_right - 3 and right >= 0.85 * len(pairs)


def test_identify_estimate_command(engine: Engine, tmp_path: Path) -> None:
    _store(engine, [("a", "Kari", "Nordmann", "1982-11-30", "0151"), ("b", "Ola", "Nordmann", "1980-05-17", "0151")])
    sample = tmp_path / "sample.csv"
    sample.write_text("ref;number;given;family;birth;postnummer\nr1;;Kari;Nordman;1982-11-30;0151\n"
                      "r2;;Ola;Nordmann;17.05.1980;\nr3;12345678901;Ola;Nordmann;1980-05-17;0151\nr4;;Ola;;;\n",
                      encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "server", "--database-url", engine.url.render_as_string(False),
                           "identify", "estimate", "--sample", str(sample), "--pairs", "500"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # r3's number fails its check digits: identified by demographics, a sample; r4 has a first name only: not
    assert "2 persons, 3 sample records" in " ".join(proc.stdout.split())
    forget()
    with engine.connect() as conn:
        assert parameters_for(conn).version >= 1 and parameters_for(conn).persons == 2


def test_the_new_address_passes_do_not_read_a_hidden_address(engine: Engine) -> None:
    """No oracle: a person whose address the scope hides is not reached through a mistyped postnummer or a
    street either, and the same record finds it when the scope shows that address."""
    from store.search import SearchScope

    with engine.begin() as conn:
        pid = PersonRepository(conn).save(from_document(person_doc(
            "hid", given="Signe", family="Kvernmo", born="1970-01-01", postnummer="5003", street="Fjellvegen",
            protection="fortrolig")))
    hides = SearchScope.of(ALL_RELEASABLE.elements, {"fortrolig": False})
    typo = IdentifyQuery(given="Signe", family="Kvernmo", postnummer="5030")  # no birth date: address passes only
    street = IdentifyQuery(given="Signe", family="Kvernmo", postnummer="9999", street="Fjellvegen")
    with engine.connect() as conn:
        for q in (typo, street):
            assert identify(conn, q, scope=hides).candidates == []
            seen = identify(conn, q, scope=ALL_RELEASABLE)
            assert seen.best is not None and seen.best.person_id == pid


def test_an_earlier_family_name_is_agreement_on_the_second_look(engine: Engine) -> None:
    """A client register that never learnt of a marriage: the record gives the person's maiden name and an
    old address. Without the name history it is two disagreements; with it, the earlier name agrees."""

    ids = _store_married_ingrid(engine)
    record = IdentifyQuery(given="Ingrid", family="Lysgaard", birth_date=dt.date(1971, 4, 5), gender="K",
                           postnummer="0150", street="Storgata 9")  # the maiden name and an old address
    with engine.connect() as conn:
        found = identify(conn, record, scope=ALL_RELEASABLE)
        params = parameters_for(conn)
        row = conn.exec_driver_sql(f"SELECT {_COLS} FROM person_search WHERE person_id = {ids['married']}").one()
    assert found.outcome == Outcome.IDENTIFIED and found.best is not None and found.best.person_id == ids["married"]
    born = dt.date.fromisoformat(row[3]) if isinstance(row[3], str) else row[3]
    plain = _Query(record, ALL_RELEASABLE, params).weight(row, born) + params.log_prior_odds  # no name history
    assert plain < 6.6 < found.best.score  # probability 0.99 is 6.6 bits of odds: not identified without it
    assert found.best.score - plain == pytest.approx(params.weight_former("lysgaard") - params.weights[FAMILY][4],
                                                     abs=0.02)


def test_stale_parameters_are_said_after_a_load_and_estimated_only_when_stale(engine: Engine, tmp_path: Path) -> None:
    """``pregbridge load`` says when the parameters no longer fit the register (never estimated, or estimated
    on under half of it), and ``identify estimate --if-stale`` re-estimates only then."""
    from store.linkage.params import stale
    from store.synthetic import generate_population

    url = engine.url.render_as_string(False)

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "server", "--database-url", url, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return " ".join((proc.stdout + proc.stderr).split())

    _store(engine, [(f"p{i}", "Kari", "Nordmann", f"198{i}-11-30", "0151") for i in range(4)])
    with engine.connect() as conn:
        assert stale(conn) == "never estimated (4 persons in the register)"
    assert "not re-estimated" not in cli("identify", "estimate", "--if-stale", "--pairs", "200")
    assert "not re-estimated" in cli("identify", "estimate", "--if-stale", "--pairs", "200")
    generate_population(tmp_path / "pop", 40, 3, feed_days=0)
    loaded = cli("load", str(tmp_path / "pop"))  # 4 → 44 persons: estimated on under half
    assert "identification's parameters are stale (version 1 was estimated on 4 persons; the register now holds" \
        in loaded and "identify estimate --if-stale" in loaded
    assert "linkage parameters version 2" in cli("identify", "estimate", "--if-stale", "--pairs", "200")
    with engine.connect() as conn:
        assert stale(conn) is None
    assert "stale" not in cli("load", str(tmp_path / "pop"))  # the same persons again: still fits


def test_a_street_agreeing_within_the_same_postnummer_is_not_counted_twice(engine: Engine) -> None:
    """Street and postnummer are not independent (a street lies in one postnummer): the estimation measures
    the street's u among persons of the same postnummer, and an address agreeing weighs the postnummer plus
    that conditional street weight, less than the two unconditional weights added up."""
    people = [(f"n{i}", "Kari", f"Navn{chr(97 + i % 26)}{chr(97 + i // 26)}", f"19{40 + i % 50}-0{1 + i % 9}-1{i % 9}",
               "0150" if i % 2 else "7010") for i in range(60)]
    _store(engine, people)  # every person at Storgata (tests.factories): half in 0150, half in 7010
    with engine.begin() as conn:
        params = estimate(conn, pairs=3000)
    assert params.street_u_same_place > 0.5  # within a postnummer here everyone lives in the same street
    q = ("navnaa", ("kari",), dt.date(1940, 1, 10), 1940, "mann", "0150", None, "storg")
    same = params.weigh(q, q, params.exact_weights(q))
    moved = params.weigh(q, (*q[:5], "7010", None, "storg"), params.exact_weights(q))
    assert same - moved == pytest.approx(params.exact_weights(q)[2] + params.street_same_place_bits
                                         - params.weights[4][3] - params.weights[5][1], abs=1e-9)


def test_read_through_counts_the_register_not_the_store_and_refuses_an_estimate(engine: Engine,
                                                                                tmp_path: Path) -> None:
    """A read-through store holds a few persons of the register: its default parameters count the register (the
    prior odds of a candidate are over 5.6 million persons, not 2), and `identify estimate` is refused there."""
    from store.linkage.params import NATIONAL_PERSONS, assume_register

    _store(engine, [("a", "Kari", "Nordmann", "1982-11-30", "0151"), ("b", "Ola", "Nordmann", "1980-05-17", "0151")])
    forget()
    with engine.connect() as conn:
        assert parameters_for(conn).persons == 2  # a replica: the store is the register
    try:
        assume_register(NATIONAL_PERSONS)
        with engine.connect() as conn:
            assert parameters_for(conn).persons == NATIONAL_PERSONS
    finally:
        assume_register(0)
    config = tmp_path / "rt.toml"
    config.write_text('[upstream]\nmode = "read-through"\nbase_url = "http://127.0.0.1:9"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "server", "--config", str(config), "--database-url",
                           engine.url.render_as_string(False), "identify", "estimate", "--pairs", "50"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr[-2000:]
    assert "refused in read-through mode" in " ".join(proc.stdout.split())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM linkage_parameters")).scalar_one() == 0


def test_the_fused_scorer_weighs_as_the_reference(engine: Engine, tmp_path: Path) -> None:
    """store.linkage.score.RowScorer (identification's hot path) gives the float ``Parameters.weigh`` gives over
    ``compare``, for noisy records (every noise kind, names swapped, year-only dates) against rows of their
    blocks and random rows, with every address seen and with fortrolig addresses hidden; every level of every
    field is reached."""
    from filematch.pipeline import identify_queries
    from store.linkage.compare import FIELDS, LEVELS
    from store.linkage.score import RowScorer
    from store.loading import load_population
    from store.matching import _COLS_LEVEL
    from store.search import SearchScope
    from store.synthetic import generate_population

    generate_population(tmp_path / "pop", 1200, 5, feed_days=0)
    load_population(engine, tmp_path / "pop")
    records = noisy_records(tmp_path / "pop" / "persons.jsonl", 250, 9, outside=0.2)
    queries = [q for r in records for q in identify_queries([r])]
    queries += [IdentifyQuery(given=q.family, family=q.given, birth_year=q.birth_date.year if q.birth_date else None,
                              postnummer=q.postnummer, kommune="0301") for q in queries[:60]]
    hides = SearchScope.of(ALL_RELEASABLE.elements, {"fortrolig": False, "klientadresse": False})
    with engine.begin() as conn:
        params = estimate(conn, [q for q in queries if q.birth_date], pairs=3000)
        conn.execute(text("UPDATE person_search SET address_protection = 'fortrolig' WHERE person_id % 5 = 0"))
        rows: list[Any] = list(conn.exec_driver_sql(f"SELECT {_COLS_LEVEL} FROM person_search ORDER BY person_id"))
    reached: set[tuple[int, int]] = set()
    compared = 0
    for i, q in enumerate(queries):
        for scope in (ALL_RELEASABLE, hides):
            pq = _Query(q, scope, params)
            scorer = RowScorer(params, pq.rec, pq.w_exact, pq.levels, pq.kommune_levels)
            year = pq.rec[3]
            near = [r for r in rows if r[4] == year or r[1][:2] == pq.rec[0][:2]] + rows[i % 7 :: 97]
            for row in near:
                bd = dt.date.fromisoformat(row[3]) if isinstance(row[3], str) else row[3]
                assert scorer.weight(row) == pq.weight(row, bd), (q, row)
                vec, swapped = compare(pq.rec, pq.row_rec(row, bd))
                fam = vec[FAMILY] if swapped else params.family_index(vec[FAMILY], pq.rec[0])
                reached.update(enumerate((fam, *vec[1:])))
                compared += 1
    assert compared > 20_000
    missing = {(FIELDS[f], level) for f, n in enumerate(LEVELS) for level in range(n) if (f, level) not in reached}
    assert missing <= {("birth", 2)}, missing  # transposed dates need a day ≤ 12 that a record mistyped so


def test_a_similar_family_name_weighs_less_when_the_record_gives_a_register_name() -> None:
    """compare.KNOWN_SIMILAR: 'Nilsen' in a record against a person named 'Nielsen' is two real names (two
    persons, mostly), 'Nilsne' against 'Nielsen' a misspelling; the levels have their own m and u, so the
    same Jaro-Winkler level weighs less for the known name. Without term frequencies nothing is known."""
    from store.linkage.params import Parameters

    params = Parameters(DEFAULT.m, DEFAULT.u, persons=1000, tf={"family": {"nilsen": 40, "nielsen": 30}})
    row = ("nielsen", ("ola",), dt.date(1980, 1, 2), 1980, "mann", "0150", None, "storg")
    known, unknown = ("nilsen", *row[1:]), ("nilsne", *row[1:])
    assert compare(known, row)[0][FAMILY] == compare(unknown, row)[0][FAMILY] in (2, 3)
    level = compare(known, row)[0][FAMILY]
    assert params.family_index(level, "nilsen") == KNOWN_SIMILAR[level]
    assert params.family_index(level, "nilsne") == level
    w_known = params.weigh(known, row, params.exact_weights(known))  # type: ignore[arg-type]
    w_unknown = params.weigh(unknown, row, params.exact_weights(unknown))  # type: ignore[arg-type]
    gap = params.weights[FAMILY][level] - params.weights[FAMILY][KNOWN_SIMILAR[level]]
    assert w_unknown - w_known == pytest.approx(gap) and gap > 2
    bare = Parameters(DEFAULT.m, DEFAULT.u, persons=1000)
    assert bare.weigh(known, row, bare.exact_weights(known)) == bare.weigh(unknown, row,  # type: ignore[arg-type]
                                                                          bare.exact_weights(unknown))  # type: ignore[arg-type]


def test_classify_ranks_and_sums_as_a_full_sort_would() -> None:
    """store.matching._classify sorts by weight alone (stable) and puts tied candidates in person id order: the
    same candidates, probabilities (bit for bit: tied weights have equal odds) and outcome as sorting every
    candidate by (-weight, person id)."""
    import random

    from store.linkage.params import Parameters
    from store.matching import CANDIDATE_PROBABILITY, Candidate, _classify

    params = Parameters(DEFAULT.m, DEFAULT.u, persons=50_000, prior=0.9)
    rng = random.Random(3)
    for _ in range(300):
        seen = {rng.randrange(10_000): rng.choice([-20.0, -3.5, 0.0, 9.0, 14.5, 15.75, rng.uniform(-30, 25)])
                for _ in range(rng.randrange(1, 40))}
        ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))
        probs = params.probabilities([w for _, w in ranked])
        want = [Candidate(pid, round(w + params.log_prior_odds, 2), p)
                for (pid, w), p in zip(ranked, probs, strict=True) if p >= CANDIDATE_PROBABILITY]
        assert _classify(seen, params).candidates == want


def test_a_birth_date_level_random_pairs_never_show_is_not_made_certain(engine: Engine) -> None:
    """u of a transposed or one-digit-off birth date is a pair in 360,000 or 1,500: random pairs of the register
    hold it once or never, and never made it weigh ~30 bits. It stays at least a quarter of its default."""
    _store(engine, [(f"p{i}", "Kari", f"Navn{chr(97 + i)}", f"19{40 + i}-0{1 + i % 9}-2{i % 9}", "0150")
                    for i in range(12)])
    with engine.begin() as conn:
        params = estimate(conn, pairs=2000)
    assert all(params.u[BIRTH][level] >= 0.25 * DEFAULT.u[BIRTH][level] for level in (2, 3))
    assert params.weights[BIRTH][2] <= math.log2(params.m[BIRTH][2] / (0.25 * DEFAULT.u[BIRTH][2])) < 20


def test_two_estimations_of_one_store_draw_the_same_persons(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """u is estimated among persons drawn by the seeded generator, not the database's unseeded ``random()``: two
    estimations of the same register give the same parameters (runs of the benchmark are comparable)."""
    from store.linkage import estimate as est

    _store(engine, [(f"p{i}", f"Kari{chr(97 + i % 7)}", f"Navn{chr(97 + i % 26)}{chr(97 + i // 26)}",
                     f"19{40 + i % 50}-0{1 + i % 9}-1{i % 9}", f"0{150 + i % 4}") for i in range(60)])
    monkeypatch.setattr(est, "_DRAW", 15)  # a register larger than the draw
    with engine.begin() as conn:
        first, again, other = (estimate(conn, pairs=500, seed=seed) for seed in (0, 0, 1))
        drawn = [row[0] for row in est._draw(conn, 15, __import__("random").Random(0))]
    assert (first.u, first.street_u_same_place) == (again.u, again.street_u_same_place)
    assert first.u != other.u
    assert len(drawn) == len(set(drawn)) == 15 and drawn == sorted(drawn)


def test_a_stage_is_classified_only_when_its_best_candidate_could_be_identified() -> None:
    """identify skips the classification of a stage whose best weight is under _IDENTIFY_BITS of odds: below it no
    candidate is IDENTIFIED whatever the others; a hair above it, alone, one is."""
    import random

    from store.linkage.params import Parameters
    from store.matching import _IDENTIFY_BITS, _classify

    params = Parameters(DEFAULT.m, DEFAULT.u, persons=1_000_000, prior=0.95)
    prior = params.log_prior_odds
    rng = random.Random(5)
    for _ in range(2000):
        seen = {pid: rng.uniform(-30, _IDENTIFY_BITS - prior + 3) for pid in range(rng.randrange(1, 30))}
        if max(seen.values()) + prior < _IDENTIFY_BITS:
            assert _classify(seen, params).outcome != Outcome.IDENTIFIED
    assert _classify({1: _IDENTIFY_BITS - prior + 1e-5}, params).outcome == Outcome.IDENTIFIED
    assert _classify({1: _IDENTIFY_BITS - prior - 1e-5}, params).outcome != Outcome.IDENTIFIED


def test_the_second_look_reads_no_history_when_no_earlier_name_could_identify(engine: Engine,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The record gives the person's maiden name, but another birth date and address: even agreeing on the earlier
    name she would stay under the threshold, so no name history is read (the second look's query is not run);
    a record with her maiden name, first name and birth date (and no address) is under the threshold without
    the earlier name and over it with it: read and identified."""
    import store.matching as matching

    _store_married_ingrid(engine)
    with engine.begin() as conn:
        # the default weights (no term frequencies) and a national register's prior odds (-20 bits a person)
        from store.linkage.params import Parameters

        save(conn, Parameters(DEFAULT.m, DEFAULT.u, persons=1_000_000, prior=0.5))
    from store.engine import fetch_all as real

    statements: list[str] = []

    def spy(conn: Any, sql: str, params: Any = ()) -> list[Any]:
        statements.append(sql)
        return real(conn, sql, params)

    monkeypatch.setattr(matching, "fetch_all", spy)
    far = IdentifyQuery(given="Ingrid", family="Lysgaard", birth_date=dt.date(1971, 9, 23), gender="kvinne",
                        postnummer="9990")
    near = IdentifyQuery(given="Ingrid", family="Lysgaard", birth_date=dt.date(1971, 4, 5), gender="kvinne")
    with engine.connect() as conn:
        assert identify(conn, far, scope=ALL_RELEASABLE).outcome != Outcome.IDENTIFIED
        assert statements and not any(" JOIN person " in sql for sql in statements)
        statements.clear()
        assert identify(conn, near, scope=ALL_RELEASABLE).outcome == Outcome.IDENTIFIED
    assert any(" JOIN person " in sql for sql in statements)


def test_the_wide_blocks_read_persons_of_the_records_gender(engine: Engine) -> None:
    """Birth year + family name (and + first name, and a postnummer one typo away) read only persons of the
    record's gender: a wrong gender is a third error there, and the birth date block still reads them."""
    from store.matching import block_passes

    ids = _store(engine, [("man", "Kim", "Kvernmo", "1971-04-05", "0150"), ("woman", "Kim", "Kvernmo", "1971-06-07",
                                                                            "0150")])
    with engine.begin() as conn:
        conn.execute(text("UPDATE person_search SET gender = 'kvinne' WHERE person_id = :p"), {"p": ids["woman"]})
    record = IdentifyQuery(given="Kim", family="Kvernmo", birth_date=dt.date(1971, 9, 23), gender="kvinne")
    with engine.connect() as conn:
        def read(q: IdentifyQuery) -> dict[str, set[int]]:
            return {name: {row[0] for row in conn.exec_driver_sql(sql, params).fetchall()}
                    for stage in block_passes(conn, q, scope=ALL_RELEASABLE) for name, sql, params in stage}

        sexed, unsexed = read(record), read(IdentifyQuery(given="Kim", family="Kvernmo",
                                                          birth_date=dt.date(1971, 9, 23)))
    for name in ("birth year + family", "birth year + given"):
        assert sexed[name] == {ids["woman"]} and unsexed[name] == {ids["woman"], ids["man"]}


def test_the_mistyped_postnummer_pass_reads_only_the_registers_postnummer(engine: Engine) -> None:
    """An estimation lists every postnummer of the register, also one person's (weighed as an unlisted one: count
    1), and says so; the mistyped-postnummer pass then looks up only codes someone lives in. Parameters that do
    not say so (stored before, or the defaults) look up every typo."""
    from store.linkage.params import Parameters
    from store.matching import _known_typos, _postnummer_typos

    _store(engine, [("a", "Kari", "Lie", "1970-01-01", "0150"), ("b", "Ola", "Lie", "1971-01-01", "0150"),
                    ("c", "Per", "Dahl", "1972-01-01", "0151")])
    with engine.begin() as conn:
        params = estimate(conn, pairs=200)
    again = Parameters.from_json(params.to_json(), 1, "")
    assert again.postnummer_complete and again.tf["postnummer"] == {"0150": 2, "0151": 1}
    assert params.weight_exact(4, "0151") == params.weight_exact(4, "0999")  # one person: as an unlisted value
    assert _known_typos("0152", again) == ("0150", "0151")
    assert _known_typos("0152", DEFAULT) == _postnummer_typos("0152") and len(_postnummer_typos("0152")) == 39
    old = Parameters.from_json(params.to_json().replace(b'"postnummer_complete":true', b'"x":0'), 1, "")
    assert not old.postnummer_complete and _known_typos("0152", old) == _postnummer_typos("0152")


def test_the_near_dates_are_the_comparisons_transposed_and_one_digit_off_dates_of_the_year() -> None:
    """The wrong-date, changed-name block reads a person whose birth date the comparison would call transposed or
    one digit off within the record's year (store.matching._near_dates): the same dates, for every day of a
    leap year and of another."""
    from store.linkage.compare import birth_level
    from store.matching import _near_dates

    for year in (1964, 1983):
        days = [dt.date(year, 1, 1) + dt.timedelta(days=i) for i in range(366 if year % 4 == 0 else 365)]
        for d in days[::7]:
            want = {r for r in days if birth_level(d, None, r, None) in (2, 3)}
            assert set(_near_dates(d)) == want


def test_the_birth_dates_m_is_estimated_over_namesakes_in_the_same_postnummer(engine: Engine) -> None:
    """The birth date's m comes from EM over pairs blocked on postnummer, family and first given name (the birth
    date block cannot show its own levels): a sample whose dates are one digit off half the time raises m of
    that level over its default, and lowers m of an exact date."""
    people = [(f"p{i}", f"Kari{chr(97 + i % 26)}", f"Navn{chr(97 + i // 26)}", f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}",
               f"0{150 + i % 5}") for i in range(80)]
    _store(engine, people)
    samples = []
    for i, (_key, given, family, born, post) in enumerate(people):
        d = dt.date.fromisoformat(born)
        if i % 2:
            d = d.replace(day=d.day + 10)  # 1x -> 2x: one digit of the day off
        samples.append(IdentifyQuery(given=given, family=family, birth_date=d, postnummer=post))
    with engine.begin() as conn:
        params = estimate(conn, samples, pairs=2000)
    assert params.m[BIRTH][3] > 5 * DEFAULT.m[BIRTH][3]
    assert params.m[BIRTH][1] < DEFAULT.m[BIRTH][1]


def test_the_year_typo_pass_reads_the_given_name_only_with_the_family_initial(engine: Engine) -> None:
    """Birth year one digit off + name: the family name's three letters, or the given name's with the family
    initial (a transposed "Kralsen" for Karlsen keeps its initial); a namesake of another family initial and year
    is not read. On SQLite it seeks each date's initial range of the birth date index, and the birth year + given
    pass reads the covering index of migration 0034 while the postnummer + initial pass keeps its own."""
    from store.matching import block_passes

    ids = _store(engine, [("karlsen", "Theodor", "Karlsen", "1985-10-31", "7006"),
                          ("other", "Theodor", "Berg", "1985-10-31", "7006"),
                          ("kra", "Per", "Kraft", "1985-10-31", "7006")])
    record = IdentifyQuery(given="Theodor", family="Kralsen", birth_date=dt.date(1935, 10, 31), postnummer="4090")
    with engine.connect() as conn:
        passes = {name: (sql, params) for stage in block_passes(conn, record, scope=ALL_RELEASABLE)
                  for name, sql, params in stage}
        sql, params = passes["birth year one digit off + name"]
        assert {row[0] for row in conn.exec_driver_sql(sql, params)} == {ids["karlsen"], ids["kra"]}
        if conn.dialect.name == "sqlite":
            def plan(name: str) -> str:
                sql, params = passes[name]
                return " ".join(r[3] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))

            assert "ix_person_search_birth_date_covering (birth_date=? AND family_key>?" in plan(
                "birth year one digit off + name")
            assert "COVERING INDEX ix_person_search_birth_year_given_covering" in plan("birth year + given")
            assert "ix_person_search_postnummer_given_key_birth_year" in plan("postnummer + given initial + birth year")
