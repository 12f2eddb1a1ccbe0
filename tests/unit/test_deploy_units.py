"""The service-manager units shipped in deploy/systemd/ run real commands: every ExecStart/ExecStartPre parses
with the real CLI parser to a subcommand handler, with the paths docs/operations.md describes."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from server.cli import _parser

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVICES = sorted(UNITS.glob("*.service"))


def _commands(unit: Path) -> list[list[str]]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(unit.read_text())
    out = []
    for key in ("ExecStartPre", "ExecStart"):
        line = parser["Service"].get(key)
        if line is None:
            continue
        argv = shlex.split(line.replace("%%", "%"))
        if argv[:2] == ["/bin/sh", "-c"]:  # a shell only to put the date in a file name
            inner = shlex.split(argv[2].replace("$(date -u +%Y%m%dT%H%M%SZ)", "20261204T023000Z"))
            argv = inner[1:] if inner[0] == "exec" else inner
        out.append(argv)
    return out


def test_the_expected_units_are_shipped() -> None:
    assert {p.name for p in SERVICES} >= {"pregbridge.service", "pregbridge-hl7.service", "pregbridge-sync.service"}
    assert (UNITS / "pregbridge-backup.timer").exists()


@pytest.mark.parametrize("unit", SERVICES, ids=[p.name for p in SERVICES])
def test_every_command_parses_with_the_real_cli(unit: Path) -> None:
    commands = _commands(unit)
    assert commands, f"{unit.name} has no ExecStart"
    for argv in commands:
        assert argv[0] == "/opt/pregbridge/venv/bin/pregbridge", argv
        args = _parser().parse_args(argv[1:])  # SystemExit (a failed test) for an unknown command or option
        assert callable(args.func) and args.config == Path("/etc/pregbridge/pregbridge.toml")


def test_the_commands_are_the_ones_documented() -> None:
    found = {unit.name: [" ".join(a[3:]) for a in _commands(unit)] for unit in SERVICES}
    assert found["pregbridge.service"] == ["init", "serve"]
    assert found["pregbridge-hl7.service"] == ["listen-hl7"]
    assert found["pregbridge-hl7@.service"] == ["listen-hl7 --reuse-port"]
    assert found["pregbridge-sync.service"] == ["sync"]
    assert found["pregbridge-filematch-worker.service"] == ["filematch worker"]
    assert found["pregbridge-backup.service"] == ["backup /var/backups/pregbridge/pregbridge-20261204T023000Z.sqlite"]
    docs = (UNITS.parents[1] / "docs" / "operations.md").read_text()
    for name in found:
        assert f"`{name}`" in docs or f"`{name.removesuffix('.service')}.service` + `.timer`" in docs, name
