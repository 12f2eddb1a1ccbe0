"""A person stored without its fast-path copies (``person_brief``, ``person_current``: a restore, a hand edit) gets
the same answer on every face as with them (docs/store.md, "A missing derived row"): PREG over SOAP (zeep) reads
the document anyway; HL7 PIX and PDQ over a real MLLP connection and a Filematch wash build the missing copy from
the document (store.derived.build_missing), logging one warning without patient data that names `pregbridge
views rebuild`. On SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from sqlalchemy import Engine, text
from zeep.helpers import serialize_object

from store import derived
from tests.conftest import pg_schema_url
from tests.integration.preg_support import ACCOUNTS, SPYNE_WARNINGS, backend_url, running_preg
from tests.integration.test_filematch_pipeline import load_persons, wash
from tests.integration.test_hl7_mllp import OLA_DNR, OLA_FNR, fixture, serving

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(derived, "_warned", {})  # one warning a minute a table: each test sees its own


def _drop(engine: Engine, *tables: str) -> int:
    with engine.begin() as conn:
        return sum(conn.execute(text(f"DELETE FROM {t}")).rowcount for t in tables)


def _warned(caplog: pytest.LogCaptureFixture, table: str, secrets: list[str]) -> None:
    messages = [r.getMessage() for r in caplog.records if r.name == "store.derived"]
    assert any(table in m and "`pregbridge views rebuild`" in m for m in messages), messages
    assert not [m for m in messages for s in secrets if s in m]


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            yield stack.enter_context(pg_schema_url())
        else:
            yield f"sqlite:///{tmp_path / 'store.sqlite'}"


def test_hl7_pix_and_pdq_over_mllp_answer_the_same_without_current_views(
        url: str, caplog: pytest.LogCaptureFixture) -> None:
    def exchange(port: int) -> list[str]:
        with MLLPClient("127.0.0.1", port) as client:
            answers = [client.send_message(fixture(name)) for name in
                       ("pix_q23_ceased_dnr.hl7", "pdq_q22_by_id.hl7", "pdq_q22_name_year.hl7")]
        return [a.decode().strip("\x0b\x1c\r").split("\r", 1)[1] for a in answers]  # without MSH (time, id)

    with serving(url) as srv:
        whole = exchange(srv.port)
        assert "MSA|AA" in whole[0] and OLA_DNR in whole[0] and whole[2].count("\rPID|") == 5
        assert _drop(srv.engine, "person_current") >= 7
        caplog.set_level(logging.WARNING)
        assert exchange(srv.port) == whole
    _warned(caplog, "person_current", [OLA_FNR, OLA_DNR, "Nordmann", "Hansen"])


def test_filematch_washes_the_same_without_briefs(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    load_persons(engine)
    whole = wash(engine, "wash-crlf.csv", "csv")
    assert sum(whole[1].values()) > 5, whole[1]
    assert _drop(engine, "person_brief") > 0
    caplog.set_level(logging.WARNING)
    assert wash(engine, "wash-crlf.csv", "csv") == whole
    assert wash(engine, "wash.xml", "xml")[1] == whole[1]  # identification's candidates by id too
    _warned(caplog, "person_brief", [])


def test_preg_soap_answers_the_same_without_briefs_and_views(tmp_path: Path) -> None:
    for backend in ("sqlite", "postgres"):
        work = tmp_path / backend
        work.mkdir()
        with backend_url(backend, work) as db, running_preg(db, work) as srv:
            pop = srv.pop
            svc = srv.caller(ACCOUNTS["full"]).service("1.1")
            numbers = [pop.ordinary, pop.replaced_dnr, pop.dnr]
            whole = [serialize_object(svc.getPerson(personnummer=n)) for n in numbers]
            assert _drop(srv.engine, "person_brief", "person_current") > 0
            assert [serialize_object(svc.getPerson(personnummer=n)) for n in numbers] == whole
