"""HelseID client credentials with DPoP, end to end over loopback: the client against the fake's token endpoint
and API checks."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import httpx
import pytest
from joserfc.jwk import ECKey

from upstream.auth import Signer, key_of, load_jwk
from upstream.client import PersontjenestenClient
from upstream.errors import UpstreamAuthError, UpstreamConfigError
from upstream.fake import FakeAuth, FakeOptions, Faults, RunningFake, serve_fake
from upstream.fake.helseid import AuthFailure, HelseIdFake
from upstream.settings import UpstreamSettings
from upstream.spec import SCOPES

PARTS = ["Name", "NorwegianIdentificationNumber"]


def helseid(fake: RunningFake) -> HelseIdFake:
    assert fake.app.helseid is not None, "this fake runs without authentication"
    return fake.app.helseid


def auth_for(key, *, scopes=None, lifetime: int = 300, require_nonce: bool = True) -> FakeAuth:
    granted = frozenset(scopes if scopes is not None else SCOPES.values())
    return FakeAuth({key.client_id: (key.public, granted)}, token_lifetime=lifetime, require_nonce=require_nonce)


class Recording(httpx.HTTPTransport):
    """The client's transport, keeping every request and the status it got."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[httpx.Request, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.sent.append((request, response.status_code))
        return response

    def api_calls(self) -> list[tuple[httpx.Request, int]]:
        return [(r, s) for r, s in self.sent if "/api/" in r.url.path]


@pytest.mark.parametrize("version", ["2", "3"])
def test_token_flow_and_dpop_on_every_call(demo_population: Path, any_client_key, version: str) -> None:
    transport = Recording()
    with serve_fake(demo_population, FakeOptions(auth=auth_for(any_client_key))) as fake:
        settings = fake.client_settings(**any_client_key.settings(fake), api_version=version)
        with PersontjenestenClient(settings, transport=transport) as client:
            events = client.events(1)
            client.persons_by_id([e.person_id for e in events[:5]], PARTS)
            assert client.person_by_id(events[0].person_id, PARTS) is not None
            assert client.tokens_fetched == 1 and helseid(fake).issued == 1
    token_calls = [s for r, s in transport.sent if r.url.path == "/connect/token"]
    assert token_calls == [400, 200]  # HelseID-like: the first try is told to use a DPoP nonce
    calls = transport.api_calls()
    assert [s for _, s in calls] == [200, 200, 200]
    proofs = {r.headers["DPoP"] for r, _ in calls}
    assert len(proofs) == 3  # a new proof each call
    assert all(r.headers["Authorization"].startswith("DPoP ") for r, _ in calls)
    header = ("api-version", "2") if version == "2" else ("Api-Version", "3")
    assert all(r.headers[header[0]] == header[1] for r, _ in calls)


def _replay(request: httpx.Request, **headers: str) -> httpx.Response:
    sent = httpx.Headers(request.headers)
    for name, value in headers.items():
        sent[name] = value  # case-insensitive: replaces the recorded header
    return httpx.request(request.method, request.url, headers=sent, content=request.content)


def test_replayed_wrong_htu_wrong_key_and_wrong_ath_are_refused(demo_population: Path, client_key) -> None:
    transport = Recording()
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key))) as fake:
        settings = fake.client_settings(**client_key.settings(fake))
        with PersontjenestenClient(settings, transport=transport) as client:
            client.events(1)
        request, status = transport.api_calls()[0]
        assert status == 200
        token = request.headers["Authorization"].split(" ", 1)[1]
        signer = Signer(*load_jwk(client_key.path))

        replayed = _replay(request)  # the same proof (same jti) again
        assert replayed.status_code == 401 and 'error="invalid_dpop_proof"' in replayed.headers["WWW-Authenticate"]

        fresh = _replay(request, DPoP=signer.proof("GET", str(request.url), access_token=token))
        assert fresh.status_code == 200  # the same token with a new proof is fine: the refusals above are specific

        other_url = str(request.url).replace("/legal-basis/", "/no-legal-basis/")
        wrong_htu = _replay(request, DPoP=signer.proof("GET", other_url, access_token=token))
        assert wrong_htu.status_code == 401

        wrong_method = _replay(request, DPoP=signer.proof("POST", str(request.url), access_token=token))
        assert wrong_method.status_code == 401

        stranger = Signer(ECKey.generate_key("P-256", private=True), "ES256")
        wrong_key = _replay(request, DPoP=stranger.proof("GET", str(request.url), access_token=token))
        assert wrong_key.status_code == 401  # the token is bound to the client's key (cnf.jkt)

        wrong_ath = _replay(request, DPoP=signer.proof("GET", str(request.url), access_token=token + "x"))
        assert wrong_ath.status_code == 401

        no_proof = httpx.get(request.url, headers={"Authorization": request.headers["Authorization"],
                                                   "api-version": "2"})
        assert no_proof.status_code == 401
        bearer = _replay(request, Authorization=f"Bearer {token}",
                         DPoP=signer.proof("GET", str(request.url), access_token=token))
        assert bearer.status_code == 401


