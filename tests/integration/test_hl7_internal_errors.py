"""An internal error answering an HL7 message is answered AE 207 and logged as its type and place only:
an exception's message can hold a number, a name or a query's parameters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from server.access import BUILTIN_PROFILES, AccountStore, AuditWriter
from server.hl7.ack import Reply, Request
from server.hl7.app import Hl7App
from server.hl7.handlers import Context
from server.hl7.listener import Peer, describe
from server.hl7.router import Route, Router
from server.hl7.settings import MllpSettings
from store.engine import make_engine, migrate

SECRET = "17058012345 NORDMANN"


def _failing(req: Request, ctx: Context) -> Reply:
    raise RuntimeError(f"cannot answer for {SECRET}")


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hl7.sqlite'}")
    migrate(engine)
    AccountStore(engine).add("mirth", "a-long-password-1", "full")
    yield engine
    engine.dispose()


def test_internal_error_is_answered_ae_207_and_logged_without_its_message(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    settings = MllpSettings(port=0, peers={"MIRTH^AHUS": "mirth"}, peer_match="sender", threads=0)
    router = Router([Route("QBP", "Q23", ("2.5",), "QBP^Q23", _failing)])
    audit = AuditWriter(engine, mode="sync")
    app = Hl7App(engine, AccountStore(engine), BUILTIN_PROFILES, audit, settings, router=router)
    caplog.set_level(logging.DEBUG)
    raw = (b"MSH|^~\\&|MIRTH|AHUS|PREGBRIDGE|NHN|20261121120000||QBP^Q23^QBP_Q21|C9|P|2.5\r"
           b"QPD|IHE PIX Query|t1|17058012345\rRCP|I\r")
    reply = app(raw, Peer("127.0.0.1", 5000, 1))
    assert b"MSA|AE|C9" in reply and b"ERR||" in reply and b"207^Application internal error" in reply
    logged = [r for r in caplog.records if r.name == "pregbridge.hl7"]
    assert any("RuntimeError at test_hl7_internal_errors.py" in r.getMessage() for r in logged)
    assert all("17058012345" not in r.getMessage() and "NORDMANN" not in r.getMessage() and not r.exc_info
               for r in caplog.records)


def test_describe_names_type_and_place() -> None:
    try:
        _failing(None, None)  # type: ignore[arg-type]
    except RuntimeError as exc:
        assert describe(exc) == "RuntimeError at test_hl7_internal_errors.py:26 in _failing"
    assert describe(ValueError("x")) == "ValueError"
