"""The HL7 face's sender authentication remembers the account a (host, MSH-3, MSH-4) maps to
(``Hl7App._sender``): held to its reference, ``Hl7App._account_name`` evaluated afresh against the current
peer table, for every ``hl7.peer_match`` mode, before and after peers are added to and removed from the store
(the remembered names are forgotten when the table is read again), and with disabled and unknown accounts."""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy import Engine

from server.access import AccessProfile, AccountStore, AuditWriter, AuthenticationFailed, load_profiles
from server.hl7.ack import Msh
from server.hl7.app import Hl7App
from server.hl7.listener import Peer
from server.hl7.peers import LivePeers, PeerStore
from server.hl7.settings import MllpSettings

HOSTS = ("10.1.2.3", "10.1.9.9", "192.168.0.7", "::1", "not-an-address")
SENDERS = (("MIRTH", "AHUS"), ("mirth", "ahus"), ("MIRTH", "OTHER"), ("DIPS", ""), ("LAB", "X"), ("", ""))
CONFIGURED = {"10.1.2.0/24": "net-account", "MIRTH^AHUS": "mirth-account", "DIPS": "dips-account",
              "192.168.0.7": "gone"}


def _msh(app: str, facility: str) -> Msh:
    return Msh(field_separator="|", encoding_characters="^~\\&", sending_application=app, sending_facility=facility,
               receiving_application="PREGBRIDGE", receiving_facility="NHN", message_type="QBP", trigger="Q23",
               structure="QBP_Q21", control_id="1", processing_id="P", version="2.5", accept_ack="",
               application_ack="", charset="")


def _reference(app: Hl7App, host: str, sender: tuple[str, str]) -> tuple[str, AccessProfile] | str:
    """The answer without the remembered names: the current table, the account read now."""
    table = app.peers.current()
    try:
        name = app._account_name(Peer(host, 1, 1), _msh(*sender), table)
        account = app.accounts.get(name)
        if account is None or account.disabled:
            raise AuthenticationFailed("sender's account unknown or disabled")
        return name, app.profiles[account.profile]
    except AuthenticationFailed as exc:
        return f"refused: {exc.message}"


def _answer(app: Hl7App, host: str, sender: tuple[str, str]) -> tuple[str, AccessProfile] | str:
    try:
        return app._sender(Peer(host, 1, 1), _msh(*sender))
    except AuthenticationFailed as exc:
        return f"refused: {exc.message}"


@pytest.mark.parametrize("match", ["address", "sender", "either", "both"])
def test_the_remembered_sender_gives_the_reference_answer_as_the_peers_change(engine: Engine, match: str) -> None:
    accounts = AccountStore(engine)
    for name in ("net-account", "mirth-account", "dips-account", "lab-account", "gone"):
        accounts.add(name, "sender-cache-pw-1", "full")
    accounts.disable("gone")
    settings = MllpSettings(port=0, peers=CONFIGURED, peer_match=match)
    audit = AuditWriter(engine, mode="sync")
    ttl = 0.05
    app = Hl7App(engine, accounts, load_profiles(None), audit, settings, account_state_seconds=ttl,
                 peers=LivePeers(settings, engine, ttl=ttl))
    store = PeerStore(engine)
    try:
        seen = []
        for change in (None, ("add", "LAB^X", "lab-account"), ("add", "10.1.9.9", "lab-account"),
                       ("add", "MIRTH^AHUS", "dips-account"), ("remove", "MIRTH^AHUS", ""),
                       ("remove", "10.1.9.9", "")):
            if change is not None:
                kind, key, account = change
                store.add(key, account) if kind == "add" else store.remove(key)
                time.sleep(2 * ttl)  # the next message reads the table again
            for host, sender in itertools.product(HOSTS, SENDERS):
                first, again = _answer(app, host, sender), _answer(app, host, sender)  # the second: remembered
                assert first == again == _reference(app, host, sender), (change, host, sender)
                seen.append(first)
        refused = [a for a in seen if isinstance(a, str)]
        assert refused and len(refused) < len(seen)  # both outcomes are exercised in every mode
        assert any(isinstance(a, tuple) and a[0] == "lab-account" for a in seen)  # a stored peer reached the app
        if match in ("sender", "either"):  # a stored sender overrode the configured one, then was removed
            assert {a[0] for a in seen if isinstance(a, tuple)} >= {"mirth-account", "dips-account"}
    finally:
        audit.close()
