"""Configuration: defaults < file < environment; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import DEFAULT_HTTP_PORT, load_settings


def test_defaults_use_sqlite_in_the_data_dir() -> None:
    s = load_settings(env={})
    assert s.http.port == DEFAULT_HTTP_PORT
    assert s.store.database_url.startswith("sqlite:///") and s.store.database_url.endswith("var/pregbridge.sqlite")


def test_file_then_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text('[store]\nurl = "postgresql+psycopg://u@h/db"\n[http]\nport = 9000\nworkers = 4\n')
    s = load_settings(cfg, env={"PREGBRIDGE_HTTP_PORT": "9100"})
    assert s.store.database_url == "postgresql+psycopg://u@h/db"
    assert (s.http.port, s.http.workers) == (9100, 4)


@pytest.mark.parametrize("text", ['[stor]\nurl = "x"\n', '[http]\nprot = 1\n'])
def test_unknown_keys_are_errors(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text(text)
    with pytest.raises(ValueError, match="unknown configuration"):
        load_settings(cfg, env={})
