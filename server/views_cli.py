"""``pregbridge views rebuild [--check]``: rebuild and verify every derived per-person table (store/derived.py),
and the registers' derived columns (``hpr_person``'s name keys).

Every person's derived rows (``person_identifier``, ``person_search``, ``person_brief``, ``person_current``) are
compared with what its stored document gives, in batches by person id (memory stays flat), with a progress bar
on a terminal. ``rebuild`` rewrites the rows of every person that differs and records the code's layouts; with
``--check`` nothing is written. Exit codes: 0 clean (or rebuilt), 1 drift found by ``--check`` (a count per
table is printed), 2 bad configuration. Transcript in docs/cli.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.config import Settings

__all__ = ["add_subcommands", "cmd_views_rebuild"]

out = Console(soft_wrap=True)
err = Console(stderr=True)


def cmd_views_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from sqlalchemy import func, select

    from server.bootstrap import build_engine
    from store import schema as s
    from store.derived import (
        COLUMNS,
        DERIVED,
        Derived,
        DerivedColumns,
        check_views,
        rebuild_views,
        recorded_layouts,
        rekey_columns,
    )
    from store.engine import migrate

    engine = build_engine(settings, run_migrations=False)
    if not args.check:  # the schema at head first; the drifted rows are rebuilt below (and counted)
        migrate(engine, rebuild_stale=False)
    try:
        with engine.connect() as conn:
            total = int(conn.execute(select(func.count()).select_from(s.person)).scalar_one())
            layouts = recorded_layouts(conn)
        verb = "checking" if args.check else "rebuilding"
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, disable=not err.is_terminal) as progress:
            task = progress.add_task(f"{verb} derived rows", total=total)
            run = check_views if args.check else rebuild_views
            result = run(engine, lambda n: progress.advance(task, n))
            rekeyed = {d.name: rekey_columns(engine, d, check=args.check)[1] for d in COLUMNS}
    finally:
        engine.dispose()
    tables: list[Derived | DerivedColumns] = [*DERIVED, *COLUMNS]
    stale = {d.name: layouts[d.name] for d in tables if layouts[d.name] != d.layout}
    rows: list[dict[str, Any]] = [{"table": d.name, "layout": d.layout, "recorded": layouts[d.name],
                                   "persons": result.drift[d.name]} for d in DERIVED]
    label = "persons drifted" if args.check else "persons rewritten"
    out.print(f"{result.persons:,} persons compared with their documents"
              + ("" if args.check else "; the rows that differed rewritten"))
    for r in rows:
        shown = r["recorded"] == r["layout"] or not args.check
        layout = r["layout"] if shown else f"{r['layout']} (recorded: {r['recorded']})"
        out.print(f"  {r['table']:<18} layout {layout:<22} {label}: {r['persons']:,}")
    for c in COLUMNS:  # a register's derived columns (hpr_person's name keys), per record
        shown = layouts[c.name] == c.layout or not args.check
        layout = c.layout if shown else f"{c.layout} (recorded: {layouts[c.name]})"
        label = "records drifted" if args.check else "records re-keyed"
        out.print(f"  {c.name:<18} layout {layout:<22} {label}: {rekeyed[c.name]:,}")
    drift = sum(result.drift.values()) + sum(rekeyed.values())
    if not args.check:
        return 0
    if drift or stale:
        out.print(f"drift: {drift:,} person row set(s) or record(s) differ from their documents"
                  + (f"; layouts recorded differ for {', '.join(stale)}" if stale else "")
                  + " — run `pregbridge views rebuild`")
        return 1
    out.print("clean: every derived row matches its document")
    return 0


def add_subcommands(sub: Any) -> None:
    sp = sub.add_parser("views", help="maintain the derived per-person tables (store/derived.py)")
    vs = sp.add_subparsers(dest="views_command", required=True)
    rp = vs.add_parser("rebuild", help="rebuild every derived per-person table from the person documents",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    rp.add_argument("--check", action="store_true", default=False,
                    help="only verify: exit 1 and print a count per table when a row differs from its document")
    rp.set_defaults(func=cmd_views_rebuild)
