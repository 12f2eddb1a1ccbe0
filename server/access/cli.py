"""The operator's ``users`` and ``audit`` subcommands, registered on the main CLI by :func:`add_subcommands`.

    pregbridge users add USERNAME --profile P [--digest] [--password-stdin]
    pregbridge users passwd USERNAME [--password-stdin]
    pregbridge users disable USERNAME | users enable USERNAME
    pregbridge users unlock USERNAME
    pregbridge users set-profile USERNAME PROFILE
    pregbridge users delete USERNAME
    pregbridge users list [--json|--csv]
    pregbridge audit [--person N] [--account A] [--since ISO] [--limit N] [--numbers] [--json|--csv]
    pregbridge audit export --until DATE -o FILE.jsonl.gz | audit export --list [--json|--csv]
    pregbridge audit purge --until DATE

Listings print a table, or JSON/CSV for scripts (server/output.py); nothing is cut when piped. An audit
record that names more than :data:`BULK` numbers (a Filematch job's record names every person of the
file) shows their count only, unless ``--numbers``.

Passwords are prompted twice (getpass) on a terminal, or read as one line from standard input with
``--password-stdin`` (for scripts); never from the command line, where they would sit in the shell
history and the process list. Each handler takes ``(settings, args)`` like the main CLI's and returns an
exit code: 0 done, 1 not found or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from server.access.accounts import AccountStore
from server.access.audit import AuditRecord, query_audit
from server.access.audit_export import export_audit, exports, purge_audit
from server.access.profiles import load_profiles
from server.access.settings import AccessSettings
from server.access.throttle import Throttle
from server.output import add_format_options, console, emit
from store.errors import InvalidInput, NotFound, PregbridgeError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from server.config import Settings

__all__ = [
    "BULK",
    "add_subcommands",
    "cmd_audit",
    "cmd_audit_export",
    "cmd_audit_purge",
    "cmd_users_add",
    "cmd_users_delete",
    "cmd_users_disable",
    "cmd_users_enable",
    "cmd_users_list",
    "cmd_users_passwd",
    "cmd_users_set_profile",
    "cmd_users_unlock",
]

BULK = 10

Handler = Callable[["Settings", argparse.Namespace], int]


def _out() -> Console:
    return console()


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _handled(fn: Handler) -> Handler:
    """Expected failures end with a one-line message and an exit code, as in the main CLI."""

    @functools.wraps(fn)
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return fn(settings, args)
        except InvalidInput as exc:
            _err().print(f"[red]error:[/red] {escape(str(exc))}")
            return 2
        except PregbridgeError as exc:
            _err().print(f"[red]error:[/red] {escape(str(exc))}")
            return 1
        except ValueError as exc:  # a profiles file that breaks the rules
            _err().print(f"[red]error:[/red] {escape(str(exc))}")
            return 2

    return run


def _access(settings: Settings, args: argparse.Namespace) -> AccessSettings:
    return settings.access


def _engine(settings: Settings) -> Engine:
    from server.bootstrap import build_engine  # the composition root; imported late, it imports the faces

    return build_engine(settings)


def _with_accounts(settings: Settings, args: argparse.Namespace, work: Callable[[AccountStore], int]) -> int:
    from server.bootstrap import accounts_of  # the composition root (see _engine)

    engine = _engine(settings)
    try:
        return work(accounts_of(settings, engine))
    finally:
        engine.dispose()


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to prompt for the password; use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise InvalidInput("the passwords do not match")
    return first


@_handled
def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    """Add an account with an access profile; ``--digest`` also enables WS-Security PasswordDigest."""
    access = _access(settings, args)
    profiles = load_profiles(access.profiles_path)
    if args.profile not in profiles:
        raise InvalidInput(f"unknown access profile {args.profile}; known: {', '.join(sorted(profiles))}")
    password = _read_password(args)

    def work(accounts: AccountStore) -> int:
        account = accounts.add(args.username, password, args.profile, digest=args.digest)
        digest = f", PasswordDigest on (key file {accounts.key_path})" if account.digest else ""
        _out().print(f"account {account.username} added with profile {account.profile}{digest}")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_users_passwd(settings: Settings, args: argparse.Namespace) -> int:
    """Set a new password for an account."""
    password = _read_password(args)

    def work(accounts: AccountStore) -> int:
        accounts.passwd(args.username, password)
        _out().print(f"password of {args.username} changed")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_users_disable(settings: Settings, args: argparse.Namespace) -> int:
    """Disable an account (it can no longer authenticate; its audit records stay)."""
    def work(accounts: AccountStore) -> int:
        accounts.disable(args.username)
        _out().print(f"account {args.username} disabled")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_users_enable(settings: Settings, args: argparse.Namespace) -> int:
    """Enable a disabled account."""
    def work(accounts: AccountStore) -> int:
        accounts.enable(args.username)
        _out().print(f"account {args.username} enabled")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_users_unlock(settings: Settings, args: argparse.Namespace) -> int:
    """Forget the failed logins counted for an account, so that no delay holds it back (server/access/throttle.py)."""
    access = _access(settings, args)

    def work(accounts: AccountStore) -> int:
        if accounts.get(args.username) is None:
            raise NotFound(f"no account named {args.username}")
        cleared = Throttle(accounts.engine, access.throttle_policy(), _utcnow).unlock(args.username)
        _out().print(f"account {args.username} unlocked ({cleared} failure counter(s) cleared)")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_users_set_profile(settings: Settings, args: argparse.Namespace) -> int:
    """Give an account another access profile (running servers see it within access.account_state_seconds)."""
    access = _access(settings, args)
    profiles = load_profiles(access.profiles_path)
    if args.profile not in profiles:
        raise InvalidInput(f"unknown access profile {args.profile}; known: {', '.join(sorted(profiles))}")

    def work(accounts: AccountStore) -> int:
        account = accounts.set_profile(args.username, args.profile)
        _out().print(f"account {account.username} now has profile {account.profile}")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_users_delete(settings: Settings, args: argparse.Namespace) -> int:
    """Delete an account (its audit records stay, naming it); HL7 senders mapped to it stop being accepted."""
    def work(accounts: AccountStore) -> int:
        accounts.delete(args.username)
        _out().print(f"account {args.username} deleted (its audit records stay)")
        return 0

    return _with_accounts(settings, args, work)


USER_COLUMNS = ("username", "profile", "status", "digest", "created", "updated")


@_handled
def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    """List the accounts."""
    def work(accounts: AccountStore) -> int:
        rows = [{"username": a.username, "profile": a.profile, "status": "disabled" if a.disabled else "enabled",
                 "digest": a.digest, "created": a.created_at, "updated": a.updated_at} for a in accounts.list()]
        emit(args, USER_COLUMNS, rows, summary=f"{len(rows)} account(s); times are UTC")
        return 0

    return _with_accounts(settings, args, work)


AUDIT_COLUMNS = ("at", "account", "face", "operation", "outcome", "source", "purpose", "asked", "returned")


def _numbers(values: tuple[str, ...], whole: bool, fmt: str) -> object:
    if whole or len(values) <= BULK:
        return list(values)
    if fmt == "json":
        return None  # the count is beside it (asked_count / returned_count)
    return f"({len(values):,} numbers; --numbers lists them)"


def audit_row(r: AuditRecord, *, whole: bool, fmt: str) -> dict[str, object]:
    """One record as ``audit`` prints it: bulk number lists summarised unless ``whole``."""
    return {"at": r.at, "account": r.account, "face": r.face, "operation": r.operation, "outcome": r.outcome,
            "source": r.source, "purpose": r.purpose, "asked": _numbers(r.asked, whole, fmt),
            "returned": _numbers(r.returned, whole, fmt), "asked_count": len(r.asked),
            "returned_count": len(r.returned)}


@_handled
def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    """Show audit records, newest first."""
    engine = _engine(settings)
    try:
        records = query_audit(engine, person=args.person, account=args.account, since=args.since, limit=args.limit)
    finally:
        engine.dispose()
    fmt = args.output_format
    columns = AUDIT_COLUMNS + (("asked_count", "returned_count") if fmt == "json" else ())
    emit(args, columns, [audit_row(r, whole=args.numbers, fmt=fmt) for r in records],
         summary=f"{len(records)} audit record(s) shown, newest first; times are UTC")
    return 0


@_handled
def cmd_audit_export(settings: Settings, args: argparse.Namespace) -> int:
    """Write the audit records before --until to a compressed JSON Lines file and record the export."""
    engine = _engine(settings)
    try:
        if args.list:
            rows = exports(engine)
            emit(args, ("id", "exported_at", "until", "first_id", "last_id", "records", "file", "sha256",
                        "purged_at", "purged_until", "purged_records"), rows, summary=f"{len(rows)} export(s)")
            return 0
        if args.until is None or args.output is None:
            raise InvalidInput("audit export needs --until DATE and -o FILE (or --list)")
        done = export_audit(engine, args.until, args.output)
    finally:
        engine.dispose()
    ids = f" (ids {done.first_id}-{done.last_id})" if done.records else ""
    _out().print(f"exported {done.records:,} audit record(s) before {done.until:%Y-%m-%d %H:%M:%S} UTC{ids} "
                 f"to {done.file}; sha256 {done.sha256}")
    return 0


@_handled
def cmd_audit_purge(settings: Settings, args: argparse.Namespace) -> int:
    """Delete the audit records before --until, only if an export wrote them to a file."""
    engine = _engine(settings)
    try:
        done = purge_audit(engine, args.until)
    finally:
        engine.dispose()
    where = f", exported to {done.export_file}" if done.export_file else ""
    _out().print(f"purged {done.records:,} audit record(s) before {done.until:%Y-%m-%d %H:%M:%S} UTC{where}")
    return 0


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _iso(value: str) -> dt.datetime:
    text = value.strip()
    if text[-1:] in ("z", "Z"):
        text = text[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def add_subcommands(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``users …`` and ``audit`` on the main CLI's subparsers."""

    users = subparsers.add_parser("users", help="manage service accounts")
    actions = users.add_subparsers(dest="users_command", required=True)

    sp = actions.add_parser("add", help="add an account")
    sp.add_argument("username")
    sp.add_argument("--profile", required=True, help="access profile (built-in: full, basis, utenHjemmel)")
    sp.add_argument("--digest", action="store_true",
                    help="allow WS-Security PasswordDigest (keeps the password encrypted under the key file)")
    sp.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    sp.set_defaults(func=cmd_users_add)

    sp = actions.add_parser("passwd", help="set an account's password")
    sp.add_argument("username")
    sp.add_argument("--password-stdin", action="store_true", help="read the password as one line from stdin")
    sp.set_defaults(func=cmd_users_passwd)

    for name, handler, text in (("disable", cmd_users_disable, "disable an account"),
                                ("enable", cmd_users_enable, "enable an account")):
        sp = actions.add_parser(name, help=text)
        sp.add_argument("username")
        sp.set_defaults(func=handler)

    sp = actions.add_parser("unlock", help="forget an account's failed logins (ends its delays)")
    sp.add_argument("username")
    sp.set_defaults(func=cmd_users_unlock)

    sp = actions.add_parser("set-profile", help="give an account another access profile")
    sp.add_argument("username")
    sp.add_argument("profile", help="access profile (built-in: full, basis, utenHjemmel)")
    sp.set_defaults(func=cmd_users_set_profile)

    sp = actions.add_parser("delete", help="delete an account (its audit records stay)")
    sp.add_argument("username")
    sp.set_defaults(func=cmd_users_delete)

    sp = actions.add_parser("list", help="list accounts")
    add_format_options(sp)
    sp.set_defaults(func=cmd_users_list)

    sp = subparsers.add_parser("audit", help="show audit records (who looked up whom), newest first; export, purge")
    sp.add_argument("--person", help="an identity number asked for or returned")
    sp.add_argument("--account")
    sp.add_argument("--since", type=_iso, help="ISO 8601 date or time (UTC unless an offset is given)")
    sp.add_argument("--limit", type=_positive, default=50)
    sp.add_argument("--numbers", action="store_true",
                    help=f"list every number of a record that names more than {BULK} (a Filematch job's)")
    add_format_options(sp)
    sp.set_defaults(func=cmd_audit)
    archive = sp.add_subparsers(dest="audit_command", required=False, metavar="{export,purge}")

    ep = archive.add_parser("export", help="write the records before --until to a gzip JSON Lines file")
    ep.add_argument("--until", type=_iso, help="ISO 8601 date or time, UTC unless an offset is given (exclusive)")
    ep.add_argument("-o", "--output", type=Path, help="the file to write, e.g. audit-2026.jsonl.gz (never overwritten)")
    ep.add_argument("--list", action="store_true", help="list the exports recorded instead")
    add_format_options(ep)
    ep.set_defaults(func=cmd_audit_export)

    pp = archive.add_parser("purge", help="delete the records before --until that an export wrote")
    pp.add_argument("--until", type=_iso, required=True, help="ISO 8601 date or time, UTC unless an offset is given")
    pp.set_defaults(func=cmd_audit_purge)
