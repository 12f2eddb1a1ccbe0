"""``pregbridge identify estimate [--sample FILE] [--format csv|fixed|xml] [--pairs N]``: estimate and store
identification's Fellegi–Sunter parameters (store/linkage/estimate.py).

The register gives the term frequencies and u; a sample client file (records without numbers, in a
Filematch input format) gives m by EM. Run it after a large load; identification reads the newest
estimation within a minute (store/linkage/params.py).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["add_subcommands"]

out = Console(soft_wrap=True)


def cmd_estimate(settings: Any, args: argparse.Namespace) -> int:
    from filematch.formats import format_named
    from filematch.pipeline import identify_queries
    from server.bootstrap import build_engine
    from store.linkage.estimate import estimate
    from store.linkage.params import save

    samples = []
    if args.sample:
        fmt = format_named(args.format)
        records = fmt.read(args.sample, fmt.detect(args.sample, None))
        samples = list(itertools.islice(identify_queries(records), args.limit))
    engine = build_engine(settings)
    started = time.perf_counter()
    with engine.begin() as conn:
        params = estimate(conn, samples, pairs=args.pairs)
        version = save(conn, params)
    out.print(f"linkage parameters version {version}: {params.persons:,} persons, {len(samples):,} sample records, "
              f"prior {params.prior:.3f}, {time.perf_counter() - started:.1f} s")
    return 0


def add_subcommands(sub: Any) -> None:
    p = sub.add_parser("identify", help="identification by demographics: estimate its parameters")
    isub = p.add_subparsers(dest="identify_command", required=True)
    sp = isub.add_parser("estimate", help="estimate and store the Fellegi–Sunter parameters from the register")
    sp.add_argument("--sample", type=Path, help="client records without numbers, for m (EM)")
    sp.add_argument("--format", default="csv", help="the sample's format (csv, fixed, xml)")
    sp.add_argument("--limit", type=int, default=20_000, help="sample records used at most")
    sp.add_argument("--pairs", type=int, default=200_000, help="random register pairs for u")
    sp.set_defaults(func=cmd_estimate)
