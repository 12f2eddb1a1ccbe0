"""The ``users`` and ``audit`` subcommands, driven through argparse against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import io
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from server.access import AccessSettings, AccountStore, AuditRecord, AuditWriter
from server.access.cli import add_subcommands
from server.config import Settings, StoreSettings

PASSWORD = "correct horse battery"

Run = Callable[..., int]


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with small parameters: the CLI's behaviour is under test here, not the hash's cost."""
    monkeypatch.setattr("server.access.accounts.PasswordHasher",
                        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def settings(engine: Engine, tmp_path: Path) -> Settings:
    return Settings(store=StoreSettings(url=engine.url.render_as_string(hide_password=False), data_dir=tmp_path))


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Parse ``argv`` with the subcommands registered on a parser like the main CLI's, and run the handler."""
    monkeypatch.setenv("COLUMNS", "200")  # rich tables are not cut in captured output

    def run(*argv: str, stdin: str | None = None, access: AccessSettings | None = None) -> int:
        parser = argparse.ArgumentParser(prog="pregbridge")
        sub = parser.add_subparsers(dest="command", required=True)
        add_subcommands(sub)
        args = parser.parse_args(list(argv))
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        return int(args.func(settings if access is None else replace(settings, access=access), args))

    return run


def test_users_add_list_disable_enable(run: Run, engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("users", "add", "epj.sykehus", "--profile", "basis", "--password-stdin", stdin=PASSWORD + "\n") == 0
    assert "account epj.sykehus added with profile basis" in capsys.readouterr().out
    assert AccountStore(engine).verify("epj.sykehus", PASSWORD).profile == "basis"
    assert run("users", "list") == 0
    out = capsys.readouterr().out
    assert "epj.sykehus" in out and "basis" in out and "enabled" in out and "1 account(s)" in out
    assert run("users", "disable", "epj.sykehus") == 0
    run("users", "list")
    assert "disabled" in capsys.readouterr().out
    assert run("users", "enable", "epj.sykehus") == 0
    run("users", "list")
    assert "enabled" in capsys.readouterr().out


def test_users_add_digest_creates_the_key_file(run: Run, tmp_path: Path, engine: Engine,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert run("users", "add", "wcf", "--profile", "full", "--digest", "--password-stdin", stdin=PASSWORD) == 0
    key = tmp_path / "access.key"
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert "PasswordDigest on" in capsys.readouterr().out
    store = AccountStore(engine, key_path=key)
    creds = store.credentials("wcf")
    assert creds is not None and creds.account.digest
    assert store.decrypt_secret("wcf", creds.digest_secret or "") == PASSWORD


def test_the_access_section_is_used(run: Run, tmp_path: Path) -> None:
    key = tmp_path / "elsewhere" / "digest.key"
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.lab]\noperations = "*"\nelements = ["name"]\nmax_protection = "ugradert"\n')
    access = AccessSettings(key_path=key, profiles_path=profiles)
    assert run("users", "add", "lab1", "--profile", "lab", "--digest", "--password-stdin", stdin=PASSWORD,
               access=access) == 0
    assert key.exists()


def test_users_add_refuses_bad_input(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("users", "add", "epj", "--profile", "nosuch", "--password-stdin", stdin=PASSWORD) == 2
    err = capsys.readouterr().err
    assert "unknown access profile nosuch" in err and "basis, full, utenHjemmel" in err
    assert run("users", "add", "epj", "--profile", "basis", "--password-stdin", stdin="short\n") == 2
    assert "at least 12" in capsys.readouterr().err
    assert run("users", "add", "bad name", "--profile", "basis", "--password-stdin", stdin=PASSWORD) == 2
    assert run("users", "add", "epj", "--profile", "basis", "--password-stdin", stdin=PASSWORD) == 0
    assert run("users", "add", "epj", "--profile", "basis", "--password-stdin", stdin=PASSWORD) == 2
    assert "already exists" in capsys.readouterr().err
    assert run("users", "disable", "nobody") == 1
    assert "no account named nobody" in capsys.readouterr().err


def test_interactive_password_is_asked_twice(run: Run, engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter([PASSWORD, PASSWORD, "another long password", "different password"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("sys.stdin", Tty())
    monkeypatch.setattr(getpass, "getpass", fake_getpass)
    assert run("users", "add", "gp", "--profile", "basis") == 0
    assert prompts == ["Password: ", "Repeat password: "]
    assert run("users", "passwd", "gp") == 2
    assert "do not match" in capsys.readouterr().err
    AccountStore(engine).verify("gp", PASSWORD)


def test_no_terminal_needs_password_stdin(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("users", "add", "gp", "--profile", "basis", stdin="") == 2
    assert "--password-stdin" in capsys.readouterr().err


def test_users_passwd(run: Run, engine: Engine) -> None:
    run("users", "add", "gp", "--profile", "basis", "--password-stdin", stdin=PASSWORD)
    assert run("users", "passwd", "gp", "--password-stdin", stdin="a brand new password\n") == 0
    AccountStore(engine).verify("gp", "a brand new password")
    assert run("users", "passwd", "nobody", "--password-stdin", stdin="a brand new password\n") == 1


def test_audit_lists_records_by_person_account_and_time(run: Run, engine: Engine,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    writer = AuditWriter(engine, mode="sync")
    t0 = dt.datetime(2026, 3, 1, 8, 0, 0)
    writer.write(AuditRecord(t0, "epj", "soap", "getPerson", "10.0.0.1", "behandling", "found",
                             ("17058012345",), ("17058012345",)))
    writer.write(AuditRecord(t0 + dt.timedelta(hours=1), "lab", "hl7", "QBP^Q22", "10.0.0.2", None, "2 candidates",
                             (), ("17058012345", "01017012345")))
    writer.write(AuditRecord(t0 + dt.timedelta(hours=2), "lab", "hl7", "QBP^Q23", "10.0.0.2", None, "not found",
                             ("55555555555",), ()))
    assert run("audit", "--person", "17058012345") == 0
    out = capsys.readouterr().out
    assert "getPerson" in out and "QBP^Q22" in out and "QBP^Q23" not in out and "2 audit record(s)" in out
    assert out.index("QBP^Q22") < out.index("getPerson")  # newest first
    assert run("audit", "--account", "lab", "--since", "2026-03-01T09:30:00Z") == 0
    out = capsys.readouterr().out
    assert "QBP^Q23" in out and "QBP^Q22" not in out and "1 audit record(s)" in out
    assert run("audit", "--limit", "1") == 0
    assert "1 audit record(s)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        run("audit", "--since", "last tuesday")


def test_through_the_main_cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    url = engine.url.render_as_string(hide_password=False)
    common = ["--database-url", url, "--data-dir", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main([*common, "users", "add", "hl7-broker", "--profile", "utenHjemmel", "--password-stdin"]) == 0
    assert main([*common, "users", "list"]) == 0
    out = capsys.readouterr().out
    assert "hl7-broker" in out and "utenHjemmel" in out
    assert main([*common, "users", "disable", "ghost"]) == 1
    assert main([*common, "audit", "--account", "hl7-broker"]) == 0
    assert "0 audit record(s) shown" in capsys.readouterr().out
