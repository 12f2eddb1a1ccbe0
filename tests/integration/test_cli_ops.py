"""The operator's CLI for scripts (issue #17 items 5-7), through ``server.cli.main`` against a real store
(SQLite and PostgreSQL): JSON/CSV listings that are never cut, bulk audit records summarised, users delete and
set-profile, audit export and purge (refusing what was not exported), and every default shown in --help."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, func, select

from server.access import AccountStore, AuditRecord, AuditWriter
from server.access.cli import BULK
from server.cli import _parser, main
from store import schema as s

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.access.accounts.PasswordHasher",
                        lambda: PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def cli(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``cli(*argv, stdin=None) -> (exit code, stdout, stderr)`` through the real main()."""
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.delenv("COLUMNS", raising=False)  # what a pipe gives: rich's default of 80 columns

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--database-url", url, "--data-dir", str(tmp_path), *argv])
        got = capsys.readouterr()
        return code, got.out, got.err

    return run


def _at(days: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=days)


def _write(engine: Engine, *records: AuditRecord) -> None:
    with AuditWriter(engine, mode="sync") as audit:
        for r in records:
            audit.write(r)


def _record(days: float, *, account: str = "epj", operation: str = "getPerson", face: str = "soap-preg",
            asked: tuple[str, ...] = (), returned: tuple[str, ...] = (), source: str | None = "10.0.0.1",
            purpose: str | None = None) -> AuditRecord:
    return AuditRecord(_at(days), account, face, operation, source, purpose, "ok", asked, returned)


def test_users_set_profile_and_delete(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    assert cli("users", "add", "epj.sykehus", "--profile", "basis", "--password-stdin", stdin=PASSWORD)[0] == 0
    code, out, _ = cli("users", "set-profile", "epj.sykehus", "utenHjemmel")
    assert code == 0 and "now has profile utenHjemmel" in out
    code, out, _ = cli("users", "list", "--json")
    rows = json.loads(out)["rows"]
    assert [(r["username"], r["profile"], r["status"], r["digest"]) for r in rows] == [
        ("epj.sykehus", "utenHjemmel", "enabled", False)]
    code, _, err = cli("users", "set-profile", "epj.sykehus", "nosuch")
    assert code == 2 and "unknown access profile nosuch" in err
    code, _, err = cli("users", "set-profile", "nobody", "basis")
    assert code == 1 and "no account named nobody" in err
    with engine.begin() as conn:  # a failed-login counter of the account goes with it
        conn.execute(s.auth_throttle.insert().values(key="account:epj.sykehus", account="epj.sykehus", failures=3))
    _write(engine, _record(1, account="epj.sykehus"))
    code, out, _ = cli("users", "delete", "epj.sykehus")
    assert code == 0 and "deleted (its audit records stay)" in out
    assert AccountStore(engine).get("epj.sykehus") is None
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.auth_throttle)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(s.audit_event)).scalar_one() == 1
    assert cli("users", "delete", "epj.sykehus")[0] == 1
    code, out, _ = cli("users", "list", "--csv")
    assert out == "username,profile,status,digest,created,updated\n"


def test_audit_json_csv_piped_whole_and_bulk_summarised(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    numbers = tuple(f"{n:011d}" for n in range(10_000_000_000, 10_000_002_500))
    long_purpose = "behandling " + "x" * 180 + " slutt"
    _write(engine, _record(2, account="epj", asked=("17858026105",), returned=("17858026105",), purpose=long_purpose),
           _record(1, account="fm.kari", face="filematch", operation="filematch.wash", returned=numbers))
    code, out, _ = cli("audit")
    assert code == 0
    assert "(2,500 numbers; --numbers lists them)" in out
    assert numbers[0] not in out and len(out.splitlines()) < 12  # one line per record, not thousands
    assert long_purpose in out  # piped: never cut or folded at 80 columns
    assert "2 audit record(s) shown" in out
    code, out, _ = cli("audit", "--numbers")
    assert all(n in out for n in numbers[:: 250]) and numbers[-1] in out
    code, out, _ = cli("audit", "--json")
    doc = json.loads(out)
    bulk, small = doc["rows"]
    assert bulk["operation"] == "filematch.wash" and bulk["returned"] is None and bulk["returned_count"] == 2500
    assert small["returned"] == ["17858026105"] and small["purpose"] == long_purpose
    assert small["at"].startswith(str(_at(2).date()))
    doc = json.loads(cli("audit", "--json", "--numbers")[1])
    assert doc["rows"][0]["returned"] == list(numbers)
    code, out, _ = cli("audit", "--csv", "--account", "epj")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["account"], r["operation"], r["asked"], r["purpose"]) for r in rows] == [
        ("epj", "getPerson", "17858026105", long_purpose)]
    with pytest.raises(SystemExit):
        _parser().parse_args(["audit", "--json", "--csv"])
    assert BULK == 10


