"""``pregbridge`` (also ``python -m server``): the operator's command line.

Subcommands: serve, listen-hl7, hl7 peers, filematch, replay, record, init, demo-data, load, ingest, rejects,
users, audit, usage-report, backup, krk, views. Listings take ``--json`` (and ``--csv``) and are never cut when piped
(server/output.py); every option's default shows in ``--help``. Long work shows a progress bar and ends with
a summary; errors end with a one-line message and exit code 2 (bad input) or 1 (failure), never a stack
trace. Transcripts are in docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from server.access.cli import add_subcommands as add_access_subcommands
from server.bootstrap import build_engine
from server.config import Settings, load_settings
from server.fake_persontjenesten_cli import add_subcommands as add_fake_persontjenesten_subcommands
from server.filematch_cli import add_subcommands as add_filematch_subcommands
from server.hl7.cli import add_subcommands as add_hl7_subcommands
from server.identify_cli import add_subcommands as add_identify_subcommands
from server.logs import configure_logging
from server.output import add_format_options, emit, show_defaults
from server.purge_cli import add_subcommands as add_purge_subcommands
from server.replay.cli import add_subcommands as add_replay_subcommands
from server.soap.krk.cli import add_subcommands as add_krk_subcommands
from server.sync_cli import add_subcommands as add_sync_subcommands
from server.views_cli import add_subcommands as add_views_subcommands
from store import schema as s
from store.errors import InvalidInput, PregbridgeError

__all__ = ["main"]

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


@contextmanager
def _bar(description: str, total: int | None, *, cumulative: bool = False) -> Iterator[Callable[[int], None]]:
    """A progress bar on a terminal (none otherwise). The callback takes the records done since its last call,
    or with ``cumulative`` the records done so far (store.synthetic reports those)."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
        if cumulative:
            yield lambda n: progress.update(task, completed=n)
        else:
            yield lambda n: progress.advance(task, n)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from server.runner import serve

    if args.sync:  # the syncer runs beside the server as its own process (`pregbridge sync`), stopped with it
        import subprocess

        from server.sync_cli import child_argv

        syncer = subprocess.Popen(child_argv(args))
        try:
            return cmd_serve(settings, argparse.Namespace(**{**vars(args), "sync": False}))
        finally:
            syncer.terminate()
            syncer.wait(60)

    base = f"http://{settings.http.host}:{settings.http.port}"
    out.print(f"pregbridge serving with {settings.http.workers} worker processes — Ctrl-C stops\n"
              f"  PREG (SOAP 1.1 and 1.2): {base}{settings.preg.path}?wsdl\n"
              f"  AR (SOAP 1.1 / 1.2):     {base}/v1/AR/Basic?wsdl, {base}/v1/AR?wsdl\n"
              f"  FLR (SOAP 1.1 / 1.2):    {base}/v2/flr/Basic?wsdl, {base}/v2/flr?wsdl\n"
              f"  HPR (SOAP 1.1 / 1.2):    {base}/v2/HPR/Basic?wsdl, {base}/v2/HPR?wsdl\n"
              f"  KRK (SOAP 1.1 / 1.2):    {base}/v1/krk/Basic?wsdl, {base}/v1/krk?wsdl\n"
              f"  Filematch:               {base}/filematch/v1\n"
              f"  health, metrics:         {base}/health, {base}/metrics")
    serve(settings)
    return 0


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    build_engine(settings).dispose()
    out.print("store schema is up to date")
    return 0


def cmd_demo_data(settings: Settings, args: argparse.Namespace) -> int:
    from store.synthetic import generate_population

    with _bar(f"generating {args.persons:,} persons", args.persons, cumulative=True) as advance:
        manifest = generate_population(args.out, args.persons, args.seed, feed_days=args.days, progress=advance)
    out.print(f"wrote {manifest.persons:,} persons and {manifest.feed_events:,} feed events over "
              f"{manifest.feed_days} days to {args.out} (seed {args.seed})")
    return 0


