"""The [upstream] section: parsed, typed and checked like the other sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, load_settings
from upstream.client import PersontjenestenClient
from upstream.errors import UpstreamConfigError
from upstream.settings import UpstreamSettings
from upstream.spec import SCOPES


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "pregbridge.toml"
    path.write_text(text)
    return load_settings(path, env or {})


def test_upstream_section(tmp_path: Path) -> None:
    settings = _load(tmp_path, """
[upstream]
base_url = "https://et.persontjenesten.test.nhn.no"
api_version = "3"
bundle = "no-legal-basis"
token_endpoint = "https://helseid-sts.test.nhn.no/connect/token"
client_id = "my-client"
jwk_path = "/etc/pregbridge/helseid.jwk.json"
read_timeout = 12
parallelism = 8
information_parts = ["Name", "Birth"]
include_history = false
""").upstream
    assert settings.api_version == "3" and settings.prefix == "/api/v3/restricted-access"
    assert settings.effective_scope == SCOPES[("3", "no-legal-basis")]
    assert settings.read_timeout == 12.0 and isinstance(settings.read_timeout, float)
    assert settings.jwk_path == Path("/etc/pregbridge/helseid.jwk.json")
    assert settings.information_parts == ("Name", "Birth") and settings.include_history is False
    assert settings.parallelism == 8 and settings.retries == 5  # default kept


def test_defaults_and_environment(tmp_path: Path) -> None:
    assert load_settings(None, {}).upstream == UpstreamSettings()
    assert not UpstreamSettings().configured
    env = {"PREGBRIDGE_UPSTREAM_URL": "http://127.0.0.1:8090"}
    assert load_settings(None, env).upstream.base_url == "http://127.0.0.1:8090"


@pytest.mark.parametrize(("text", "message"), [
    ('nickname = "x"', "unknown key upstream.nickname"),
    ("parallelism = \"4\"", 'upstream.parallelism = "4": expected an integer'),
    ("read_timeout = true", "upstream.read_timeout = true: expected a number"),
    ("include_history = 1", "upstream.include_history = 1: expected true or false"),
    ("information_parts = \"Name\"", "expected a list of strings"),
    ("retries = -1", "upstream.retries = -1: expected an integer of at least 0"),
    ('api_version = "4"', "upstream.api_version"),
    ('bundle = "all"', "upstream.bundle"),
    ('base_url = "ftp://x"', "http"),
    ('token_endpoint = "https://sts/connect/token"', "needs upstream.client_id"),
    ('information_parts = ["Name", "ShoeSize"]', "ShoeSize"),
    ("parallelism = 0", "upstream.parallelism = 0: expected an integer from 1 to 64"),
    ("deadline = 0", "upstream.deadline = 0: expected a number greater than 0"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, "[upstream]\n" + text + "\n")


def test_a_client_needs_an_upstream() -> None:
    with pytest.raises(UpstreamConfigError, match="base_url"):
        PersontjenestenClient(UpstreamSettings())