def test_audit_export_then_purge_refuses_what_was_not_exported(cli, engine: Engine,  # type: ignore[no-untyped-def]
                                                                tmp_path: Path) -> None:
    old = [_record(40 - i, asked=(f"0101198{i}123",)) for i in range(5)]
    _write(engine, *old, _record(0, operation="newest"))
    until = _at(30).strftime("%Y-%m-%dT%H:%M:%S")
    code, _, err = cli("audit", "purge", "--until", until)
    assert code == 1 and "no export covers" in err and "audit export --until" in err
    code, _, err = cli("audit", "export", "--until", _at(0).isoformat(), "-o", str(tmp_path / "x.jsonl.gz"))
    assert code == 2 and "minutes in the past" in err
    first = tmp_path / "audit-1.jsonl.gz"
    code, out, _ = cli("audit", "export", "--until", until, "-o", str(first))
    assert code == 0 and "exported 5 audit record(s)" in " ".join(out.split())
    lines = [json.loads(x) for x in gzip.decompress(first.read_bytes()).splitlines()]
    assert [x["asked"] for x in lines] == [[f"0101198{i}123"] for i in range(5)]
    assert all(x["at"].endswith("Z") and x["face"] == "soap-preg" and x["outcome"] == "ok" for x in lines)
    assert cli("audit", "export", "--until", until, "-o", str(first))[0] == 2  # never overwritten
    _write(engine, _record(35, asked=("late",)))  # stamped before until, reached the store after the export
    code, _, err = cli("audit", "purge", "--until", until)
    assert code == 1 and "1 record(s)" in err and "after the last export" in " ".join(err.split())
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.audit_event)).scalar_one() == 7
    _write(engine, _record(0, operation="newer"))
    second = tmp_path / "audit-2.jsonl.gz"
    assert cli("audit", "export", "--until", until, "-o", str(second))[0] == 0
    assert len(gzip.decompress(second.read_bytes()).splitlines()) == 6
    code, out, _ = cli("audit", "purge", "--until", until)
    assert code == 0 and "purged 6 audit record(s)" in out
    code, out, _ = cli("audit", "--json")
    assert sorted(r["operation"] for r in json.loads(out)["rows"]) == ["newer", "newest"]
    assert json.loads(cli("audit", "--person", "01011980123", "--json")[1])["rows"] == []
    exports = json.loads(cli("audit", "export", "--list", "--json")[1])["rows"]
    assert [(x["records"], x["purged_records"]) for x in exports] == [(5, None), (6, 6)]
    assert exports[1]["sha256"] == __import__("hashlib").sha256(second.read_bytes()).hexdigest()
    assert cli("audit", "purge", "--until", until)[0] == 0  # nothing left before it: a no-op


