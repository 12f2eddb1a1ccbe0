"""``pregbridge krk load FILE [--replace]``: load or update the KRK register from its file (docs/krk.md).

Every problem is printed with its line (errors and warnings; never the value). A file with an error changes
nothing and exits 2; otherwise the contacts are written in one transaction (composed in server/bootstrap.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["add_subcommands"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def cmd_krk_load(settings: Any, args: argparse.Namespace) -> int:
    from server.bootstrap import load_krk

    result, problems = load_krk(settings, args.file, replace=args.replace)
    for p in problems:
        err.print(f"{args.file.name}: {p}", markup=False, highlight=False)
    if result is None:
        errors = sum(p.level == "error" for p in problems)
        err.print(f"{args.file.name}: {errors} error(s); the register is unchanged", markup=False, highlight=False)
        return 2
    removed = f"; contacts replaced by coverage: {', '.join(result.removed)}" if result.removed else ""
    out.print(f"KRK {'replaced' if args.replace else 'updated'}: {result.contacts} contact(s), "
              f"{result.covered} kommune(r) covered, "
              f"{sum(p.level == 'warning' for p in problems)} warning(s){removed}", markup=False, highlight=False)
    return 0


def add_subcommands(sub: Any) -> None:
    krk = sub.add_parser("krk", help="the kommuneoverlege contact register (KRK)")
    ops = krk.add_subparsers(dest="krk_command", required=True)
    sp = ops.add_parser("load", help="load or update the KRK register from a file (docs/krk.md)")
    sp.add_argument("file", type=Path)
    sp.add_argument("--replace", action="store_true",
                    help="replace the whole register (default: update the kommuner and bydeler in the file)")
    sp.set_defaults(func=cmd_krk_load)
