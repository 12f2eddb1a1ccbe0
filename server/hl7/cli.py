"""``pregbridge listen-hl7``: run the HL7 v2 MLLP listener in this process until SIGINT/SIGTERM; and
``pregbridge hl7 peers add|remove|list``: the senders kept in the store.

Several processes may share one port with ``--reuse-port`` (or ``hl7.reuse_port = true``): start the
command N times; the kernel spreads new connections over them (docs/hl7.md). A peer added or removed
with ``hl7 peers`` is honoured by every running listener within ``access.account_state_seconds``
(server/hl7/peers.py); ``hl7 peers list`` shows the configuration file's peers too.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from typing import Any

__all__ = ["add_subcommands", "cmd_listen_hl7", "cmd_peers_add", "cmd_peers_list", "cmd_peers_remove"]


def cmd_listen_hl7(settings: Any, args: argparse.Namespace) -> int:
    """Serve ``settings.hl7`` (``--host``, ``--port`` and ``--reuse-port`` are applied by the configuration
    loader, server/cli.py) with the HL7 face the composition root builds."""
    from server.bootstrap import build_hl7_app, listener_endpoint
    from server.hl7.app import serve
    from server.metrics import timed_handler

    app, audit = build_hl7_app(settings)
    endpoint = listener_endpoint(settings, app.engine, settings.hl7, args.metrics_port)  # docs/metrics.md
    try:
        gc.freeze()  # long-lived startup objects out of the collector's way (as server.runner does)
        asyncio.run(serve(settings.hl7, timed_handler(app), on_close=app.closed))
    finally:
        if endpoint is not None:
            endpoint.stop()
        audit.close()
        app.engine.dispose()
    return 0


def _peer_store(settings: Any) -> Any:
    from server.bootstrap import build_engine
    from server.hl7.peers import PeerStore

    return PeerStore(build_engine(settings))


def cmd_peers_add(settings: Any, args: argparse.Namespace) -> int:
    from server.access import AccountStore
    from store.errors import NotFound

    store = _peer_store(settings)
    try:
        if AccountStore(store.engine).get(args.account) is None:
            raise NotFound(f"no account named {args.account} (pregbridge users add)")
        key = store.add(args.peer, args.account)
    finally:
        store.engine.dispose()
    sys.stdout.write(f"peer {key} sends as account {args.account} (running listeners take it within seconds)\n")
    return 0


def cmd_peers_remove(settings: Any, args: argparse.Namespace) -> int:
    store = _peer_store(settings)
    try:
        key = store.remove(args.peer)
    finally:
        store.engine.dispose()
    sys.stdout.write(f"peer {key} removed (running listeners drop it within seconds)\n")
    return 0


def cmd_peers_list(settings: Any, args: argparse.Namespace) -> int:
    from server.hl7.peers import normal_peer_or_raw
    from server.output import emit

    store = _peer_store(settings)
    try:
        stored = store.list()
    finally:
        store.engine.dispose()
    rows: dict[str, dict[str, Any]] = {}
    for key, account in settings.hl7.peers.items():
        rows[normal_peer_or_raw(key)] = {"peer": normal_peer_or_raw(key), "account": account, "source": "config",
                                         "added": None}
    for key, account, created in stored:  # the stored entry wins, as in the listener
        rows[key] = {"peer": key, "account": account, "source": "store", "added": created}
    emit(args, ("peer", "account", "source", "added"), sorted(rows.values(), key=lambda r: r["peer"]),
         summary=f"{len(rows)} peer(s); stored ones are read by running listeners, configured ones at start")
    return 0


def add_subcommands(subparsers: Any) -> None:
    sp = subparsers.add_parser("listen-hl7", help="serve HL7 v2 over MLLP (PDQ, PIX, A19, felles hjelpenummer)")
    sp.add_argument("--host", help="override hl7.host")
    sp.add_argument("--port", type=int, help="override hl7.port (default 2575)")
    sp.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (several processes, one port)")
    sp.add_argument("--metrics-port", type=int, help="serve /health and /metrics on this loopback port "
                    "(overrides metrics.hl7_port; 0: none; each listener process needs its own)")
    sp.set_defaults(func=cmd_listen_hl7)

    from server.output import add_format_options

    hl7 = subparsers.add_parser("hl7", help="HL7 senders kept in the store (peers add|remove|list)")
    peers = hl7.add_subparsers(dest="hl7_command", required=True).add_parser(
        "peers", help="who may send over MLLP, as which account")
    actions = peers.add_subparsers(dest="peers_command", required=True)
    sp = actions.add_parser("add", help="let a peer send as an account")
    sp.add_argument("peer", help="IP address, CIDR network, or MSH-3^MSH-4 / MSH-3")
    sp.add_argument("account", help="an account of pregbridge users (its access profile applies)")
    sp.set_defaults(func=cmd_peers_add)
    sp = actions.add_parser("remove", help="stop accepting a stored peer")
    sp.add_argument("peer")
    sp.set_defaults(func=cmd_peers_remove)
    sp = actions.add_parser("list", help="the stored and the configured peers")
    add_format_options(sp)
    sp.set_defaults(func=cmd_peers_list)
