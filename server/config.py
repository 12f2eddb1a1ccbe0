"""Typed, frozen configuration, built once from one TOML file plus ``PREGBRIDGE_*`` environment variables.

Every key is documented in docs/config.md with its default. Nothing here opens a connection.
Precedence: defaults < the file (``--config FILE`` or ``PREGBRIDGE_CONFIG``) < environment variables.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from server.access.settings import AccessSettings
from server.hl7.settings import MllpSettings, mllp_settings_of
from server.metrics import MetricsSettings
from upstream.settings import UpstreamSettings, upstream_settings_of

__all__ = ["DEFAULT_DATA_DIR", "FilematchSettings", "HttpSettings", "LogSettings", "PregSettings", "Settings",
           "StoreSettings", "load_settings"]

DEFAULT_DATA_DIR = Path("var")
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_WORKERS = 2


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str | None = None  # None: SQLite in data_dir/pregbridge.sqlite
    data_dir: Path = DEFAULT_DATA_DIR
    statement_timeout: float = 5.0  # seconds a request's reads may take (store.engine); 0: no deadline

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite:///{(self.data_dir / 'pregbridge.sqlite').resolve()}"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = DEFAULT_HTTP_HOST
    port: int = DEFAULT_HTTP_PORT
    workers: int = DEFAULT_WORKERS
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The front each worker reads requests with (server/front): deadlines, caps and limits. Caps count
    # per worker process.
    header_timeout: float = 10.0  # seconds from connect (or a kept-alive request's first byte) to the headers' end
    body_timeout: float = 20.0  # seconds a body may take, plus one second per body_min_rate bytes
    body_min_rate: int = 65536  # bytes per second a long body must average beyond body_timeout
    keep_alive: float = 75.0  # seconds an idle kept-alive connection stays open
    send_timeout: float = 30.0  # seconds a response may wait for the client to read
    max_connections: int = 1000  # open connections per worker process
    max_connections_per_address: int = 100  # open connections per client address per worker process
    max_request_line: int = 8190  # bytes of the request line (longer: 414)
    max_header_bytes: int = 32768  # bytes of the request line and headers together (more: 431)
    max_header_fields: int = 100  # header fields per request (more: 431)
    max_body: int = 2 * 1024**3 + 1024**2  # bytes of a request body (more: 413); the faces have their own limits
    spool_threshold: int = 1024**2  # a body larger than this waits on disk, not in memory, for the worker


@dataclass(frozen=True, slots=True)
class PregSettings:
    namespace: str = "urn:no:pregbridge:personregister:v1"
    path: str = "/preg/v1/Personregister"
    public_url: str | None = None  # the address in the served WSDL; None: http://host:port + path
    max_body: int = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FilematchSettings:
    background_workers: int = 1  # washer threads in each server process (0: only `pregbridge filematch worker`)
    max_upload: int = 2 * 1024**3  # bytes
    spool_dir: Path | None = None  # None: <data_dir>/filematch-spool
    chunk_size: int = 1000  # records per chunk
    retention_days: int = 7  # a job and its answer are deleted this long after submission
    lease_seconds: int = 300  # a dead worker's chunk is washed again after this long
    max_field: int = 1024  # characters in one field of a file; a longer one refuses its line (≤ 65536)

    def __post_init__(self) -> None:
        if not 1 <= self.max_field <= 65536:  # (the csv module reads fields of up to 131072 characters)
            raise ValueError(f"filematch.max_field must be 1 to 65536 characters, not {self.max_field}")


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: str = "text"  # text | json (server/logs.py)
    level: str = "info"  # debug | info | warning | error


@dataclass(frozen=True, slots=True)
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    preg: PregSettings = field(default_factory=PregSettings)
    filematch: FilematchSettings = field(default_factory=FilematchSettings)
    hl7: MllpSettings = field(default_factory=MllpSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @property
    def ar_public_base_url(self) -> str:
        """Base of the AR addresses in its served WSDL (``/v1/AR``, ``/v1/AR/Basic`` are appended)."""
        if self.preg.public_url:
            from urllib.parse import urlsplit

            u = urlsplit(self.preg.public_url)
            return f"{u.scheme}://{u.netloc}"
        return f"http://{self.http.host}:{self.http.port}"

    @property
    def preg_address(self) -> str:
        return self.preg.public_url or f"http://{self.http.host}:{self.http.port}{self.preg.path}"


_ENV: dict[str, tuple[str, str]] = {
    "PREGBRIDGE_DATABASE_URL": ("store", "url"),
    "PREGBRIDGE_DATA_DIR": ("store", "data_dir"),
    "PREGBRIDGE_HTTP_HOST": ("http", "host"),
    "PREGBRIDGE_HTTP_PORT": ("http", "port"),
    "PREGBRIDGE_HTTP_WORKERS": ("http", "workers"),
    "PREGBRIDGE_TLS_CERT": ("http", "tls_cert"),
    "PREGBRIDGE_TLS_KEY": ("http", "tls_key"),
    "PREGBRIDGE_HTTP_HEADER_TIMEOUT": ("http", "header_timeout"),
    "PREGBRIDGE_HTTP_BODY_TIMEOUT": ("http", "body_timeout"),
    "PREGBRIDGE_HTTP_MAX_CONNECTIONS": ("http", "max_connections"),
    "PREGBRIDGE_HTTP_MAX_CONNECTIONS_PER_ADDRESS": ("http", "max_connections_per_address"),
    "PREGBRIDGE_KEY_PATH": ("access", "key_path"),
    "PREGBRIDGE_PROFILES": ("access", "profiles_path"),
    "PREGBRIDGE_AUDIT_MODE": ("access", "audit_mode"),
    "PREGBRIDGE_TRUSTED_PROXIES": ("access", "trusted_proxies"),
    "PREGBRIDGE_PREG_NAMESPACE": ("preg", "namespace"),
    "PREGBRIDGE_PREG_PATH": ("preg", "path"),
    "PREGBRIDGE_PREG_PUBLIC_URL": ("preg", "public_url"),
    "PREGBRIDGE_FILEMATCH_WORKERS": ("filematch", "background_workers"),
    "PREGBRIDGE_HL7_HOST": ("hl7", "host"),
    "PREGBRIDGE_HL7_PORT": ("hl7", "port"),
    "PREGBRIDGE_UPSTREAM_URL": ("upstream", "base_url"),
    "PREGBRIDGE_UPSTREAM_JWK": ("upstream", "jwk_path"),
    "PREGBRIDGE_LOG_FORMAT": ("log", "format"),
    "PREGBRIDGE_LOG_LEVEL": ("log", "level"),
    "PREGBRIDGE_METRICS_ENABLED": ("metrics", "enabled"),
}
_SECTIONS = ("store", "http", "access", "preg", "filematch", "log", "metrics")


def _coerce(section: Any, key: str, value: Any) -> Any:
    kinds = {f.name: f.type for f in fields(section)}
    if key not in kinds:
        raise ValueError(f"unknown configuration key {type(section).__name__}.{key}")
    kind = str(kinds[key])
    if value is None:
        return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"configuration key {type(section).__name__}.{key} must be true or false")
        return str(value).lower() in ("true", "1")
    if "float" in kind:
        return float(value)
    if "tuple" in kind:  # a TOML list, or one comma-separated string (environment)
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(str(v).strip() for v in items if str(v).strip())
    if "int" in kind:
        return int(value)
    if "Path" in kind:
        return Path(value)
    return str(value)


def _apply(section: Any, values: Mapping[str, Any]) -> Any:
    return replace(section, **{k: _coerce(section, k, v) for k, v in values.items()})


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, an optional TOML file and the environment."""
    env = os.environ if env is None else env
    settings = Settings()
    path = path or (Path(env["PREGBRIDGE_CONFIG"]) if env.get("PREGBRIDGE_CONFIG") else None)
    if path is not None:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        unknown = set(data) - set(_SECTIONS) - {"hl7", "upstream"}
        if unknown:
            raise ValueError(f"unknown configuration section(s): {', '.join(sorted(unknown))}")
        sections = {name: _apply(getattr(settings, name), data.get(name, {})) for name in _SECTIONS}
        settings = Settings(**sections, hl7=mllp_settings_of(data.get("hl7", {})),
                            upstream=upstream_settings_of(data.get("upstream", {})))
    for var, (section, key) in _ENV.items():
        if var in env:
            current = getattr(settings, section)
            settings = replace(settings, **{section: _apply(current, {key: env[var]})})
    return settings
