"""``pregbridge`` (also ``python -m server``): the operator's command line.

Subcommands: serve, listen-hl7, filematch, replay, record, init, demo-data, load, ingest, rejects, users,
audit, krk, views. Long work shows a progress bar and ends with a summary; errors end with a one-line message and exit
code 2 (bad input) or 1 (failure), never a stack trace. Transcripts are in docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from server.access.cli import add_subcommands as add_access_subcommands
from server.bootstrap import build_engine
from server.config import Settings, load_settings
from server.fake_persontjenesten_cli import add_subcommands as add_fake_persontjenesten_subcommands
from server.filematch_cli import add_subcommands as add_filematch_subcommands
from server.hl7.cli import add_subcommands as add_hl7_subcommands
from server.replay.cli import add_subcommands as add_replay_subcommands
from server.soap.krk.cli import add_subcommands as add_krk_subcommands
from server.sync_cli import add_subcommands as add_sync_subcommands
from server.views_cli import add_subcommands as add_views_subcommands
from store import schema as s
from store.errors import InvalidInput, PregbridgeError

__all__ = ["main"]

console = Console(stderr=True)
out = Console(soft_wrap=True)


@contextmanager
def _bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=total)
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
              f"  HPR (SOAP 1.1 / 1.2):    {base}/v2/HPR/Basic?wsdl, {base}/v2/HPR?wsdl\n"
              f"  KRK (SOAP 1.1 / 1.2):    {base}/v1/krk/Basic?wsdl, {base}/v1/krk?wsdl\n"
              f"  health:                  {base}/health")
    serve(settings)
    return 0


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    build_engine(settings).dispose()
    out.print("store schema is up to date")
    return 0


def cmd_demo_data(settings: Settings, args: argparse.Namespace) -> int:
    from store.synthetic import generate_population

    with _bar(f"generating {args.persons:,} persons", args.persons) as advance:
        manifest = generate_population(args.out, args.persons, args.seed, feed_days=args.days, progress=advance)
    out.print(f"wrote {manifest.persons:,} persons and {manifest.feed_events:,} feed events over "
              f"{manifest.feed_days} days to {args.out} (seed {args.seed})")
    return 0


def cmd_load(settings: Settings, args: argparse.Namespace) -> int:
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
    with engine.connect() as conn:
        rows = conn.execute(select(s.reject).order_by(s.reject.c.id.desc()).limit(args.limit)).all()
    for r in reversed(rows):
        where = f"{r.file} line {r.line}" + (f" seq {r.seq}" if r.seq else "")
        out.print(f"{r.created_at:%Y-%m-%d %H:%M} {r.origin:6} {where}: {r.reason}")
    out.print(f"{len(rows)} reject(s) shown")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pregbridge", description=__doc__.split("\n")[0])
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
    sp.add_argument("--limit", type=int, default=50)
    sp.set_defaults(func=cmd_rejects)

    add_access_subcommands(sub)  # users add|passwd|disable|enable|list, audit
    add_hl7_subcommands(sub)  # listen-hl7
    add_filematch_subcommands(sub)  # filematch run|submit|status|fetch|worker
    add_replay_subcommands(sub)  # replay, record, replay-make-corpus
    add_fake_persontjenesten_subcommands(sub)  # fake-persontjenesten
    add_sync_subcommands(sub)  # sync [--once|--status]
    add_krk_subcommands(sub)  # krk load
    add_views_subcommands(sub)  # views rebuild [--check]
    return p


def _settings(args: argparse.Namespace) -> Settings:
    from dataclasses import replace

    settings = load_settings(args.config)
    store = settings.store
    if args.database_url:
        store = replace(store, url=args.database_url)
    if args.data_dir:
        store = replace(store, data_dir=args.data_dir)
    http = settings.http
    for key in ("host", "port", "workers"):
        if getattr(args, key, None) is not None:
            http = replace(http, **{key: getattr(args, key)})
    return replace(settings, store=store, http=http)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        return int(args.func(settings, args))
    except InvalidInput as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except PregbridgeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 1
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    except SQLAlchemyError as exc:
        console.print(f"[red]error:[/red] the store is unavailable ({type(exc).__name__})")
        return 1
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

