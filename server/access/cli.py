"""The operator's ``users`` and ``audit`` subcommands, registered on the main CLI by :func:`add_subcommands`.

    pregbridge users add USERNAME --profile P [--digest] [--password-stdin]
    pregbridge users passwd USERNAME [--password-stdin]
    pregbridge users disable USERNAME | users enable USERNAME
    pregbridge users unlock USERNAME
    pregbridge users list
    pregbridge audit [--person N] [--account A] [--since ISO] [--limit N]

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
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from server.access.accounts import AccountStore
from server.access.audit import query_audit
from server.access.profiles import load_profiles
from server.access.settings import AccessSettings
from server.access.throttle import Throttle
from store.errors import InvalidInput, NotFound, PregbridgeError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from server.config import Settings

__all__ = [
    "add_subcommands",
    "cmd_audit",
    "cmd_users_add",
    "cmd_users_disable",
    "cmd_users_enable",
    "cmd_users_list",
    "cmd_users_passwd",
    "cmd_users_unlock",
]

Handler = Callable[["Settings", argparse.Namespace], int]


def _out() -> Console:
    return Console(highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _handled(fn: Handler) -> Handler:
    """Expected failures end with a one-line message and an exit code, as in the main CLI."""

    @functools.wraps(fn)
    def run(settings: Settings, args: argparse.Namespace) -> int:
        try:
            return fn(settings, args)
        except InvalidInput as exc:
            _err().print(f"[red]error:[/red] {exc}")
            return 2
        except PregbridgeError as exc:
            _err().print(f"[red]error:[/red] {exc}")
            return 1
        except ValueError as exc:  # a profiles file that breaks the rules
            _err().print(f"[red]error:[/red] {exc}")
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
def cmd_users_list(settings: Settings, args: argparse.Namespace) -> int:
    """List the accounts."""
    def work(accounts: AccountStore) -> int:
        rows = accounts.list()
        table = Table("username", "profile", "status", "digest", "created (UTC)", "updated (UTC)")
        for a in rows:
            table.add_row(a.username, a.profile, "disabled" if a.disabled else "enabled", "yes" if a.digest else "no",
                          f"{a.created_at:%Y-%m-%d %H:%M}", f"{a.updated_at:%Y-%m-%d %H:%M}")
        out = _out()
        out.print(table)
        out.print(f"{len(rows)} account(s)")
        return 0

    return _with_accounts(settings, args, work)


@_handled
def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    """Show audit records, newest first."""
    engine = _engine(settings)
    try:
        records = query_audit(engine, person=args.person, account=args.account, since=args.since, limit=args.limit)
    finally:
        engine.dispose()
    table = Table("at (UTC)", "account", "face", "operation", "outcome", "source", "purpose", "asked", "returned")
    for r in records:
        table.add_row(f"{r.at:%Y-%m-%d %H:%M:%S}", r.account or "", r.face, r.operation, r.outcome, r.source or "",
                      r.purpose or "", " ".join(r.asked), " ".join(r.returned))
    out = _out()
    out.print(table)
    out.print(f"{len(records)} audit record(s) shown")
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

    actions.add_parser("list", help="list accounts").set_defaults(func=cmd_users_list)

    sp = subparsers.add_parser("audit", help="show audit records (who looked up whom), newest first")
    sp.add_argument("--person", help="an identity number asked for or returned")
    sp.add_argument("--account")
    sp.add_argument("--since", type=_iso, help="ISO 8601 date or time (UTC unless an offset is given)")
    sp.add_argument("--limit", type=_positive, default=50)
    sp.set_defaults(func=cmd_audit)
