"""The HPR lookups and the KRK register on a real database (SQLite and PostgreSQL): validity at a time, search,
the demo register's coverage, load and update semantics, and migration 0013 filling the HPR columns."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from store import geo, hpr, krk
from store import schema as s
from store.engine import make_engine, migrate
from store.loading import load_population
from store.registers import register_rows
from store.synthetic import generate_population
from tests.factories import hpr_history_doc


def _store_hpr(engine: Engine, *docs: dict[str, object]) -> None:
    with engine.begin() as conn:
        for doc in docs:
            for table, rows in register_rows("hpr", doc).items():
                if rows:
                    conn.execute(insert(table), rows)


def test_a_record_at_a_time_keeps_what_was_valid_that_day(engine: Engine) -> None:
    doc = hpr_history_doc()
    _store_hpr(engine, doc)
    with engine.connect() as conn:
        stored = hpr.get(conn, 9100001)
    assert stored == doc
    in_2019 = hpr.at(doc, dt.datetime(2019, 3, 1, 12, 0))
    (le,) = in_2019["approvals"]
    assert [x["id"] for x in le["specialities"]] == [91000013]
    assert [x["id"] for x in le["suspensions"]] == [91000015]
    assert [x["id"] for x in le["requisitionRights"]] == [91000014]
    in_2010 = hpr.at(doc, dt.date(2010, 6, 1))
    assert [x["id"] for x in in_2010["approvals"][0]["specialities"]] == [91000012]
    assert in_2010["approvals"][0]["suspensions"] == []
    assert [a["category"]["value"] for a in hpr.at(doc, dt.date(1997, 1, 1))["approvals"]] == ["SP"]
    assert hpr.at(doc, dt.date(1990, 1, 1))["approvals"] == []
    # the last day of a period still holds it; the next does not
    assert [x["id"] for x in hpr.at(doc, dt.date(2015, 12, 31))["approvals"][0]["specialities"]] == [91000012]
    assert [x["id"] for x in hpr.at(doc, dt.date(2016, 1, 1))["approvals"][0]["specialities"]] == [91000013]


def test_lookups_and_search(engine: Engine) -> None:
    doc = hpr_history_doc()
    other = hpr_history_doc(9100002, given="Per", family="Aasen", born="1981-01-01")
    other["approvals"] = other["approvals"][1:]  # a nurse only  # type: ignore[index]
    other["lastUpdated"] = "2026-11-19T08:00:00Z"
    _store_hpr(engine, doc, other)
    with engine.connect() as conn:
        assert hpr.by_nin(conn, str(doc["nin"]))["hprNumber"] == 9100001  # type: ignore[index]
        assert hpr.by_nin(conn, "00000000000") is None
        found = hpr.approval(conn, 91000016)
        assert found is not None and found[0]["hprNumber"] == 9100001 and found[1]["category"]["value"] == "SP"
        assert hpr.approval(conn, 1) is None
        assert set(hpr.get_many(conn, [9100001, 9100002, 1])) == {9100001, 9100002}

        def numbers(**kw: object) -> tuple[int, list[int]]:
            total, docs = hpr.search(conn, hpr.HprQuery(**kw))  # type: ignore[arg-type]
            return total, [d["hprNumber"] for d in docs]

        assert numbers(family="odeg") == (1, [9100001])  # ø and oe and o are one key
        assert numbers(family="Asen") == (1, [9100002])  # Aasen = Åsen = Asen
        assert numbers(name="åse ødegård") == (1, [9100001])
        assert numbers(name="per odegard") == (0, [])
        assert numbers(categories=("LE",)) == (1, [9100001])
        assert numbers(categories=("SP",)) == (2, [9100001, 9100002])
        assert numbers(categories=("SP",), gender="1") == (0, [])
        assert numbers(birth_date=dt.date(1981, 1, 1)) == (1, [9100002])
        assert numbers(changed_from=dt.datetime(2026, 11, 18)) == (1, [9100002])
        assert numbers(categories=("SP",), page=2, page_size=1) == (2, [9100002])
        total, docs = hpr.changed(conn, dt.datetime(2026, 11, 1), dt.datetime(2026, 12, 1), 1, 1)
        assert (total, [d["hprNumber"] for d in docs]) == (2, [9100001])


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("krk-pop")
    generate_population(out, 600, 15, feed_days=0)
    return out


def test_the_demo_register_covers_every_kommune(engine: Engine, population: Path) -> None:
    summary = load_population(engine, population, workers=1)
    assert summary.rejected == 0 and summary.registers["krk"] > 250
    with engine.connect() as conn:
        covered = set(conn.execute(select(s.krk_coverage.c.kommune)).scalars())
        assert covered == {k.nummer for k in geo.kommuner()}
        shared = conn.execute(select(s.krk_coverage.c.area, func.count()).group_by(s.krk_coverage.c.area)
                              .having(func.count() > 1)).all()
        assert len(shared) >= 10  # inter-municipal arrangements
        bydeler = set(conn.execute(select(s.krk_contact.c.kommune).where(s.krk_contact.c.bydel.is_not(None)))
                      .scalars())
        assert bydeler == {"0301", "4601", "5001", "1103"}
        gp = json.loads((population / "flr.jsonl").read_text().splitlines()[0])
        assert gp["kommune"] in krk.areas_for_hpr(conn, gp["gpHprNumber"]) or not krk.hpr_for_area(conn, gp["kommune"])
        host, count = shared[0]
        members = conn.execute(select(s.krk_coverage.c.kommune).where(s.krk_coverage.c.area == host)).scalars().all()
        (hit,) = [h for h in krk.search(conn, members[-1]) if h.kommune.nummer == members[-1]]
        assert len(hit.covered) == count and hit.contacts[0].area == host and hit.contacts[0].bydel is None
        assert krk.hpr_for_area(conn, members[-1]) == krk.hpr_for_area(conn, host)


def test_update_moves_kommuner_between_arrangements(engine: Engine) -> None:
    first, problems = krk.parse_krk("\n".join((
        ";".join(krk.HEADER),
        "1101;;;post@a.example.no;21000001;;1000001;1111",
        "1112;;;post@b.example.no;21000002;;1000002;",
        "0301;;;post@oslo.example.no;21000003;2001;1000003;",
        "0301;030105;;post@frogner.example.no;21000004;;1000004;",
    )))
    assert problems == []
    with engine.begin() as conn:
        krk.save_entries(conn, first, replace=True)
    update, problems = krk.parse_krk(f"{';'.join(krk.HEADER)}\n1106;;;post@c.example.no;21000005;;1000005;1111 1112\n")
    assert problems == []
    with engine.begin() as conn:
        result = krk.save_entries(conn, update, replace=False)
    assert result.removed == ["1112"] and result.contacts == 1 and result.covered == 3
    with engine.connect() as conn:
        assert krk.hpr_for_area(conn, "1111") == ["1000005"]
        assert krk.hpr_for_area(conn, "1112") == ["1000005"]
        assert krk.hpr_for_area(conn, "1101") == ["1000001"]
        assert krk.areas_for_hpr(conn, 1000002) == []
        assert krk.areas_for_hpr(conn, 1000005) == ["1106", "1111", "1112"]
        assert krk.hpr_for_area(conn, "030105") == ["1000004"]
        assert krk.hpr_for_area(conn, "030101") == ["1000003"]  # a bydel without its own contact: the kommune's
        (oslo,) = krk.search(conn, "frogner")
        assert [c.area for c in oslo.contacts] == ["0301", "030105"]
        assert oslo.contacts[1].bydel_name == "Frogner" and oslo.kommune.fylkesnavn == "Oslo"
        assert [h.kommune.nummer for h in krk.search(conn, "0301")] == ["0301"]
        assert krk.search(conn, "zzz") == []


def test_a_file_with_an_error_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "krk.csv"
    path.write_text(f"{';'.join(krk.HEADER)}\n0301;;;post@oslo.example.no;21000003;;;\n9999;;;x@y.no;21000003;;;\n",
                    encoding="utf-8")
    result, problems = krk.load_krk_file(engine, path, replace=True)
    assert result is None and [p.line for p in problems] == [3]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.krk_contact)).scalar() == 0
    path.write_bytes("kommune;bydel\n0301;Grünerløkka\n".encode("latin-1"))
    problems = krk.load_krk_file(engine, path, replace=True)[1]
    assert [str(p) for p in problems] == ["line 0: error: the file is not UTF-8"]


def test_migration_0013_fills_the_hpr_columns_of_stored_records(db_url: str) -> None:
    eng = make_engine(db_url)
    try:
        migrate(eng, "0012")
        doc = hpr_history_doc()
        with eng.begin() as conn:
            # the columns of revision 0010 only
            conn.exec_driver_sql("INSERT INTO hpr_person (hpr_number, person_key, doc) VALUES ('9100001', NULL, '"
                                 + json.dumps(doc).replace("'", "''") + "')")
        migrate(eng)
        with eng.connect() as conn:
            assert hpr.by_nin(conn, str(doc["nin"]))["hprNumber"] == 9100001  # type: ignore[index]
            assert hpr.approval(conn, 91000016) is not None
    finally:
        eng.dispose()
