"""HelseID client credentials with DPoP: the client's key, its signed assertions and proofs, the token cache.

- :func:`load_jwk` reads the private key (a JWK, RSA → RS256 or EC P-256 → ES256) from a file that only its
  owner may read; a file group or others can read is refused, naming the file and its mode, never its content.
- :class:`Signer` makes the two JWTs the flow needs, with joserfc (no hand-made JWS):
  the ``private_key_jwt`` client assertion (RFC 7523: ``iss`` = ``sub`` = client id, ``aud``, ``jti``, ``iat``,
  ``exp``) and the DPoP proof (RFC 9449: header ``typ: dpop+jwt`` with the public ``jwk``; claims ``htm``,
  ``htu`` without query and fragment, ``iat``, ``jti``, ``ath`` = base64url(SHA-256(access token)) on API calls,
  ``nonce`` when the server asked for one).
- :class:`TokenSource` keeps one access token until ``token_margin`` before it expires, renews it under a lock
  (one request however many threads ask), and forgets it on demand (after a 401).

Nothing here logs a key, an assertion, a proof or a token.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from joserfc import jwk, jwt
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from upstream.errors import UpstreamAuthError, UpstreamConfigError

__all__ = ["ALGORITHMS", "JWS_REGISTRY", "Signer", "TokenSource", "ath_of", "htu_of", "load_jwk"]

ALGORITHMS = ("RS256", "ES256")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds


class _Registry(JWSRegistry):
    # joserfc refuses JWS headers above 512 bytes; a DPoP proof carries the public key in its header, and an
    # RSA key's modulus alone is 342 characters at 2048 bits, 683 at 4096.
    max_header_length = 4096


JWS_REGISTRY = _Registry(algorithms=list(ALGORITHMS))

Key = jwk.RSAKey | jwk.ECKey


def load_jwk(path: Path) -> tuple[Key, str]:
    """The private key in ``path`` and its algorithm; refuses files that group or others can read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise UpstreamConfigError(f"upstream.jwk_path: cannot read {path} ({exc.strerror})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UpstreamConfigError(
            f"upstream.jwk_path: {path} is open to group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"a private key must be readable by its owner only: chmod 600 {path}")
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        raise UpstreamConfigError(f"upstream.jwk_path: {path} is not a JSON Web Key") from None
    if isinstance(data, Mapping) and isinstance(data.get("keys"), list) and len(data["keys"]) == 1:
        data = data["keys"][0]  # a JWK set holding the one key
    if not isinstance(data, Mapping):
        raise UpstreamConfigError(f"upstream.jwk_path: {path} is not a JSON Web Key")
    return key_of(dict(data), where=str(path))


def key_of(data: dict[str, Any], *, where: str = "the key") -> tuple[Key, str]:
    """A private JWK as a joserfc key and its algorithm (RS256 for RSA, ES256 for EC P-256)."""
    if "d" not in data:
        raise UpstreamConfigError(f"upstream.jwk_path: {where} holds a public key; the client needs its private key")
    try:
        key = jwk.import_key(data)
    except (JoseError, ValueError, TypeError):
        raise UpstreamConfigError(f"upstream.jwk_path: {where} is not a usable JSON Web Key") from None
    if isinstance(key, jwk.RSAKey):
        alg = "RS256"
    elif isinstance(key, jwk.ECKey) and data.get("crv") == "P-256":
        alg = "ES256"
    else:
        raise UpstreamConfigError(f"upstream.jwk_path: {where}: only RSA (RS256) and EC P-256 (ES256) keys are used")
    wanted = data.get("alg")
    if wanted is not None and wanted != alg:
        raise UpstreamConfigError(f"upstream.jwk_path: {where} says alg {wanted}; this key type signs {alg}")
    return key, alg


def htu_of(url: str) -> str:
    """The DPoP ``htu`` of a request URL: scheme, host and path, without query and fragment (RFC 9449 §4.2)."""
    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, u.path, "", ""))


def ath_of(access_token: str) -> str:
    """The DPoP ``ath`` claim: base64url of the SHA-256 of the access token, unpadded."""
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode("ascii")).digest()).rstrip(b"=").decode()


class Signer:
    """Signs client assertions and DPoP proofs with one private key."""

    def __init__(self, key: Key, alg: str, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self.alg = alg
        self.public_jwk = key.as_dict(private=False)
        self.thumbprint = key.thumbprint()
        self._clock = clock

    def _sign(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        return jwt.encode(header, claims, self._key, algorithms=list(ALGORITHMS), registry=JWS_REGISTRY)

    def client_assertion(self, client_id: str, audience: str) -> str:
        now = int(self._clock())
        header: dict[str, Any] = {"alg": self.alg, "typ": "client-authentication+jwt"}
        kid = self.public_jwk.get("kid")
        if kid:
            header["kid"] = kid
        return self._sign(header, {"iss": client_id, "sub": client_id, "aud": audience, "jti": uuid.uuid4().hex,
                                   "iat": now, "nbf": now, "exp": now + ASSERTION_LIFETIME})

    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None) -> str:
        claims: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method.upper(), "htu": htu_of(url),
                                  "iat": int(self._clock())}
        if access_token is not None:
            claims["ath"] = ath_of(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        return self._sign({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}, claims)


class TokenSource:
    """The access token, fetched by ``fetch`` (which returns the token and its lifetime in seconds) and kept
    until ``margin`` seconds before it expires."""

    def __init__(self, fetch: Callable[[], tuple[str, float]], *, margin: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetched = 0  # how many tokens were fetched (tests, status)

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                token, lifetime = self._fetch()
                if not token:
                    raise UpstreamAuthError("HelseID answered without an access token")
                self._token = token
                # a token that lives shorter than the margin is used once rather than never
                self._renew_at = self._clock() + max(lifetime - self._margin, 0.0)
                self.fetched += 1
            return self._token

    def forget(self, token: str) -> None:
        """Drop ``token`` (the API refused it); a newer one fetched meanwhile by another thread is kept."""
        with self._lock:
            if self._token == token:
                self._token = None
