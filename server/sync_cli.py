"""``pregbridge sync [--once] [--status [--json]]``: keep the store current from Persontjenesten (docs/upstream.md).

``sync`` follows the event feed until stopped (SIGTERM or Ctrl-C end it after the page in hand);
``--once`` applies what there is and exits; ``--status`` prints the position, the upstream's latest
sequence number, the lag and the last error (read-through mode: also the persons held, the last successful
read of the feed and the last retention purge; upstream.readthrough_feed), and exits; ``--json`` prints it as
one JSON document. In read-through mode the sync fetches only held persons and runs the retention purge every
``upstream.purge_interval`` seconds. A second syncer on the same store exits 3. Exit
codes: 0 done, 1 failure (the message names it; transient upstream failures end ``--once`` with 1), 2 bad
configuration, 3 another syncer runs. Everything is composed in server/bootstrap.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from dataclasses import asdict
from types import FrameType
from typing import Any

from rich.console import Console

from server.config import Settings
from store.errors import InvalidInput

__all__ = ["add_subcommands", "child_argv", "cmd_sync"]

out = Console(soft_wrap=True)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from server.bootstrap import build_engine, build_sync_client
    from upstream.sync import sync_status

    engine = build_engine(settings)
    client = build_sync_client(settings) if settings.upstream.base_url else None
    try:
        st = sync_status(engine, client)
    finally:
        if client is not None:
            client.close()
    rt = None
    if settings.upstream.mode == "read-through":
        from upstream.readthrough_feed import feed_figures

        rt = feed_figures(engine, st.last_run)
    if args.json:
        doc: dict[str, Any] = {"mode": settings.upstream.mode, **asdict(st), "read_through": None}
        if rt is not None:
            doc["read_through"] = {
                "held_persons": rt.held, "staleness_seconds": rt.staleness_seconds,
                "last_successful_read": _iso(rt.last_ok), "last_purge": _iso(rt.last_purge),
                "last_purge_persons": rt.last_purge_persons, "purged_total": rt.purged_total,
                "retention_days": settings.upstream.retention_days}
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        return 0
    lag = "unknown" if st.lag_events is None else f"{st.lag_events:,} events"
    if st.lag_seconds is not None and st.lag_events:
        lag += f", {st.lag_seconds:,.0f} s behind"
    out.print(f"position:        {st.position}\n"
              f"upstream latest: {'unknown' if st.latest is None else st.latest}\n"
              f"lag:             {lag}\n"
              f"syncer:          {'running (' + (st.holder or '') + ')' if st.running else 'not running'}\n"
              f"last run:        {st.last_run or 'never'}\n"
              f"last error:      {st.last_error or 'none'}")
    if rt is not None:
        stale = "never read" if rt.staleness_seconds is None else f"{rt.staleness_seconds:,.0f} s ago"
        purged = ("never" if rt.last_purge is None else
                  f"{_iso(rt.last_purge)} ({rt.last_purge_persons:,} persons; {rt.purged_total:,} in all)")
        out.print(f"mode:            read-through (retention {settings.upstream.retention_days} days)\n"
                  f"held persons:    {rt.held:,}\n"
                  f"last read:       {_iso(rt.last_ok) or 'never'} ({stale})\n"
                  f"last purge:      {purged}")
    return 0


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else f"{at:%Y-%m-%dT%H:%M:%S}Z"


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    if args.status:
        return _status(settings, args)
    if args.json:
        raise InvalidInput("--json goes with --status")
    from server.bootstrap import build_sync_engine, build_syncer
    from upstream.sync import SyncLock, SyncLockHeld, SyncSummary

    engine = build_sync_engine(settings)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _stop)
    lock = SyncLock(engine)
    try:
        lock.acquire()
    except SyncLockHeld as exc:
        out.print(f"[red]error:[/red] {exc}")
        return SyncLockHeld.exit_code
    syncer = build_syncer(settings, engine)

    def _progress(summary: SyncSummary) -> None:
        if summary.pages % 10 == 1 or args.once:
            behind = "" if summary.latest is None else f" of {summary.latest}"
            out.print(f"position {summary.position}{behind}: {summary.applied:,} persons applied, "
                      f"{summary.rejected:,} rejected, {summary.missing:,} gone")

    try:
        out.print(f"syncing from Persontjenesten ({settings.upstream.base_url}); parts: "
                  f"{', '.join(syncer.options.parts)}" + ("" if args.once else " — Ctrl-C stops"))
        summary = syncer.run(once=args.once, stop=stop, progress=_progress)
    finally:
        syncer.close()
        lock.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print(f"{summary.events:,} events in {summary.pages:,} pages: {summary.applied:,} persons applied, "
              f"{summary.rejected:,} rejected, {summary.missing:,} gone from Persontjenesten"
              + (f", {summary.skipped:,} skipped (persons not held)" if syncer.options.read_through else "")
              + f"; position {summary.position} ({summary.seconds:.1f} s)")
    if summary.rejected or summary.missing:
        out.print("rejected and gone persons are listed by: pregbridge rejects")
    if args.once:  # an initial sync (or a catch-up) may have grown the register past its parameters
        from server.identify_cli import say_if_stale

        say_if_stale(engine)
    return 0


def child_argv(args: argparse.Namespace) -> list[str]:
    """``python -m server [global options] sync``: the syncer ``serve --sync`` runs beside the server, as its
    own process with the same configuration (one syncer per store still holds: it takes the store's lock)."""
    argv = [sys.executable, "-m", "server"]
    for option, value in (("--config", args.config), ("--database-url", args.database_url),
                          ("--data-dir", args.data_dir)):
        if value is not None:
            argv += [option, str(value)]
    return [*argv, "sync"]


def add_subcommands(sub: Any) -> None:
    sp = sub.add_parser("sync", help="keep the store current from Persontjenesten's event feed")
    mode = sp.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="apply what the feed has, then exit")
    mode.add_argument("--status", action="store_true", help="show position, upstream latest, lag and last error "
                      "(read-through: also held persons, the last successful read and the last purge)")
    sp.add_argument("--json", action="store_true", help="with --status: print one JSON document (for scripts)")
    sp.set_defaults(func=cmd_sync)