def test_a_client_with_the_wrong_key_gets_no_token(demo_population: Path, client_key, tmp_path: Path) -> None:
    other = tmp_path / "other.jwk.json"
    other.write_text(json.dumps(ECKey.generate_key("P-256", private=True).as_dict(private=True)))
    other.chmod(0o600)
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key))) as fake:
        settings = fake.client_settings(**{**client_key.settings(fake), "jwk_path": other})
        with PersontjenestenClient(settings) as client, pytest.raises(UpstreamAuthError) as caught:
            client.events(1)
        assert "invalid_client" in str(caught.value)
        assert helseid(fake).issued == 0


def test_a_replayed_client_assertion_is_refused(demo_population: Path, client_key) -> None:
    transport = Recording()
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key, require_nonce=False))) as fake:
        with PersontjenestenClient(fake.client_settings(**client_key.settings(fake)), transport=transport) as client:
            client.latest_event()
        token_request = next(r for r, s in transport.sent if r.url.path == "/connect/token")
        signer = Signer(*load_jwk(client_key.path))
        again = _replay(token_request, DPoP=signer.proof("POST", str(token_request.url)))
        assert again.status_code == 401 and again.json()["error"] == "invalid_client"


def test_expired_token_mid_run_is_refreshed_once(demo_population: Path, client_key) -> None:
    transport = Recording()
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key))) as fake:
        with PersontjenestenClient(fake.client_settings(**client_key.settings(fake)), transport=transport) as client:
            first = client.events(1)
            helseid(fake).expire_tokens()  # every token issued so far is now refused, as expired
            assert client.events(1) == first
            assert client.tokens_fetched == 2
    assert [s for _, s in transport.api_calls()] == [200, 401, 200]


def test_token_renewed_before_it_expires(demo_population: Path, client_key) -> None:
    transport = Recording()
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key, lifetime=3))) as fake:
        settings = fake.client_settings(**client_key.settings(fake), token_margin=2.0)
        with PersontjenestenClient(settings, transport=transport) as client:
            client.latest_event()
            client.latest_event()
            assert client.tokens_fetched == 1  # cached
            time.sleep(1.1)  # now within the margin of the 3 s lifetime
            client.latest_event()
            assert client.tokens_fetched == 2
    assert 401 not in [s for _, s in transport.api_calls()]  # renewed ahead, never refused


def test_401_after_a_fresh_token_is_an_error(demo_population: Path, client_key, monkeypatch) -> None:
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key))) as fake:
        def refuse(*args, **kwargs):
            raise AuthFailure(401, "invalid_token", "refused")

        monkeypatch.setattr(fake.app.helseid, "check", refuse)
        with PersontjenestenClient(fake.client_settings(**client_key.settings(fake))) as client:
            with pytest.raises(UpstreamAuthError) as caught:
                client.latest_event()
            assert client.tokens_fetched == 2  # one refresh, then the error
        assert "401" in str(caught.value)


def test_403_names_the_scope(demo_population: Path, client_key) -> None:
    no_legal = SCOPES[("2", "no-legal-basis")]
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key, scopes=[no_legal]))) as fake:
        # the client asks for the restricted scope but calls the legal-basis route
        settings = fake.client_settings(**client_key.settings(fake), scope=no_legal)
        with PersontjenestenClient(settings) as client, pytest.raises(UpstreamConfigError) as caught:
            client.latest_event()
        assert "403" in str(caught.value) and no_legal in str(caught.value) and "/api/legal-basis" in str(caught.value)
        # asking for a scope the client was not given is refused by the token endpoint
        with PersontjenestenClient(fake.client_settings(**client_key.settings(fake))) as client, \
                pytest.raises(UpstreamAuthError, match="invalid_scope"):
            client.latest_event()


def test_no_secret_or_person_data_in_logs(demo_population: Path, client_key, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    transport = Recording()
    faults = Faults(rate_limit_every=3, error_every=5, drop_every=7, retry_after=0)
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key), faults=faults)) as fake:
        settings = fake.client_settings(**client_key.settings(fake), backoff_initial=0.001, retries=6)
        with PersontjenestenClient(settings, transport=transport) as client:
            events = client.events(1)
            persons = client.persons_by_id([e.person_id for e in events[:20]], PARTS)
            client.person_by_nin(persons[0]["norwegianIdentificationNumber"][0]["identificationNumber"], PARTS)
            helseid(fake).expire_tokens()
            client.latest_event()
    assert "try" in caplog.text  # the retries were logged…
    secrets = [client_key.private["d"], *(r.headers.get("DPoP", "") for r, _ in transport.sent)]
    secrets += [r.headers["Authorization"].split(" ", 1)[1] for r, _ in transport.api_calls()]
    secrets += [r.content.decode() for r, _ in transport.sent if r.url.path == "/connect/token"]
    person_data = [p["norwegianIdentificationNumber"][0]["identificationNumber"] for p in persons]
    person_data += [p["name"][0]["familyName"] for p in persons] + [e.person_id for e in events[:20]]
    leaked = [s for s in secrets + person_data if s and s in caplog.text]
    assert leaked == []  # …and nothing else


