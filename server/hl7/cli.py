"""``pregbridge listen-hl7``: run the HL7 v2 MLLP listener in this process until SIGINT/SIGTERM.

Several processes may share one port with ``--reuse-port`` (or ``hl7.reuse_port = true``): start the
command N times; the kernel spreads new connections over them (docs/hl7.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from dataclasses import replace
from typing import Any

__all__ = ["add_subcommands", "cmd_listen_hl7"]


def cmd_listen_hl7(settings: Any, args: argparse.Namespace) -> int:
    from server.bootstrap import listener_endpoint
    from server.hl7.app import build_app, mllp_settings, serve
    from server.metrics import timed_handler

    mllp = mllp_settings(settings)
    if args.host:
        mllp = replace(mllp, host=args.host)
    if args.port is not None:
        mllp = replace(mllp, port=args.port)
    if args.reuse_port:
        mllp = replace(mllp, reuse_port=True)
    app, audit = build_app(settings, mllp)
    endpoint = listener_endpoint(settings, app.engine, mllp, args.metrics_port)  # /health, /metrics (docs/metrics.md)
    try:
        gc.freeze()  # long-lived startup objects out of the collector's way (as server.runner does)
        asyncio.run(serve(mllp, timed_handler(app), on_close=app.closed))
    finally:
        if endpoint is not None:
            endpoint.stop()
        audit.close()
        app.engine.dispose()
    return 0


def add_subcommands(subparsers: Any) -> None:
    sp = subparsers.add_parser("listen-hl7", help="serve HL7 v2 over MLLP (PDQ, PIX, A19, felles hjelpenummer)")
    sp.add_argument("--host", help="override hl7.host")
    sp.add_argument("--port", type=int, help="override hl7.port (default 2575)")
    sp.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (several processes, one port)")
    sp.add_argument("--metrics-port", type=int, help="serve /health and /metrics on this loopback port "
                    "(overrides metrics.hl7_port; 0: none; each listener process needs its own)")
    sp.set_defaults(func=cmd_listen_hl7)
