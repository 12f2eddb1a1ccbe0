"""``pregbridge fake-persontjenesten``: serve a demo population through Persontjenesten's contract until Ctrl-C.

For trying ``pregbridge sync`` and for tests and benchmarks (docs/upstream.md "The fake Persontjenesten").
The fake is built by :func:`server.bootstrap.build_fake_persontjenesten`; this module only reads the flags.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_subcommands", "cmd_fake_persontjenesten"]

_FAULTS = ("drop_every", "rate_limit_every", "unavailable_every", "error_every", "slow_every", "gone_every")


def cmd_fake_persontjenesten(settings: Any, args: argparse.Namespace) -> int:
    from rich.console import Console

    from server.bootstrap import build_fake_persontjenesten

    faults = {name: getattr(args, name) for name in _FAULTS}
    fake = build_fake_persontjenesten(
        args.population, host=args.host, port=args.port, extract=not args.no_extract, faults=faults,
        slow_seconds=args.slow_seconds, retry_after=args.retry_after, client_id=args.client_id,
        client_jwk=args.client_jwk, token_lifetime=args.token_lifetime, require_nonce=not args.no_nonce)
    out = Console(soft_wrap=True)
    pop = fake.population
    out.print(f"fake Persontjenesten serving {pop.size:,} persons and events 1..{pop.latest_sequence:,} "
              f"(null-day extract: {pop.extract_size:,}) — Ctrl-C stops\n"
              f"  base_url:       {fake.base_url}   (v2 /api/legal-basis/…, v3 /api/v3/full-access/…)\n"
              + (f"  token_endpoint: {fake.token_endpoint}   (client {args.client_id})"
                 if args.client_id else "  no authentication (start with --client-id and --client-jwk for HelseID)"))
    try:
        fake.server.serve_forever()
    finally:
        fake.server.server_close()
        pop.close()
    return 0


def add_subcommands(subparsers: Any) -> None:
    sp = subparsers.add_parser("fake-persontjenesten",
                               help="serve a demo population through Persontjenesten's API (for sync tests and demos)")
    sp.add_argument("--population", type=Path, required=True, help="a directory written by pregbridge demo-data")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, default=8090)
    sp.add_argument("--no-extract", action="store_true",
                    help="serve only the feed files' events under their own numbers (no PersonPopulated extract)")
    sp.add_argument("--client-id", help="require HelseID-like authentication for this client id")
    sp.add_argument("--client-jwk", type=Path, help="the client's public JWK (a private one is accepted; only its "
                                                    "public half is used)")
    sp.add_argument("--token-lifetime", type=int, default=300, help="seconds an access token is valid")
    sp.add_argument("--no-nonce", action="store_true", help="do not ask for a DPoP nonce at the token endpoint")
    for name in _FAULTS:
        sp.add_argument("--" + name.replace("_", "-"), type=int, default=0, metavar="N",
                        help=f"fault: {name.replace('_every', '').replace('_', ' ')} on every N-th API call"
                        if name != "gone_every" else "fault: the person of every N-th event answers 404")
    sp.add_argument("--slow-seconds", type=float, default=2.0, help="how slow a slow answer is")
    sp.add_argument("--retry-after", type=int, default=1, help="Retry-After (seconds) of 429 and 503 answers")
    sp.set_defaults(func=cmd_fake_persontjenesten)