def cmd_load(settings: Settings, args: argparse.Namespace) -> int:
    from server.identify_cli import say_if_stale
    from store.loading import load_population, read_manifest

    manifest = read_manifest(args.directory)
    engine = build_engine(settings)
    with _bar("loading persons", int(manifest.get("persons", 0)) or None) as advance:
        summary = load_population(engine, args.directory, progress=advance)
    regs = ", ".join(f"{k} {v:,}" for k, v in summary.registers.items()) or "none"
    out.print(f"loaded {summary.persons:,} persons ({summary.replaced:,} replaced, {summary.rejected:,} rejected) "
              f"and registers: {regs} in {summary.seconds:.1f} s; feed position {summary.feed_position}")
    if summary.rejected:
        out.print("rejected records are listed by: pregbridge rejects")
    say_if_stale(engine)
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from store.feed import feed_files, ingest

    files = feed_files(args.feed)
    engine = build_engine(settings)
    with _bar("applying events", sum(_count_lines(f) for f in files)) as advance:
        summary = ingest(engine, args.feed, progress=advance)
    out.print(f"{summary.events:,} events in {summary.files} file(s): {summary.applied:,} applied, "
              f"{summary.skipped:,} already applied, {summary.conflicts:,} conflicts, "
              f"{summary.rejected:,} rejected; feed position {summary.last_seq} ({summary.seconds:.1f} s)")
    for reason in summary.reject_reasons[:20]:
        out.print(f"  rejected: {reason}")
    return 1 if summary.conflicts or summary.rejected else 0


def cmd_rejects(settings: Settings, args: argparse.Namespace) -> int:
    engine = build_engine(settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(s.reject).order_by(s.reject.c.id.desc()).limit(args.limit)).all()
    finally:
        engine.dispose()
    emit(args, ("created", "origin", "file", "line", "seq", "reason"),
         [{"created": r.created_at, "origin": r.origin, "file": r.file, "line": r.line, "seq": r.seq,
           "reason": r.reason} for r in reversed(rows)], summary=f"{len(rows)} reject(s) shown, oldest first")
    return 0


def cmd_usage_report(settings: Settings, args: argparse.Namespace) -> int:
    from server.access import load_profiles
    from server.usage_report import COLUMNS, usage_report

    engine = build_engine(settings)
    try:
        report = usage_report(engine, load_profiles(settings.access.profiles_path), args.since)
    finally:
        engine.dispose()
    since = f" since {args.since:%Y-%m-%d %H:%M:%S}" if args.since else ""
    emit(args, COLUMNS, [u.row(args.output_format) for u in report],
         summary=f"{len(report)} account(s); calls{since}, times UTC", extra={"since": args.since})
    return 0


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """A consistent copy of a SQLite store while it serves (SQLite's online backup API)."""
    import sqlite3

    engine = build_engine(settings)
    try:
        if engine.dialect.name != "sqlite" or not engine.url.database:
            raise InvalidInput("pregbridge backup copies a SQLite store; for PostgreSQL use pg_dump "
                               "(docs/operations.md)")
        source_path = engine.url.database
    finally:
        engine.dispose()
    if args.output.exists():
        raise InvalidInput(f"{args.output} exists; a backup never overwrites a file")
    partial = args.output.with_name(args.output.name + ".partial")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(partial)
        try:
            with _bar("copying pages", None, cumulative=True) as advance:
                source.backup(target, pages=4096, progress=lambda status, remaining, total: advance(total - remaining))
            pages = target.execute("PRAGMA page_count").fetchone()[0]
            check = target.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            target.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    if check != "ok":
        partial.unlink(missing_ok=True)
        raise PregbridgeError(f"the copy failed its integrity check ({check})")
    partial.replace(args.output)
    out.print(f"backed up {source_path} to {args.output}: {pages:,} pages, integrity check ok")
    return 0


