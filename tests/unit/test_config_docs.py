"""docs/config.md and the configuration loader list the same keys, environment variables and defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from server.config import ENVIRONMENT, SECTIONS, section_defaults

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"
ROW = re.compile(r"^\| `(?P<key>[a-z0-9_]+\.[a-z0-9_]+)` \|(?P<env>[^|]*)\|(?P<default>[^|]*)\|(?P<meaning>.*)\|$")


def _rows() -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            assert m["key"] not in rows, f"{m['key']} is documented twice"
            rows[m["key"]] = {k: v.strip() for k, v in m.groupdict().items()}
    return rows


def _keys() -> dict[str, Any]:
    return {f"{section}.{key}": value for section in SECTIONS for key, value in section_defaults(section).items()}


def _shown(value: Any) -> str:
    """A default as docs/config.md writes it (in backticks)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[]" if not value else "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, Mapping):
        return "{}" if not value else str(dict(value))
    if value == "":
        return '""'
    return str(value)


def test_every_key_of_the_loader_is_documented_and_every_documented_key_exists() -> None:
    documented, loaded = set(_rows()), set(_keys())
    assert not loaded - documented, f"keys the loader reads that docs/config.md does not list: {loaded - documented}"
    assert not documented - loaded, f"keys docs/config.md lists that the loader does not read: {documented - loaded}"


@pytest.mark.parametrize("key", sorted(_keys()))
def test_each_documented_default_is_the_loaders(key: str) -> None:
    default, cell = _keys()[key], _rows()[key]["default"]
    if default is None:
        assert cell.startswith(("*(", "`<")), f"{key}: default None documented as {cell!r}"
        return
    shown = re.match(r"`([^`]*)`", cell)
    assert shown, f"{key}: the default is not written in backticks: {cell!r}"
    if isinstance(default, float) and not isinstance(default, bool):
        assert float(shown[1]) == default, f"{key}: documented {shown[1]}, loader {default}"
    else:
        assert shown[1] == _shown(default), f"{key}: documented {shown[1]!r}, loader {_shown(default)!r}"


def test_each_documented_environment_variable_is_the_loaders() -> None:
    rows = _rows()
    documented = {m: key for key, row in rows.items() for m in re.findall(r"`(PREGBRIDGE_[A-Z0-9_]+)`", row["env"])}
    assert documented == {var: f"{s}.{k}" for var, (s, k) in ENVIRONMENT.items()}
