"""``pregbridge hl7 peers add|remove`` reach a running ``listen-hl7`` process without a restart (a real MLLP
client, python-hl7's), and ``pregbridge usage-report`` reports the calls that listener audited."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hl7
import pytest
from hl7.client import MLLPClient
from sqlalchemy import Engine

from server.cli import main
from server.hl7.peers import normal_peer
from store.errors import InvalidInput
from tests.integration.test_hl7_mllp import fixture, populate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr("server.access.accounts.PasswordHasher",
                        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener(engine: Engine, tmp_path: Path) -> Iterator[tuple[int, list[str]]]:
    """A ``pregbridge listen-hl7`` process over the populated store; yields (port, the CLI's store options)."""
    populate(engine)
    store = ["--database-url", engine.url.render_as_string(hide_password=False), "--data-dir", str(tmp_path)]
    port = _free_port()
    log = tmp_path / "listener.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "server", *store, "listen-hl7", "--port", str(port)],
                                cwd=ROOT, env=dict(os.environ, PYTHONWARNINGS="ignore"), stdout=sink, stderr=sink)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    try:
        yield port, store
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()


ANSWERS: list[str] = []


def _ack(port: int) -> str:
    """MSA-1 of the answer to a PIX query from MSH-3 ``OTHERAPP`` (no configured sender matches it)."""
    message = fixture("pix_q23_ceased_dnr.hl7").replace(b"|MIRTH|AHUS|", b"|OTHERAPP|LAB|")
    with MLLPClient("127.0.0.1", port) as client:
        reply = client.send_message(message)
    ANSWERS.append(str(hl7.parse(reply.decode("utf-8")).segment("MSA")[1]))
    return ANSWERS[-1]


def _until(port: int, code: str, seconds: float = 15.0) -> float:
    start = time.monotonic()
    while (got := _ack(port)) != code:
        assert time.monotonic() - start < seconds, f"still {got} after {seconds} s"
        time.sleep(0.25)
    return time.monotonic() - start


def test_peers_reach_a_running_listener_and_the_usage_report_counts_its_calls(
        listener: tuple[int, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    port, store = listener
    ANSWERS.clear()
    assert _ack(port) == "AR"  # 127.0.0.1 and OTHERAPP are no configured senders
    assert main([*store, "hl7", "peers", "add", "127.0.0.0/8", "basis"]) == 0
    assert "peer 127.0.0.0/8 sends as account basis" in capsys.readouterr().out
    assert _until(port, "AA") < 5  # the listener re-reads the table every 2 s
    for _ in range(3):
        assert _ack(port) == "AA"
    assert main([*store, "hl7", "peers", "list", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert (row["peer"], row["account"], row["source"]) == ("127.0.0.0/8", "basis", "store")
    assert main([*store, "hl7", "peers", "add", "127.0.0.1/8", "mirth"]) == 2  # the same network, normalised
    assert "already kept" in capsys.readouterr().err
    assert main([*store, "hl7", "peers", "add", "OTHERAPP^LAB", "no-such-account"]) == 1
    assert "no account named no-such-account" in capsys.readouterr().err
    assert main([*store, "hl7", "peers", "remove", "127.0.0.1/8"]) == 0
    capsys.readouterr()
    assert _until(port, "AR") < 5
    assert main([*store, "hl7", "peers", "remove", "127.0.0.0/8"]) == 1

    # the listener's audit records: the answered calls as "basis", the refusals without an account
    time.sleep(1.0)  # the listener's batched audit writer commits within 50 ms
    answered = ANSWERS.count("AA")
    assert answered >= 4 and ANSWERS.count("AR") >= 2
    assert main([*store, "usage-report", "--json"]) == 0
    rows = {r["account"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    basis = rows["basis"]
    assert basis["profile"] == "basis" and basis["faces"] == ["hl7"] and basis["operations"] == {"QBP^Q23": answered}
    assert basis["calls"] == answered and basis["refused"] == 0 and basis["persons_returned"] >= answered
    assert basis["elements"] == ["addresses", "birth", "death", "gender", "identifiers", "name", "status"]
    assert basis["parts"][0] == "NorwegianIdentificationNumber" and "Name" in basis["parts"]
    assert "FamilyRelation" not in basis["parts"] and "AddressProtection" in basis["parts"]
    assert basis["max_protection"] == "fortrolig"
    mirth = rows["mirth"]  # an account that never called: listed, with nothing released
    assert mirth["calls"] == 0 and mirth["elements"] == [] and mirth["parts"] == []
    assert main([*store, "usage-report", "--csv"]) == 0
    by_account = {r["account"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}
    assert by_account["basis"]["operations"] == f"QBP^Q23={answered}" and by_account["basis"]["calls"] == str(answered)
    assert main([*store, "usage-report", "--since", "2999-01-01"]) == 0
    table = capsys.readouterr().out
    assert "basis" in table and "QBP^Q23" not in table


@pytest.mark.parametrize("key, stored", [("10.1.2.3/24", "10.1.2.0/24"), (" ::1 ", "::1/128"), ("dips", "DIPS"),
                                         ("Mirth^Ahus", "MIRTH^AHUS")])
def test_peer_keys_are_stored_in_the_form_the_listener_compares(key: str, stored: str) -> None:
    assert normal_peer(key) == stored


@pytest.mark.parametrize("key", ["", "a b", "A|B", "A^B^C", "^AHUS", "x" * 201, "MIRTH\x00"])
def test_hostile_peer_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidInput):
        normal_peer(key)


def test_stored_peers_join_the_configured_ones_and_win_for_the_same_peer() -> None:
    from server.hl7.peers import PeerTable
    from server.hl7.settings import MllpSettings

    configured = MllpSettings(peers={"10.0.0.0/8": "wide", "10.1.2.3": "host", "dips": "dips-ous"})
    table = PeerTable.of(configured, {"10.1.2.3/32": "stored-host", "MIRTH^AHUS": "mirth", "DIPS": "dips-new"})
    assert [(str(net), account) for net, account in table.networks] == [("10.1.2.3/32", "stored-host"),
                                                                       ("10.0.0.0/8", "wide")]
    assert dict(table.senders) == {"DIPS": "dips-new", "MIRTH^AHUS": "mirth"}