def _parser() -> argparse.ArgumentParser:
    from server.version import version

    p = argparse.ArgumentParser(prog="pregbridge", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"pregbridge {version()}")
    p.add_argument("--config", type=Path, help="TOML configuration file (docs/config.md)")
    p.add_argument("--database-url", help="override store.url (SQLite or PostgreSQL URL)")
    p.add_argument("--data-dir", type=Path, help="override store.data_dir")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("serve", help="serve the faces over HTTP")
    sp.add_argument("--host")
    sp.add_argument("--port", type=int)
    sp.add_argument("--workers", type=int)
    sp.add_argument("--sync", action="store_true", help="also run `pregbridge sync` beside the server")
    sp.set_defaults(func=cmd_serve)

    sub.add_parser("init", help="create or upgrade the store schema").set_defaults(func=cmd_init)

    sp = sub.add_parser("demo-data", help="generate a synthetic population with its change feed and registers")
    sp.add_argument("--persons", type=int, default=1000)
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--days", type=int, default=7, help="days of change feed after the snapshot")
    sp.add_argument("--out", type=Path, required=True)
    sp.set_defaults(func=cmd_demo_data)

    sp = sub.add_parser("load", help="bulk load a population directory")
    sp.add_argument("directory", type=Path)
    sp.set_defaults(func=cmd_load)

    sp = sub.add_parser("ingest", help="apply a change feed file or directory")
    sp.add_argument("feed", type=Path)
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("rejects", help="list records a load or ingest could not take")
    sp.add_argument("--limit", type=int, default=50, help="show the newest N")
    add_format_options(sp)
    sp.set_defaults(func=cmd_rejects)

    from server.access.cli import _iso

    sp = sub.add_parser("usage-report", help="per account: faces, operations, volumes, elements released, "
                        "Persontjenesten parts needed")
    sp.add_argument("--since", type=_iso, help="only calls at or after this ISO 8601 date or time (UTC unless an "
                    "offset is given); all when not given")
    add_format_options(sp)
    sp.set_defaults(func=cmd_usage_report)

    sp = sub.add_parser("backup", help="copy a SQLite store while it serves (PostgreSQL: pg_dump)")
    sp.add_argument("output", type=Path, help="the copy to write (never overwritten)")
    sp.set_defaults(func=cmd_backup)

    add_access_subcommands(sub)  # users add|passwd|disable|enable|unlock|set-profile|delete|list, audit
    add_hl7_subcommands(sub)  # listen-hl7, hl7 peers add|remove|list
    add_filematch_subcommands(sub)  # filematch run|submit|status|fetch|worker
    add_replay_subcommands(sub)  # replay, record, replay-make-corpus
    add_fake_persontjenesten_subcommands(sub)  # fake-persontjenesten
    add_sync_subcommands(sub)  # sync [--once|--status [--json]]
    add_purge_subcommands(sub)  # purge [--dry-run] [--json] (read-through retention)
    add_krk_subcommands(sub)  # krk load
    add_identify_subcommands(sub)  # identify estimate
    show_defaults(p)
    add_views_subcommands(sub)  # views rebuild [--check]
    return p


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of the file and environment, with the command line's flags over them (checked alike)."""
    flags = {"store.url": ("--database-url", args.database_url), "store.data_dir": ("--data-dir", args.data_dir)}
    section = {"serve": "http", "listen-hl7": "hl7"}.get(getattr(args, "command", ""))
    if section is not None:  # serve --host/--port/--workers; listen-hl7 --host/--port/--reuse-port
        for key in ("host", "port", "workers", "reuse_port"):
            if getattr(args, key, None) not in (None, False):
                flags[f"{section}.{key}"] = ("--" + key.replace("_", "-"), getattr(args, key))
    return load_settings(args.config, overrides={k: v for k, v in flags.items() if v[1] is not None})


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logging(settings.log.format, settings.log.level)
        return int(args.func(settings, args))
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    except PregbridgeError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 1
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    except SQLAlchemyError as exc:
        console.print(f"[red]error:[/red] the store is unavailable ({type(exc).__name__})")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