def test_purge_keeps_the_newest_event(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The SQLite writer numbers new events after the newest: purging it would let ids be used again."""
    _write(engine, _record(40), _record(39))
    until = _at(30).strftime("%Y-%m-%dT%H:%M:%S")
    assert cli("audit", "export", "--until", until, "-o", str(tmp_path / "a.jsonl.gz"))[0] == 0
    code, out, _ = cli("audit", "purge", "--until", until)
    assert code == 0 and "purged 1 audit record(s)" in out
    _write(engine, _record(0, operation="after"))
    with engine.connect() as conn:
        ids = conn.execute(select(s.audit_event.c.id).order_by(s.audit_event.c.id)).scalars().all()
    assert len(ids) == 2 and ids[1] > ids[0] >= 2


def test_rejects_json_and_csv(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(s.reject.insert().values(created_at=_at(0), origin="load", file="persons.jsonl", line=3,
                                              seq=None, raw="{}", reason="missing identifier; " + "y" * 150))
    rows = json.loads(cli("rejects", "--json")[1])["rows"]
    assert [(r["origin"], r["line"], r["reason"][:18]) for r in rows] == [("load", 3, "missing identifier")]
    (row,) = csv.DictReader(io.StringIO(cli("rejects", "--csv")[1]))
    assert row["file"] == "persons.jsonl" and row["reason"].endswith("y" * 150)
    assert "y" * 150 in cli("rejects")[1]


def _options(parser: argparse.ArgumentParser, path: str = "pregbridge") -> list[tuple[str, argparse.Action]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                out += _options(child, f"{path} {name}")
        elif action.option_strings:
            out.append((path, action))
    return out


def test_every_default_is_shown_in_help() -> None:
    parser = _parser()
    options = _options(parser)
    assert len(options) > 60
    missing = []
    for path, action in options:
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or isinstance(action, argparse._StoreConstAction):
            continue
        if "default" not in (action.help or ""):
            missing.append(f"{path} {action.option_strings[0]}")
    assert missing == []
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(sub.choices["rejects"].format_help().split())
    assert "--limit LIMIT show the newest N (default: 50)" in text


def test_backup_copies_a_sqlite_store_and_points_postgresql_to_pg_dump(cli, engine: Engine,  # type: ignore[no-untyped-def]
                                                                      tmp_path: Path) -> None:
    _write(engine, *(_record(1, asked=(f"{n:011d}",)) for n in range(300)))
    copy = tmp_path / "backup.sqlite"
    code, out, err = cli("backup", str(copy))
    if engine.dialect.name != "sqlite":
        assert code == 2 and "pg_dump" in err and not copy.exists()
        return
    assert code == 0 and "integrity check ok" in out
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(copy)) as conn:
        assert conn.execute("SELECT count(*) FROM audit_event").fetchone() == (300,)
    assert not (tmp_path / "backup.sqlite.partial").exists()
    code, _, err = cli("backup", str(copy))
    assert code == 2 and "never overwrites" in err


HOSTILE_PURPOSE = "[/bold] [red]x[/red] \x1b[2J\x1b]0;owned\x07 =HYPERLINK(\"http://evil\")"


def test_client_text_in_the_audit_trail_is_printed_as_text(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    """A purpose (client text) that is rich markup, a terminal escape or a spreadsheet formula stays inert."""
    _write(engine, _record(1, purpose=HOSTILE_PURPOSE), _record(1, account="=cmd|' /C calc'!A0", purpose="-2+3"))
    code, out, err = cli("audit")
    assert code == 0 and "Traceback" not in err
    assert "[/bold] [red]x[/red] ?[2J?]0;owned? =HYPERLINK" in out and "\x1b" not in out and "\x07" not in out
    code, out, _ = cli("audit", "--csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["purpose"] for r in rows} == {"'-2+3", HOSTILE_PURPOSE}
    assert {r["account"] for r in rows} == {"'=cmd|' /C calc'!A0", "epj"}
    code, out, _ = cli("audit", "--json")
    assert {r["purpose"] for r in json.loads(out)["rows"]} == {"-2+3", HOSTILE_PURPOSE}
    assert "\x1b" not in out  # JSON escapes control characters


def test_an_error_naming_markup_is_printed_whole(cli) -> None:  # type: ignore[no-untyped-def]
    code, _, err = cli("users", "delete", "[/red]x")
    assert code == 1 and "no account named [/red]x" in err and "Traceback" not in err
