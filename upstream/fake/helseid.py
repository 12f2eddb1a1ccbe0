"""A HelseID-like token endpoint and the API's token and DPoP checks, for the fake Persontjenesten.

Token endpoint (``POST /connect/token``, client credentials, RFC 7523 + RFC 9449):

- the ``client_assertion`` must be signed by the registered key of ``client_id`` (RS256/ES256), with
  ``iss`` = ``sub`` = the client, ``aud`` = the token endpoint (or the issuer), unexpired, and a ``jti`` never
  seen before; the ``DPoP`` proof must be valid for ``POST`` on the token endpoint, and carry the nonce the
  endpoint handed out when ``require_nonce`` (HelseID does: the first try gets ``use_dpop_nonce``);
- the requested scope must be one the client was given;
- the answer is an access token (a JWT signed by the fake's own key) bound to the proof's key
  (``cnf.jkt``, its RFC 7638 thumbprint), ``token_type`` DPoP, ``expires_in`` = the configured lifetime.

API calls: ``Authorization: DPoP <token>`` with a valid, unexpired, unrevoked token, and a ``DPoP`` proof by
the bound key for this method and URL (``htu`` without the query), fresh (``iat`` within a minute), with a
new ``jti``, the token's hash in ``ath``, and (``api_nonce``) the server's nonce. Any failure is a 401 with
``WWW-Authenticate: DPoP error="…"``; a token without the route's scope is a 403.

Checks use joserfc, as the client does; replay caches keep each ``jti`` until it could no longer pass the
freshness check.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, import_key

from upstream.auth import ALGORITHMS, ASSERTION_TYPE, JWS_REGISTRY, ath_of

__all__ = ["AuthFailure", "FakeAuth", "HelseIdFake", "public_jwk_file"]

TOKEN_PATH = "/connect/token"
PROOF_WINDOW = 60  # seconds either side of now that a proof's iat may be


class AuthFailure(Exception):
    """A refused request: ``status`` 400/401/403 and an OAuth ``error`` code (never secret)."""

    def __init__(self, status: int, error: str, description: str = "", *, nonce: str | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description, self.nonce = status, error, description, nonce


@dataclass(frozen=True)
class FakeAuth:
    """Who may get tokens: client id → (public JWK, the scopes it may ask for)."""

    clients: Mapping[str, tuple[Mapping[str, Any], frozenset[str]]] = field(default_factory=dict)
    token_lifetime: int = 300
    require_nonce: bool = True
    api_nonce: bool = False  # the API, too, asks for a nonce in every proof (RFC 9449 §9)


def public_jwk_file(path: Path) -> dict[str, Any]:
    """The public half of the JWK in ``path`` (a private JWK is accepted: only its public members are kept)."""
    try:
        data = orjson.loads(path.read_bytes())
        if isinstance(data, Mapping) and isinstance(data.get("keys"), list) and len(data["keys"]) == 1:
            data = data["keys"][0]
        return dict(import_key(dict(data)).as_dict(private=False))
    except (OSError, orjson.JSONDecodeError, JoseError, ValueError, TypeError, AttributeError):
        raise ValueError(f"{path} is not a JSON Web Key") from None


class _Replay:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def first_use(self, jti: str, keep: float) -> bool:
        now = self._clock()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            if jti in self._seen:
                return False
            self._seen[jti] = now + keep
            return True


class HelseIdFake:
    def __init__(self, auth: FakeAuth, *, clock: Callable[[], float] = time.time) -> None:
        self.auth = auth
        self._clock = clock
        self._key = ECKey.generate_key("P-256", private=True)
        self._assertions = _Replay(clock)
        self._proofs = _Replay(clock)
        self._nonce = secrets.token_urlsafe(16)
        self._generation = 0  # tokens of an older generation are refused (expire_tokens)
        self.issued = 0

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on, as if it had expired."""
        self._generation += 1

    # -- token endpoint -------------------------------------------------------------------------------

    def token(self, form: Mapping[str, str], dpop: str | None, url: str, issuer: str) -> dict[str, Any]:
        if form.get("grant_type") != "client_credentials":
            raise AuthFailure(400, "unsupported_grant_type")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise AuthFailure(400, "invalid_client", "a private_key_jwt client assertion is required")
        client_id = form.get("client_id", "")
        client = self.auth.clients.get(client_id)
        if client is None:
            raise AuthFailure(401, "invalid_client", "unknown client")
        public, scopes = client
        claims = self._verify(form.get("client_assertion", ""), import_key(dict(public)), "invalid_client", 401)
        now = self._clock()
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise AuthFailure(401, "invalid_client", "iss and sub must be the client id")
        if claims.get("aud") not in (url, issuer) and not (isinstance(claims.get("aud"), list)
                                                          and {url, issuer} & set(claims["aud"])):
            raise AuthFailure(401, "invalid_client", "wrong aud")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] < now:
            raise AuthFailure(401, "invalid_client", "expired assertion")
        if not isinstance(claims.get("jti"), str) or not self._assertions.first_use(claims["jti"], 600):
            raise AuthFailure(401, "invalid_client", "assertion replayed")
        proof_header, proof = self._proof(dpop, "POST", url, error="invalid_dpop_proof", status=400)
        if self.auth.require_nonce and proof.get("nonce") != self._nonce:
            raise AuthFailure(400, "use_dpop_nonce", "a DPoP nonce is required", nonce=self._nonce)
        asked = set(form.get("scope", "").split())
        if not asked or not asked <= scopes:
            raise AuthFailure(400, "invalid_scope", "the client was not given that scope")
        jkt = import_key(proof_header["jwk"]).thumbprint()
        token = jwt.encode({"alg": "ES256", "typ": "at+jwt"},
                           {"iss": issuer, "client_id": client_id, "scope": " ".join(sorted(asked)),
                            "cnf": {"jkt": jkt}, "gen": self._generation, "iat": int(now),
                            "exp": int(now) + self.auth.token_lifetime, "jti": uuid.uuid4().hex},
                           self._key, algorithms=["ES256"])
        self.issued += 1
        return {"access_token": token, "token_type": "DPoP", "expires_in": self.auth.token_lifetime,
                "scope": " ".join(sorted(asked))}

    # -- API calls --------------------------------------------------------------------------------------

    def check(self, authorization: str | None, dpop: str | None, method: str, url: str, scope: str) -> None:
        """Raises AuthFailure unless the request carries a valid DPoP-bound token with ``scope``."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme != "DPoP" or not token:
            raise AuthFailure(401, "invalid_token", "a DPoP access token is required")
        try:
            claims = jwt.decode(token, self._key, algorithms=["ES256"]).claims
        except (JoseError, ValueError):
            raise AuthFailure(401, "invalid_token", "not a token of this issuer") from None
        now = self._clock()
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= now:
            raise AuthFailure(401, "invalid_token", "the token has expired")
        if claims.get("gen") != self._generation:
            raise AuthFailure(401, "invalid_token", "the token has expired")
        header, proof = self._proof(dpop, method, url, error="invalid_dpop_proof", status=401)
        if import_key(header["jwk"]).thumbprint() != (claims.get("cnf") or {}).get("jkt"):
            raise AuthFailure(401, "invalid_dpop_proof", "the proof is not by the key the token is bound to")
        if proof.get("ath") != ath_of(token):
            raise AuthFailure(401, "invalid_dpop_proof", "ath does not match the token")
        if self.auth.api_nonce and proof.get("nonce") != self._nonce:
            raise AuthFailure(401, "use_dpop_nonce", "a DPoP nonce is required", nonce=self._nonce)
        if scope not in str(claims.get("scope", "")).split():
            raise AuthFailure(403, "insufficient_scope", f"this route needs {scope}")

    # -- shared ---------------------------------------------------------------------------------------

    def _verify(self, value: str, key: Any, error: str, status: int) -> dict[str, Any]:
        try:
            return dict(jwt.decode(value, key, algorithms=list(ALGORITHMS), registry=JWS_REGISTRY).claims)
        except (JoseError, ValueError, TypeError):
            raise AuthFailure(status, error, "bad signature or not a JWT") from None

    def _proof(self, value: str | None, method: str, url: str, *, error: str,
               status: int) -> tuple[dict[str, Any], dict[str, Any]]:
        if not value:
            raise AuthFailure(status, error, "a DPoP proof is required")
        try:
            header = dict(jws.extract_compact(value.encode(), registry=JWS_REGISTRY).protected)
            if header.get("typ") != "dpop+jwt" or header.get("alg") not in ALGORITHMS or "d" in header.get("jwk", {}):
                raise AuthFailure(status, error, "not a DPoP proof")
            key = import_key(header["jwk"])
        except (JoseError, ValueError, TypeError, KeyError):
            raise AuthFailure(status, error, "not a DPoP proof") from None
        claims = self._verify(value, key, error, status)
        if claims.get("htm") != method or claims.get("htu") != url:
            raise AuthFailure(status, error, "htm or htu do not match the request")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or abs(self._clock() - iat) > PROOF_WINDOW:
            raise AuthFailure(status, error, "the proof is not fresh")
        if not isinstance(claims.get("jti"), str) or not self._proofs.first_use(claims["jti"], 2 * PROOF_WINDOW):
            raise AuthFailure(status, error, "the proof was replayed")
        return header, claims
