"""Settings of the Persontjenesten upstream (``[upstream]`` in the configuration file; docs/upstream.md).

A frozen dataclass with documented defaults whose annotations (types and bounds) are what the one
configuration loader (server/config.py) checks; ``__post_init__`` checks the values against the API's terms.

- ``base_url`` (""): the API's address, e.g. ``https://et.persontjenesten.test.nhn.no``; "" = no upstream.
- ``api_version`` ("2"): "2" (``/api/legal-basis/...``) or "3" (``/api/v3/full-access/...``).
- ``bundle`` ("legal-basis"): the authorisation bundle, "legal-basis" or "no-legal-basis" (v3: full-access or
  restricted-access).
- ``token_endpoint`` (""): HelseID's token endpoint. "" sends no Authorization header at all: only for the
  fake Persontjenesten started without ``--client-jwk``.
- ``client_id`` (""), ``jwk_path`` (None): the HelseID client and its private key, a JWK (RSA or EC P-256) in a
  file only its owner may read (mode 0600 or stricter).
- ``scope`` (""): "" = the bundle's scope (``upstream.spec.SCOPES``).
- ``assertion_audience`` (""): ``aud`` of the client assertion; "" = the token endpoint (HelseID accepts its
  issuer, e.g. ``https://helseid-sts.nhn.no``).
- ``connect_timeout`` (5 s), ``read_timeout`` (30 s): per attempt; ``deadline`` (120 s): a whole call, retries
  and waits included, never takes longer.
- ``retries`` (5): further attempts after a network error, a 5xx, a 429 or a 503; ``backoff_initial`` (0.5 s)
  doubling up to ``backoff_max`` (30 s), with full jitter; a ``Retry-After`` is honoured up to
  ``retry_after_max`` (300 s).
- ``token_margin`` (60 s): an access token is renewed this long before it expires.
- ``parallelism`` (4): bulk requests in flight at once (the sync's page fetch).
- ``information_parts`` ([]): the parts to fetch; [] = the union of what the configured access profiles can
  release (data minimisation; docs/upstream.md lists element → part).
- ``include_history`` (true): ask for historic items too (ceased numbers, earlier addresses).
- ``poll_interval`` (30 s): how long the sync waits when it has caught up with the feed.
- ``mode`` ("replica"): "replica" (the store holds the whole population, filled by ``sync``) or "read-through"
  (the store holds only the persons this site asked about; misses go to the API; issue 18, docs/upstream.md).
- ``lookup_deadline`` (2 s): read-through: a whole upstream call made for a legacy request never takes longer.
- ``breaker_failures`` (5), ``breaker_pause`` (30 s): read-through: after this many failed calls in a row, calls
  are paused this long (the faces answer "unavailable" at once) before one call tries again.
- ``retention_days`` (90): read-through: a person not asked about for this many days is deleted.
- ``purge_interval`` (3600 s): read-through: how often ``sync`` runs the retention purge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from annotated_types import Ge, Gt, Interval

from upstream.spec import ACCESS_BUNDLES, API_VERSIONS, INFORMATION_PARTS, SCOPES, path_prefix

__all__ = ["MODES", "UpstreamSettings"]

Seconds = Annotated[float, Gt(0)]

MODES = ("replica", "read-through")


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    base_url: str = ""
    api_version: str = "2"
    bundle: str = "legal-basis"
    token_endpoint: str = ""
    client_id: str = ""
    jwk_path: Path | None = None
    scope: str = ""
    assertion_audience: str = ""
    connect_timeout: Seconds = 5.0
    read_timeout: Seconds = 30.0
    deadline: Seconds = 120.0
    retries: Annotated[int, Ge(0)] = 5
    backoff_initial: Seconds = 0.5
    backoff_max: Seconds = 30.0
    retry_after_max: Seconds = 300.0
    token_margin: Annotated[float, Ge(0)] = 60.0
    parallelism: Annotated[int, Interval(ge=1, le=64)] = 4
    information_parts: tuple[str, ...] = ()
    include_history: bool = True
    poll_interval: Seconds = 30.0
    mode: str = "replica"
    lookup_deadline: Seconds = 2.0
    breaker_failures: Annotated[int, Ge(1)] = 5
    breaker_pause: Seconds = 30.0
    retention_days: Annotated[int, Ge(1)] = 90
    purge_interval: Seconds = 3600.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"upstream.mode must be one of {', '.join(MODES)}")
        if self.api_version not in API_VERSIONS:
            raise ValueError(f"upstream.api_version must be one of {', '.join(API_VERSIONS)}")
        if self.bundle not in ACCESS_BUNDLES:
            raise ValueError(f"upstream.bundle must be one of {', '.join(ACCESS_BUNDLES)}")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("upstream.base_url must be an http:// or https:// address")
        if self.token_endpoint and not (self.client_id and self.jwk_path):
            raise ValueError("upstream.token_endpoint needs upstream.client_id and upstream.jwk_path")
        unknown = [p for p in self.information_parts if p not in INFORMATION_PARTS]
        if unknown:
            raise ValueError(f"upstream.information_parts: not information parts of the API: {', '.join(unknown)}")

    @property
    def configured(self) -> bool:
        return bool(self.base_url)

    @property
    def prefix(self) -> str:
        return path_prefix(self.api_version, self.bundle)

    @property
    def effective_scope(self) -> str:
        return self.scope or SCOPES[(self.api_version, self.bundle)]

