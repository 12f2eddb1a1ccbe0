"""The ``replay``, ``record`` and ``replay-make-corpus`` subcommands, registered by :func:`add_subcommands`.

    pregbridge replay CORPUS --target URL [--hl7-target HOST:PORT] [--junit FILE] [--html FILE]
                      [--ignore XPATH|SEG-n …] [--secrets FILE] [--case ID …] [--timeout S]
    pregbridge record --listen HOST:PORT --upstream URL|HOST:PORT --corpus DIR [--mllp] [--redact]
                      [--account NAME]
    pregbridge replay-make-corpus [--out DIR]

``replay`` exits 0 when every case is identical or equal after ignores, 1 when any differs or errors,
2 on bad input (no corpus, a malformed manifest, missing credentials are reported per case). ``record``
runs until Ctrl-C and prints one line per recorded case (its id and outcome, never content). Handlers
take ``(settings, args)`` like the main CLI's and return the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from server.replay.corpus import Case, Corpus, Secrets
from server.replay.recorder import HttpRecorder, MllpRecorder, Redactor, parse_hostport
from server.replay.runner import CaseResult, Target, print_summary, replay, write_html, write_junit

__all__ = ["add_subcommands", "cmd_make_corpus", "cmd_record", "cmd_replay", "main"]

DEFAULT_CORPUS = Path("docs/replay-corpus")


def cmd_replay(settings: Any, args: argparse.Namespace) -> int:
    out = Console(soft_wrap=True, highlight=False)
    err = Console(stderr=True)
    corpus = Corpus.load(args.corpus)
    names = sorted({c.account for c in corpus.cases if c.account})
    secrets = Secrets.load(args.secrets, names=names)
    target = Target(args.target, args.hl7_target, args.timeout)
    chosen = [c for c in corpus.cases if not args.case or c.id in args.case]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("replaying", total=len(chosen))

        def advance(result: CaseResult) -> None:
            progress.update(task, advance=1, description=f"replaying {result.case.id}")

        report = replay(corpus, target, secrets=secrets, ignore=args.ignore or (), cases=args.case or None,
                        progress=advance)
    print_summary(report, out)
    if args.junit:
        out.print(f"JUnit XML: {write_junit(report, args.junit)}")
    if args.html:
        out.print(f"HTML report: {write_html(report, args.html)}")
    return 0 if report.passed else 1


def cmd_record(settings: Any, args: argparse.Namespace) -> int:
    out = Console(highlight=False)
    corpus = Corpus.load(args.corpus) if (args.corpus / "manifest.json").is_file() else Corpus(args.corpus)
    redactor = Redactor() if args.redact else None
    host, port = parse_hostport(args.listen)

    def show(case: Case) -> None:
        out.print(f"recorded {case.id} ({case.expected.outcome})")

    if args.mllp:
        mllp = MllpRecorder(args.upstream, corpus, redactor=redactor, account=args.account, on_case=show,
                            reply_timeout=args.timeout)

        async def run() -> None:
            bound = await mllp.start(host, port)
            out.print(f"recording MLLP on {host}:{bound} → {args.upstream} into {args.corpus} — Ctrl-C stops")
            assert mllp.server is not None
            async with mllp.server:
                await mllp.server.serve_forever()

        try:
            asyncio.run(run())
        except KeyboardInterrupt:
            pass
    else:
        rec = HttpRecorder(args.upstream, corpus, redactor=redactor, account=args.account, on_case=show,
                           timeout=args.timeout)
        out.print(f"recording HTTP on {host}:{port} → {rec.upstream} into {args.corpus} — Ctrl-C stops")
        try:
            rec.serve_forever(host, port)
        except KeyboardInterrupt:
            pass
    corpus.save()
    out.print(f"{len(corpus.cases)} case(s) in {args.corpus / 'manifest.json'}")
    return 0


def cmd_make_corpus(settings: Any, args: argparse.Namespace) -> int:
    from server.replay.make_corpus import make_corpus

    corpus = make_corpus(args.out)
    Console(highlight=False).print(f"recorded {len(corpus.cases)} case(s) into {args.out}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    sp = subparsers.add_parser("replay", help="replay a recorded corpus against a target and compare the answers")
    sp.add_argument("corpus", type=Path, help="corpus directory (manifest.json or manifest.toml)")
    sp.add_argument("--target", help="base URL for SOAP cases, e.g. http://127.0.0.1:8080")
    sp.add_argument("--hl7-target", help="HOST:PORT for HL7 cases (default: each case's recorded endpoint)")
    sp.add_argument("--junit", type=Path, help="write a JUnit XML report")
    sp.add_argument("--html", type=Path, help="write a self-contained HTML report")
    sp.add_argument("--ignore", action="append", metavar="XPATH|SEG-n",
                    help="another ignore rule: an XPath for SOAP, SEG-n[.c[.s]] for HL7 (repeatable)")
    sp.add_argument("--secrets", type=Path, help="TOML/JSON file with [accounts.NAME] username and password")
    sp.add_argument("--case", action="append", metavar="ID", help="replay only this case (repeatable)")
    sp.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each answer (30)")
    sp.set_defaults(func=cmd_replay)

    sp = subparsers.add_parser("record", help="run a recording proxy in front of a service, writing a corpus")
    sp.add_argument("--listen", required=True, metavar="HOST:PORT")
    sp.add_argument("--upstream", required=True, metavar="URL|HOST:PORT")
    sp.add_argument("--corpus", required=True, type=Path, metavar="DIR")
    sp.add_argument("--mllp", action="store_true", help="record HL7 over MLLP instead of SOAP over HTTP")
    sp.add_argument("--redact", action="store_true",
                    help="replace names and identity numbers with consistent pseudonyms in what is recorded")
    sp.add_argument("--account", help="account name to put in the manifest (default: the HTTP Basic username)")
    sp.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the upstream (30)")
    sp.set_defaults(func=cmd_record)

    sp = subparsers.add_parser("replay-make-corpus", help="record the example corpus from the demo store")
    sp.add_argument("--out", type=Path, default=DEFAULT_CORPUS, help=f"corpus directory ({DEFAULT_CORPUS})")
    sp.set_defaults(func=cmd_make_corpus)


def main(argv: list[str] | None = None) -> int:
    """``python -m server.replay.cli``: these subcommands alone, with the main CLI's error handling."""
    import logging
    import sys

    from store.errors import InvalidInput, PregbridgeError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="pregbridge", description="pregbridge replay harness")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    err = Console(stderr=True)
    try:
        return int(args.func(None, args))
    except (InvalidInput, OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    except PregbridgeError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        sys.stdout.flush()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
