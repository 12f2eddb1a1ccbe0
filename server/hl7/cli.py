"""``pregbridge listen-hl7``: run the HL7 v2 MLLP listener in this process until SIGINT/SIGTERM.

Several processes may share one port with ``--reuse-port`` (or ``hl7.reuse_port = true``): start the
command N times; the kernel spreads new connections over them (docs/hl7.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
from typing import Any

__all__ = ["add_subcommands", "cmd_listen_hl7"]


def cmd_listen_hl7(settings: Any, args: argparse.Namespace) -> int:
    """Serve ``settings.hl7`` (``--host``, ``--port`` and ``--reuse-port`` are applied by the configuration
    loader, server/cli.py) with the HL7 face the composition root builds."""
    from server.bootstrap import build_hl7_app
    from server.hl7.app import serve

    app, audit = build_hl7_app(settings)
    try:
        gc.freeze()  # long-lived startup objects out of the collector's way (as server.runner does)
        asyncio.run(serve(settings.hl7, app, on_close=app.closed))
    finally:
        audit.close()
        app.engine.dispose()
    return 0


def add_subcommands(subparsers: Any) -> None:
    sp = subparsers.add_parser("listen-hl7", help="serve HL7 v2 over MLLP (PDQ, PIX, A19, felles hjelpenummer)")
    sp.add_argument("--host", help="override hl7.host")
    sp.add_argument("--port", type=int, help="override hl7.port (default 2575)")
    sp.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (several processes, one port)")
    sp.set_defaults(func=cmd_listen_hl7)
