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


def test_front_limits_from_file_and_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "p.toml"
    cfg.write_text("[http]\nheader_timeout = 2\nbody_min_rate = 1000\nmax_connections_per_address = 4\n")
    s = load_settings(cfg, env={"PREGBRIDGE_HTTP_BODY_TIMEOUT": "3.5", "PREGBRIDGE_HTTP_MAX_CONNECTIONS": "50"})
    assert (s.http.header_timeout, s.http.body_timeout, s.http.body_min_rate) == (2.0, 3.5, 1000)
    assert (s.http.max_connections, s.http.max_connections_per_address) == (50, 4)
    assert isinstance(s.http.header_timeout, float)
    defaults = load_settings(env={}).http
    assert (defaults.header_timeout, defaults.body_timeout, defaults.max_connections_per_address) == (10.0, 20.0, 100)
