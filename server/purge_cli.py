"""``pregbridge purge [--dry-run] [--json]``: the read-through retention purge (store.retention, docs/operations.md).

Deletes the persons not asked about for ``[upstream] retention_days`` with every row the store keeps about them
(the audit trail keeps its records), in bounded batches; ``--dry-run`` counts them and deletes nothing. Counts
only: no person is named. Refused (exit 2) in replica mode, where the store holds the whole population on
purpose. ``pregbridge sync`` runs the same purge every ``[upstream] purge_interval`` seconds in read-through mode.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.console import Console

from server.config import Settings
from store.errors import InvalidInput

__all__ = ["add_subcommands", "cmd_purge"]

out = Console(soft_wrap=True)

REFUSED = ("pregbridge purge runs in read-through mode only ([upstream] mode = \"read-through\"); in replica mode "
           "the store holds the whole population and nothing is purged")


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    if settings.upstream.mode != "read-through":
        raise InvalidInput(REFUSED)
    from server.bootstrap import build_engine
    from store.retention import purge

    days = settings.upstream.retention_days
    engine = build_engine(settings)
    try:
        result = purge(engine, days, dry_run=args.dry_run)
    finally:
        engine.dispose()
    if args.json:
        doc: dict[str, Any] = {"dry_run": result.dry_run, "retention_days": days,
                               "cutoff": f"{result.cutoff:%Y-%m-%dT%H:%M:%S}Z", "persons": result.persons,
                               "adopted": result.adopted, "seen": result.seen, "batches": result.batches,
                               "seconds": round(result.seconds, 3)}
        sys.stdout.write(json.dumps(doc) + "\n")
        return 0
    verb = "would delete" if result.dry_run else "deleted"
    out.print(f"{verb} {result.persons:,} of {result.seen:,} persons not asked about for {days} days (since "
              f"{result.cutoff:%Y-%m-%d %H:%M:%S} UTC) in {result.seconds:.1f} s"
              + ("" if result.dry_run else f"; {result.adopted:,} never asked about keep their stored time"))
    return 0


def add_subcommands(sub: Any) -> None:
    sp = sub.add_parser("purge", help="read-through: delete the persons not asked about for upstream.retention_days")
    sp.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
    sp.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    sp.set_defaults(func=cmd_purge)
