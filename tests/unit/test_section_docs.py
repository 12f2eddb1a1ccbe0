"""The settings tables of docs/hl7.md (``[hl7]``) and docs/upstream.md (``[upstream]``) hold to the configuration
loader, as tests/unit/test_config_docs.py holds docs/config.md: every key a table lists exists with the default
the table gives, and every key the loader reads is in the table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from server.config import section_defaults

DOCS = Path(__file__).resolve().parents[2] / "docs"
ROW = re.compile(r"^\| (?P<keys>`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*) \| (?P<defaults>[^|]*) \|")
TABLES = {"hl7": ("hl7.md", "## Settings (`[hl7]`)"), "upstream": ("upstream.md", "### The `[upstream]` settings")}


def _table(section: str) -> dict[str, str]:
    """The documented default of each key of the section's table, as its cell writes it."""
    name, heading = TABLES[section]
    lines = (DOCS / name).read_text(encoding="utf-8").splitlines()
    start = lines.index(heading)
    rows: dict[str, str] = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        m = ROW.match(line)
        if not m:
            continue
        keys = re.findall(r"`([a-z0-9_]+)`", m["keys"])
        cell = m["defaults"].strip()
        cells = [c.strip() for c in cell.split(", ")] if len(keys) > 1 else [cell]
        if len(cells) == 1:  # one default for all the row's keys ("—")
            cells *= len(keys)
        assert len(cells) == len(keys), f"{name}: {keys} documented with {cell!r}"
        for key, value in zip(keys, cells, strict=True):
            assert key not in rows, f"{name}: {key} is documented twice"
            rows[key] = value
    assert rows, f"{name}: no settings table under {heading!r}"
    return rows


def _same(documented: str, default: Any) -> bool:
    shown = documented.strip("`").strip('"')
    if default in (None, "", ()) or default == {}:
        return (documented in ("—", "empty", "`[]`", "{}", '`""`') or documented.startswith("*(")
                or shown in ("[]", "{}"))
    if isinstance(default, bool):
        return shown == ("true" if default else "false")
    if isinstance(default, int | float):
        try:
            return float(shown) == float(default)
        except ValueError:
            return False
    return shown == str(default)


@pytest.mark.parametrize("section", sorted(TABLES))
def test_each_key_a_table_lists_exists_with_the_loaders_default(section: str) -> None:
    loaded = section_defaults(section)
    for key, documented in _table(section).items():
        assert key in loaded, f"docs/{TABLES[section][0]} lists {key}, which [{section}] does not have"
        assert _same(documented, loaded[key]), \
            f"docs/{TABLES[section][0]}: {key} documented {documented!r}, the loader's default {loaded[key]!r}"


@pytest.mark.parametrize("section", sorted(TABLES))
def test_the_table_lists_every_key_of_the_section(section: str) -> None:
    missing = set(section_defaults(section)) - set(_table(section))
    assert not missing, f"docs/{TABLES[section][0]}'s [{section}] table leaves out {sorted(missing)}"


def test_a_wrong_default_in_a_table_is_caught() -> None:
    assert not _same("`30`", 60.0) and not _same("`either`", "both") and not _same("false", True)
    assert _same("`0.5`", 0.5) and _same('`"2"`', "2") and _same("*(none)*", "") and _same("—", None)
