"""``pregbridge identify estimate [--sample FILE] [--format csv|fixed|xml] [--pairs N]``: estimate and store
identification's Fellegi–Sunter parameters (store/linkage/estimate.py).

The register gives the term frequencies and u; a sample client file (records without numbers, in a
Filematch input format) gives m by EM. Run it after a large load; identification reads the newest
estimation within a minute (store/linkage/params.py). ``--if-stale`` estimates only when the parameters in
force are stale (``store.linkage.params.stale``: never estimated, or on a register under half today's
size), which ``pregbridge load`` and ``pregbridge sync --once`` also say when they finish; re-estimating is
not automatic (at 1M persons it takes about a minute of CPU, and m wants a sample of client records).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["add_subcommands", "say_if_stale"]

out = Console(soft_wrap=True)


def cmd_estimate(settings: Any, args: argparse.Namespace) -> int:
    from filematch.formats import format_named
    from filematch.pipeline import identify_queries
    from server.bootstrap import build_engine
    from store.linkage.estimate import estimate
    from store.linkage.params import save, stale

    if settings.upstream.mode == "read-through":
        out.print("identify estimate: refused in read-through mode — the store holds only the persons this site "
                  "asked about, not the register; estimate on a replica and copy its linkage_parameters row "
                  "(docs/filematch.md)", style="red")
        return 2
    engine = build_engine(settings)
    if args.if_stale:
        with engine.connect() as conn:
            why = stale(conn)
        if why is None:
            out.print("linkage parameters are current: not re-estimated")
            return 0
        out.print(f"linkage parameters are stale: {why}")
    samples = []
    if args.sample:
        fmt = format_named(args.format)
        records = fmt.read(args.sample, fmt.detect(args.sample, None))
        samples = list(itertools.islice(identify_queries(records), args.limit))
    started = time.perf_counter()
    with engine.begin() as conn:
        params = estimate(conn, samples, pairs=args.pairs)
        version = save(conn, params)
    out.print(f"linkage parameters version {version}: {params.persons:,} persons, {len(samples):,} sample records, "
              f"prior {params.prior:.3f}, {time.perf_counter() - started:.1f} s")
    return 0


def say_if_stale(engine: Any) -> None:
    """After a load or a sync: say (and log, ``store.linkage.params.warn_if_stale``) when identification's
    parameters no longer fit the register."""
    from store.linkage.params import warn_if_stale

    with engine.connect() as conn:
        why = warn_if_stale(conn)
    if why:
        out.print(f"identification's parameters are stale ({why}): pregbridge identify estimate --if-stale")


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("identify", help="identification by demographics: estimate its parameters")
    isub = p.add_subparsers(dest="identify_command", required=True)
    sp = isub.add_parser("estimate", help="estimate and store the Fellegi–Sunter parameters from the register")
    sp.add_argument("--sample", type=Path, help="client records without numbers, for m (EM)")
    sp.add_argument("--format", default="csv", help="the sample's format (csv, fixed, xml)")
    sp.add_argument("--limit", type=int, default=20_000, help="sample records used at most")
    sp.add_argument("--pairs", type=int, default=200_000, help="random register pairs for u")
    sp.add_argument("--if-stale", action="store_true",
                    help="only when the parameters are stale: never estimated, or estimated on a register under "
                         "half today's size (for a timer or a script after loads)")
    sp.set_defaults(func=cmd_estimate)
