"""Reading current views on the hot paths (store.current.views / view_by_number through store.engine.Reader):
no transaction is left open on the reader's connection (on PostgreSQL a driver-level read begins one behind
SQLAlchemy's back: left open it would sit "idle in transaction" holding locks a migration waits for), and a
person stored without a view is an internal error (PIX: AE 207, logged without patient data) or a PID left
out of a PDQ page whose QAK-5 counts what was sent — never a wrong "identifier not known"."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Engine, text

from server.access import BUILTIN_PROFILES, AccountStore, AuditWriter
from server.hl7.app import Hl7App
from server.hl7.listener import Peer
from server.hl7.settings import MllpSettings
from store import derived
from store.current import current_of, view_by_number, views
from store.document import from_document
from store.engine import Reader
from store.repository import PersonRepository
from tests.factories import person_doc


def _store(engine: Engine, *keys: str) -> list[str]:
    docs = [person_doc(k, family="Viewsen", given=f"Kari{k}", born="1977-07-07") for k in keys]
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for d in docs:
            repo.save(from_document(d))
    return [d["identifiers"][0]["number"] for d in docs]


def _in_transaction(conn: object) -> bool:
    dbapi = conn.connection.dbapi_connection  # type: ignore[attr-defined]
    if conn.dialect.name == "sqlite":  # type: ignore[attr-defined]
        return bool(dbapi.in_transaction)
    from psycopg import pq

    return bool(dbapi.info.transaction_status != pq.TransactionStatus.IDLE)


def test_the_reader_leaves_no_transaction_open_after_driver_level_reads(engine: Engine) -> None:
    numbers = _store(engine, "v1", "v2")
    reader = Reader(engine)
    try:
        with reader.connection() as conn:
            assert view_by_number(conn, numbers[0]) is not None
            assert len(views(conn, [1, 2, 2, 999])) == 2
            assert _in_transaction(conn) == (engine.dialect.name != "sqlite")  # the read began one on PostgreSQL
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() if engine.dialect.name == "postgresql" \
                else None
        assert not _in_transaction(conn)
        if pid is not None:  # and the server agrees: the reader's session does not idle in a transaction (only
            # its own: other tests share the database, and a server of theirs is between two statements at times)
            with engine.connect() as other:
                state = other.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :pid"),
                                      {"pid": pid}).scalar()
            assert state != "idle in transaction"
    finally:
        reader.close()


def test_a_person_without_a_view_is_answered_from_its_document_by_pix_and_pdq(
        engine: Engine, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(derived, "_warned", {})  # one warning a minute a table: this test's own
    numbers = _store(engine, "w1", "w2", "w3")
    AccountStore(engine).add("mirth", "a-long-password-1", "full")
    settings = MllpSettings(port=0, peers={"MIRTH^AHUS": "mirth"}, peer_match="sender", threads=0)
    app = Hl7App(engine, AccountStore(engine), BUILTIN_PROFILES, AuditWriter(engine, mode="sync"), settings)
    msh = "MSH|^~\\&|MIRTH|AHUS|PREGBRIDGE|NHN|20261121120000||{}|{}|P|2.5\r"

    def ask() -> tuple[str, str]:
        pix = app((msh.format("QBP^Q23^QBP_Q21", "C1") + f"QPD|IHE PIX Query|t1|{numbers[1]}\rRCP|I\r").encode(),
                  Peer("127.0.0.1", 5000, 1)).decode()
        pdq = app((msh.format("QBP^Q22^QBP_Q21", "C2") + "QPD|IHE PDQ Query|t2|@PID.5.1^Viewsen~@PID.7^19770707\r"
                   "RCP|I|10^RD\r").encode(), Peer("127.0.0.1", 5000, 1)).decode()
        return pix.split("\r", 1)[1], pdq.split("\r", 1)[1]  # without MSH (its time and control id differ)

    whole = ask()
    with engine.begin() as conn:
        pid = conn.execute(text("SELECT person_id FROM person_identifier WHERE number = :n"),
                           {"n": numbers[1]}).scalar_one()
        expected = conn.execute(text("SELECT current FROM person_current WHERE person_id = :p"), {"p": pid}).scalar()
        conn.execute(text("DELETE FROM person_current WHERE person_id = :p"), {"p": pid})
        assert view_by_number(conn, numbers[1]) == expected
        assert views(conn, [pid, 99999]) == {pid: expected}
        assert view_by_number(conn, "00000000000") is None
    caplog.set_level(logging.INFO)
    pix, pdq = ask()
    assert pix == whole[0] and "MSA|AA|C1" in pix and numbers[1] in pix
    assert pdq == whole[1] and pdq.count("\rPID|") == 3 and numbers[1] in pdq
    assert all(n not in r.getMessage() and "Viewsen" not in r.getMessage() for r in caplog.records for n in numbers)
    assert any("pregbridge views rebuild" in r.getMessage() and "person_current" in r.getMessage()
               for r in caplog.records)
    with engine.connect() as conn:
        assert expected == current_of(PersonRepository(conn).load([pid])[pid])