def test_key_file_must_be_owner_only(tmp_path: Path, client_key) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(client_key.private))
    path.chmod(0o644)
    with pytest.raises(UpstreamConfigError) as caught:
        load_jwk(path)
    assert "0644" in str(caught.value) and "chmod 600" in str(caught.value)
    assert client_key.private["d"] not in str(caught.value)
    settings = UpstreamSettings(base_url="http://127.0.0.1:9", token_endpoint="http://127.0.0.1:9/connect/token",
                                client_id="c", jwk_path=path)
    with pytest.raises(UpstreamConfigError, match="open to group or others"):
        PersontjenestenClient(settings)  # refused before anything is sent
    path.chmod(0o640)
    with pytest.raises(UpstreamConfigError):
        load_jwk(path)
    path.chmod(0o600)
    assert load_jwk(path)[1] == "ES256"
    path.chmod(0o400)
    assert load_jwk(path)[1] == "ES256"


def test_unusable_keys_are_refused_clearly(tmp_path: Path, client_key) -> None:
    with pytest.raises(UpstreamConfigError, match="public key"):
        key_of(dict(client_key.public))
    p384 = ECKey.generate_key("P-384", private=True).as_dict(private=True)
    with pytest.raises(UpstreamConfigError, match="P-256"):
        key_of(p384)
    with pytest.raises(UpstreamConfigError, match="alg"):
        key_of({**client_key.private, "alg": "RS256"})
    path = tmp_path / "garbage.json"
    path.write_text("not json")
    path.chmod(0o600)
    with pytest.raises(UpstreamConfigError, match="not a JSON Web Key"):
        load_jwk(path)
    with pytest.raises(UpstreamConfigError, match="cannot read"):
        load_jwk(tmp_path / "missing.json")
    jwks = tmp_path / "set.json"
    jwks.write_text(json.dumps({"keys": [client_key.private]}))
    jwks.chmod(0o600)
    assert load_jwk(jwks)[1] == "ES256"


def test_threads_share_one_token_and_one_pool(demo_population: Path, client_key) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key))) as fake:
        with PersontjenestenClient(fake.client_settings(**client_key.settings(fake), parallelism=4)) as client:
            ids = [e.person_id for e in client.events(1)[:200]]
            helseid(fake).expire_tokens()  # all four threads meet a refused token at about the same time
            chunks = [ids[i:i + 10] for i in range(0, 200, 10)]
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda chunk: client.persons_by_id(chunk, PARTS), chunks))
            assert [[p["id"] for p in a] for a in answers] == chunks
            assert client.tokens_fetched == 2  # the first token, then ONE refresh for all the threads refused
            assert helseid(fake).issued == client.tokens_fetched


def test_an_unreachable_token_endpoint_is_retried(demo_population: Path, client_key) -> None:
    class FlakyTokens(Recording):
        failures = 2

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/connect/token" and self.failures:
                self.failures -= 1
                raise httpx.ConnectError("refused", request=request)
            return super().handle_request(request)

    transport = FlakyTokens()
    with serve_fake(demo_population, FakeOptions(auth=auth_for(client_key))) as fake:
        settings = fake.client_settings(**client_key.settings(fake), backoff_initial=0.001)
        with PersontjenestenClient(settings, transport=transport) as client:
            assert client.latest_event() is not None
            assert client.tokens_fetched == 1


def test_an_api_that_asks_for_a_dpop_nonce(demo_population: Path, client_key) -> None:
    transport = Recording()
    with serve_fake(demo_population, FakeOptions(auth=FakeAuth(auth_for(client_key).clients, api_nonce=True))) as fake:
        with PersontjenestenClient(fake.client_settings(**client_key.settings(fake)), transport=transport) as client:
            assert client.latest_event() is not None
            assert client.events(1)
            assert client.tokens_fetched == 1  # a nonce request is not a refused token
    calls = transport.api_calls()
    assert [s for _, s in calls] == [401, 200, 200]  # asked once, then every proof carries the nonce
    from joserfc import jws

    from upstream.auth import JWS_REGISTRY

    claims = [json.loads(jws.extract_compact(r.headers["DPoP"].encode(), registry=JWS_REGISTRY).payload)
              for r, _ in calls]
    assert "nonce" not in claims[0] and claims[1]["nonce"] == claims[2]["nonce"]
