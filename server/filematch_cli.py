"""``pregbridge filematch …``: wash a file locally, or submit, follow and fetch jobs over HTTP, or run a worker.

- ``run FILE -o OUT [--format csv|fixed|xml] [--encoding E] [--profile P] [--processes N]``: a local wash
  against the configured store (no job), with a progress bar and a summary; masked per profile ``P``
  (default ``full``).
- ``submit FILE --url URL --user U [--format …]``: upload to a server (password from
  ``PREGBRIDGE_PASSWORD`` or a prompt); prints the job id.
- ``status JOB --url URL --user U [--json]`` and ``fetch JOB -o OUT --url URL --user U [--wait]``; with
  ``--wait`` on a terminal, a progress bar follows the job's records until it is done.

Without ``--format``, the format is read from the file's first bytes (filematch/formats/sniff.py).
- ``worker [--lease S] [--idle S]``: claim and wash chunks of queued jobs until stopped (SIGINT/SIGTERM).

Also runnable on its own: ``python -m server.filematch_cli [--database-url URL] filematch worker``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import itertools
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from filematch.formats import FORMATS, format_named
from filematch.formats.sniff import sniff_file
from filematch.local import wash_file

__all__ = ["add_subcommands", "main"]

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _count_records(path: Path) -> int | None:
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:
        return None


def cmd_run(settings: Any, args: argparse.Namespace) -> int:
    import functools
    import secrets

    from server.bootstrap import build_engine, filematch_release, person_source_of

    fmt = format_named(args.format or sniff_file(args.file))
    release = filematch_release(settings, args.profile)
    engine = build_engine(settings)
    total = _count_records(args.file) if fmt.name != "xml" else None
    with Progress(TextColumn("washing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task("wash", total=(total - 1) if total and fmt.name == "csv" else total)
        with _removed_on_error(args.output), args.output.open("wb") as sink:
            report = wash_file(engine, args.file, sink, fmt, encoding=args.encoding, release=release,
                               processes=args.processes, progress=lambda n: progress.advance(task, n),
                               max_field=settings.filematch.max_field,
                               source_of=functools.partial(person_source_of, settings)
                               if settings.upstream.mode == "read-through" else None,
                               request_id=f"filematch-run-{secrets.token_hex(6)}")
    for line in report.lines():
        out.print(line)
    return 0


@contextlib.contextmanager
def _removed_on_error(path: Path) -> Iterator[None]:
    """Delete a half-written answer when the wash stops (a file refused after its header was written)."""
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _auth(args: argparse.Namespace) -> str:
    password = os.environ.get("PREGBRIDGE_PASSWORD") or getpass.getpass(f"password for {args.user}: ")
    return "Basic " + base64.b64encode(f"{args.user}:{password}".encode()).decode()


def _request(args: argparse.Namespace, method: str, path: str, body: Iterable[bytes] | None = None,
             headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(args.url.rstrip("/") + "/filematch/v1" + path, data=body, method=method,
                                 headers={"Authorization": _auth(args), **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=args.timeout)  # noqa: S310 - the operator's own server URL
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", "")
        except ValueError:
            message = ""
        raise ValueError(f"the server answered {exc.code}: {message}") from None


def cmd_submit(settings: Any, args: argparse.Namespace) -> int:
    boundary = uuid.uuid4().hex
    fmt = args.format or sniff_file(args.file)
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\n{fmt}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    if args.encoding:
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"encoding\"\r\n\r\n{args.encoding}\r\n"
                .encode() + head)
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + args.file.stat().st_size + len(tail)
    with args.file.open("rb") as f:  # streamed: a register of millions of records is never held in memory
        body = itertools.chain([head], iter(lambda: f.read(1 << 20), b""), [tail])
        with _request(args, "POST", "/jobs", body, {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                    "Content-Length": str(length)}) as r:
            info = json.loads(r.read())
    out.print(f"job {info['job']} {info['status']}: {info['records']:,} records")
    out.print(info["job"])
    return 0


def _job(args: argparse.Namespace) -> dict[str, Any]:
    with _request(args, "GET", f"/jobs/{args.job}") as r:
        info: dict[str, Any] = json.loads(r.read())
    return info


def cmd_status(settings: Any, args: argparse.Namespace) -> int:
    from server.output import emit

    info = _job(args)
    if args.output_format != "table":
        emit(args, ("job", "status", "records", "doneRecords", "progress", "error"), [info])
        return 0
    out.print(f"job {info['job']} {info['status']}: {info['doneRecords']:,} of {info['records']:,} records "
              f"({info['progress'] * 100:.0f} %)" + (f"; {info['error']}" if info.get("error") else ""))
    return 0


def _wait(args: argparse.Namespace, interval: float = 1.0) -> dict[str, Any]:
    """Poll the job until it ends; on a terminal, a bar of its records done (stderr)."""
    info = _job(args)
    with Progress(TextColumn(f"job {args.job[:12]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task("wash", total=info["records"] or None)
        while True:
            progress.update(task, completed=info["doneRecords"], total=info["records"] or None)
            if info["status"] in ("done", "failed", "cancelled"):
                return info
            time.sleep(interval)
            info = _job(args)


def cmd_fetch(settings: Any, args: argparse.Namespace) -> int:
    info = _wait(args) if args.wait else _job(args)
    if info["status"] != "done":
        raise ValueError(f"the job is {info['status']}, not done")
    with _request(args, "GET", f"/jobs/{args.job}/result") as r, args.output.open("wb") as sink:
        while block := r.read(1 << 16):
            sink.write(block)
    with _request(args, "GET", f"/jobs/{args.job}/report") as r:
        report = json.loads(r.read())
    out.print(f"wrote {report['records']:,} records to {args.output}: " +
              ", ".join(f"{k} {v:,}" for k, v in report["counts"].items() if v))
    return 0


def cmd_worker(settings: Any, args: argparse.Namespace) -> int:
    from server.bootstrap import build_filematch_worker

    worker, audit = build_filematch_worker(settings, lease_seconds=args.lease)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    out.print(f"filematch worker {worker.worker_id} started")
    worker.run(stop, idle_sleep=args.idle)
    audit.close()
    out.print("filematch worker stopped")
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Register ``filematch run|submit|status|fetch|worker`` on the main CLI's subparsers."""
    fm = subparsers.add_parser("filematch", help="register washing: run a file locally, submit/fetch jobs, worker")
    sub = fm.add_subparsers(dest="filematch_command", required=True)

    sp = sub.add_parser("run", help="wash a file locally against the store")
    sp.add_argument("file", type=Path)
    sp.add_argument("-o", "--output", type=Path, required=True)
    sp.add_argument("--format", choices=sorted(FORMATS), help="default: read from the file's first bytes")
    sp.add_argument("--encoding", help="utf-8 or iso-8859-1 (default: detected)")
    sp.add_argument("--profile", default="full", help="access profile that masks the output (default full)")
    sp.add_argument("--processes", type=int, default=1, help="worker processes (identification is CPU-bound)")
    sp.set_defaults(func=cmd_run)

    def remote(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
        p.add_argument("--user", required=True, help="account (password: PREGBRIDGE_PASSWORD or a prompt)")
        p.add_argument("--timeout", type=float, default=600.0, help="seconds for each HTTP request")

    sp = sub.add_parser("submit", help="upload a file as a job")
    sp.add_argument("file", type=Path)
    sp.add_argument("--format", choices=sorted(FORMATS), help="default: read from the file's first bytes")
    sp.add_argument("--encoding", help="utf-8 or iso-8859-1 (default: detected by the server)")
    remote(sp)
    sp.set_defaults(func=cmd_submit)

    sp = sub.add_parser("status", help="a job's status and progress")
    sp.add_argument("job")
    remote(sp)
    from server.output import add_format_options

    add_format_options(sp, csv=False)
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("fetch", help="download a job's result")
    sp.add_argument("job")
    sp.add_argument("-o", "--output", type=Path, required=True)
    sp.add_argument("--wait", action="store_true", help="wait until the job is done (a progress bar on a terminal)")
    remote(sp)
    sp.set_defaults(func=cmd_fetch)

    sp = sub.add_parser("worker", help="wash chunks of queued jobs until stopped")
    sp.add_argument("--lease", type=float, help="seconds before a dead worker's chunk is retaken "
                    "(default: filematch.lease_seconds, 300)")
    sp.add_argument("--idle", type=float, default=1.0, help="seconds to sleep when there is no work")
    sp.set_defaults(func=cmd_worker)


def main(argv: Sequence[str] | None = None) -> int:
    """The subcommands on their own (until server/cli.py registers them), with the main CLI's options."""
    from server.cli import _settings

    p = argparse.ArgumentParser(prog="pregbridge")
    p.add_argument("--config", type=Path)
    p.add_argument("--database-url")
    p.add_argument("--data-dir", type=Path)
    add_subcommands(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    try:
        return int(args.func(_settings(args), args))
    except (ValueError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
