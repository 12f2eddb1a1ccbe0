"""The client's address behind trusted proxies (server/access/proxies.py), the delay schedule, their settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.access import AccessSettings, ThrottlePolicy, TrustedProxies, client_address, normalize_address
from server.config import load_settings

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8:1::/48", "192.0.2.1"])


@pytest.mark.parametrize(("peer", "xff", "client"), [
    ("203.0.113.9", "198.51.100.1", "203.0.113.9"),  # not a trusted peer: its header is ignored
    ("10.1.1.1", None, "10.1.1.1"),  # a trusted peer without the header is the client
    ("10.1.1.1", "198.51.100.1", "198.51.100.1"),
    ("10.1.1.1", "198.51.100.1, 10.2.2.2", "198.51.100.1"),  # two proxies in a row
    ("10.1.1.1", "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # what the client prepended is not believed
    ("10.1.1.1", "198.51.100.1:4711", "198.51.100.1"),
    ("10.1.1.1", "10.3.3.3, 10.2.2.2", "10.3.3.3"),  # all trusted: the farthest
    ("10.1.1.1", "198.51.100.1, unknown", "10.1.1.1"),  # an entry that is no address: its reporter stands in
    ("10.1.1.1", "2001:db8::5", "2001:db8::5"),
    ("::ffff:10.1.1.1", "::ffff:198.51.100.1", "198.51.100.1"),  # IPv4-mapped addresses as IPv4
    ("192.0.2.1", ",,, 198.51.100.7 ,", "198.51.100.7"),
    ("10.1.1.1", ", ".join(["10.9.9.9"] * 100), "10.9.9.9"),
])
def test_x_forwarded_for_is_read_from_the_right_through_trusted_hops(peer: str, xff: str | None, client: str) -> None:
    assert PROXIES.client(peer, xff) == client


@pytest.mark.parametrize(("forwarded", "client"), [
    ("for=198.51.100.1", "198.51.100.1"),
    ('for="[2001:db8:cafe::17]:4711";proto=https;by=10.1.1.1', "2001:db8:cafe::17"),
    ("for=198.51.100.1;proto=http, for=10.2.2.2", "198.51.100.1"),
    ('for=6.6.6.6, for="198.51.100.1:80", for=10.2.2.2', "198.51.100.1"),
    ("For=198.51.100.1", "198.51.100.1"),  # parameter names are case-insensitive
    ("for=_hidden, for=10.2.2.2", "10.2.2.2"),  # obfuscated: the proxy that reported it stands in
    ("proto=https", "10.1.1.1"),  # no for=: the reporting proxy
    ('for="198.51.100.1, 6.6.6.6"', "10.1.1.1"),  # a quoted comma is no list separator, and no address
])
def test_forwarded_rfc7239(forwarded: str, client: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="Forwarded")
    assert proxies.client("10.1.1.1", forwarded) == client


def test_only_the_configured_header_is_read() -> None:
    environ = {"REMOTE_ADDR": "10.1.1.1", "HTTP_FORWARDED": "for=6.6.6.6", "HTTP_X_FORWARDED_FOR": "198.51.100.1"}
    assert PROXIES.of_environ(environ) == "198.51.100.1"
    assert TrustedProxies(["10.0.0.0/8"], "forwarded").of_environ(environ) == "6.6.6.6"
    assert TrustedProxies().of_environ(environ) == "10.1.1.1"  # no trusted proxies: the peer


def test_client_address_prefers_what_the_composition_root_found() -> None:
    assert client_address({"REMOTE_ADDR": "10.1.1.1", "pregbridge.client_address": "198.51.100.1"}) == "198.51.100.1"
    assert client_address({"REMOTE_ADDR": "::ffff:10.1.1.1"}) == "10.1.1.1"
    assert client_address({}) == ""


def test_addresses_that_are_no_ip_are_hashed() -> None:
    hashed = normalize_address("/run/pregbridge.sock")
    assert hashed.startswith("#") and len(hashed) == 25 and "sock" not in hashed
    assert normalize_address("2001:0db8:0000::0001") == "2001:db8::1"


def test_bad_proxy_settings_are_refused_naming_the_entry() -> None:
    with pytest.raises(ValueError, match="'10.0.0.300'"):
        AccessSettings(trusted_proxies=("10.0.0.300",))
    with pytest.raises(ValueError, match="proxy_header"):
        AccessSettings(proxy_header="X-Real-IP")


def test_trusted_proxies_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "pregbridge.toml"
    config.write_text('[access]\ntrusted_proxies = ["10.0.0.0/8", "192.0.2.1"]\npair_free_failures = 4\n')
    settings = load_settings(config, env={})
    assert settings.access.trusted_proxies == ("10.0.0.0/8", "192.0.2.1")
    assert settings.access.pair_free_failures == 4
    from_env = load_settings(config, env={"PREGBRIDGE_TRUSTED_PROXIES": "127.0.0.1, ::1"})
    assert from_env.access.trusted_proxies == ("127.0.0.1", "::1")
    assert from_env.access.proxies().client("::1", "198.51.100.1") == "198.51.100.1"


def test_delays_double_from_the_base_after_the_free_failures_up_to_the_cap() -> None:
    policy = ThrottlePolicy(base_delay=1, max_delay=900)
    assert [policy.delay(n, 3) for n in range(1, 16)] == [0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert policy.delay(10**6, 3) == 900
