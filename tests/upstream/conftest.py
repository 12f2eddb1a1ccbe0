"""A small demo population (persons, feed) for the upstream tests, generated once per session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from store.synthetic import generate_population


@pytest.fixture(scope="session")
def demo_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pregbridge demo-data --persons 240 --seed 16 --days 3``: 240 persons and their feed (a seed whose feed
    replaces a D-nummer by a fødselsnummer, which tests/upstream/test_fake_feed.py looks up)."""
    out = tmp_path_factory.mktemp("upstream-population")
    generate_population(out, 240, 16, feed_days=3)
    return out


class ClientKey:
    """A HelseID client's key pair: the private JWK in an owner-only file, the public one for the fake."""

    def __init__(self, directory: Path, kind: str, client_id: str = "pregbridge-test-client") -> None:
        from joserfc.jwk import ECKey, RSAKey

        key = RSAKey.generate_key(2048, private=True) if kind == "RSA" else ECKey.generate_key("P-256", private=True)
        self.kind = kind
        self.client_id = client_id
        self.private = key.as_dict(private=True)
        self.public = key.as_dict(private=False)
        self.path = directory / f"client-{kind}.jwk.json"
        self.path.write_text(json.dumps(self.private))
        self.path.chmod(0o600)

    def settings(self, fake) -> dict[str, object]:
        return {"token_endpoint": fake.token_endpoint, "client_id": self.client_id, "jwk_path": self.path}


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    return ClientKey(tmp_path_factory.mktemp("keys"), "EC")


@pytest.fixture(scope="session", params=["RSA", "EC"])
def any_client_key(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ClientKey:
    return ClientKey(tmp_path_factory.mktemp("keys"), request.param)
