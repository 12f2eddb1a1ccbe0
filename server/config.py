"""Typed, frozen configuration, built once from one TOML file plus ``PREGBRIDGE_*`` environment variables.

Every key is documented in docs/config.md with its default (tests/unit/test_config_docs.py holds the two to
the same keys). Nothing here opens a connection. Precedence: defaults < the file (``--config FILE`` or
``PREGBRIDGE_CONFIG``) < environment variables < command-line flags.

The one loader of every section, strict: each value is checked against its field's type and bounds (the
dataclass annotations, with ``annotated_types`` bounds) by pydantic — the file's values strictly (TOML
``true`` is no port, ``2.9`` no worker count, ``5`` no directory), the environment's as strings — and an
unknown section or key, a wrong type or a value out of range is a :class:`ConfigError` naming the key as
written in the file (``http.port``), where it was set (the file, the variable or the flag) and what is
expected. The sections' own ``__post_init__`` checks (keys that go together, a known character set) run
last, on the merged values.
"""

from __future__ import annotations

import collections.abc
import difflib
import functools
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval, Le, Lt

from server.access.settings import AccessSettings
from server.hl7.settings import MllpSettings
from server.metrics import MetricsSettings
from store.errors import InvalidInput
from upstream.settings import UpstreamSettings

__all__ = ["DEFAULT_DATA_DIR", "ENVIRONMENT", "SECTIONS", "ConfigError", "FilematchSettings", "HttpSettings",
           "LogSettings", "PregSettings", "Settings", "StoreSettings", "load_settings", "section_defaults"]

DEFAULT_DATA_DIR = Path("var")
DEFAULT_HTTP_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_WORKERS = 2

Port = Annotated[int, Interval(ge=0, le=65535)]
Seconds = Annotated[float, Gt(0)]
AtLeastOne = Annotated[int, Ge(1)]


class ConfigError(InvalidInput, ValueError):
    """A configuration that cannot be used; the message names the key, where it was set and what is expected."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    url: str | None = None  # None: SQLite in data_dir/pregbridge.sqlite
    data_dir: Path = DEFAULT_DATA_DIR
    statement_timeout: Annotated[float, Ge(0)] = 5.0  # seconds a request's reads may take (store.engine); 0: none

    @property
    def database_url(self) -> str:
        return self.url or f"sqlite:///{(self.data_dir / 'pregbridge.sqlite').resolve()}"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    host: str = DEFAULT_HTTP_HOST
    port: Port = DEFAULT_HTTP_PORT
    workers: AtLeastOne = DEFAULT_WORKERS
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # gunicorn's supervision of the worker processes (server/runner.py)
    timeout: AtLeastOne = 60  # seconds: a worker busy with one request for longer is killed and replaced
    graceful_timeout: AtLeastOne = 30  # seconds requests in progress get to finish on stop or reload
    max_requests: Annotated[int, Ge(0)] = 0  # a worker is replaced after this many requests; 0: never
    max_requests_jitter: Annotated[int, Ge(0)] = 0  # up to this many more, at random, so workers do not restart at once
    # The front each worker reads requests with (server/front): deadlines, caps and limits. Caps count
    # per worker process.
    header_timeout: Seconds = 10.0  # seconds from connect (or a kept-alive request's first byte) to the headers' end
    body_timeout: Seconds = 20.0  # seconds a body may take, plus one second per body_min_rate bytes
    body_min_rate: AtLeastOne = 65536  # bytes per second a long body must average beyond body_timeout
    keep_alive: Seconds = 75.0  # seconds an idle kept-alive connection stays open
    send_timeout: Seconds = 30.0  # seconds a response may wait for the client to read
    max_connections: AtLeastOne = 1000  # open connections per worker process
    max_connections_per_address: AtLeastOne = 100  # open connections per client address per worker process
    max_request_line: AtLeastOne = 8190  # bytes of the request line (longer: 414)
    max_header_bytes: AtLeastOne = 32768  # bytes of the request line and headers together (more: 431)
    max_header_fields: AtLeastOne = 100  # header fields per request (more: 431)
    max_body: AtLeastOne = 2 * 1024**3 + 1024**2  # bytes of a request body (more: 413); the faces have their own
    spool_threshold: Annotated[int, Ge(0)] = 1024**2  # a larger body waits on disk, not in memory, for the worker


LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class LogSettings:
    format: LogFormat = "text"  # "text": one readable line per record; "json": one JSON object per line
    level: LogLevel = "info"  # the least severe level written


@dataclass(frozen=True, slots=True)
class PregSettings:
    namespace: str = "urn:no:pregbridge:personregister:v1"
    path: str = "/preg/v1/Personregister"
    public_url: str | None = None  # the address in the served WSDL; None: http://host:port + path
    max_body: AtLeastOne = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FilematchSettings:
    background_workers: Annotated[int, Ge(0)] = 1  # washer threads per server process (0: `filematch worker` only)
    max_upload: AtLeastOne = 2 * 1024**3  # bytes
    spool_dir: Path | None = None  # None: <data_dir>/filematch-spool
    chunk_size: AtLeastOne = 1000  # records per chunk
    retention_days: AtLeastOne = 7  # a job and its answer are deleted this long after submission
    lease_seconds: AtLeastOne = 300  # a dead worker's chunk is washed again after this long
    # characters in one field of a file; a longer one refuses its line (the csv module reads up to 131072)
    max_field: Annotated[int, Interval(ge=1, le=65536)] = 1024


@dataclass(frozen=True, slots=True)
class Settings:
    store: StoreSettings = field(default_factory=StoreSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    log: LogSettings = field(default_factory=LogSettings)
    access: AccessSettings = field(default_factory=AccessSettings)
    preg: PregSettings = field(default_factory=PregSettings)
    filematch: FilematchSettings = field(default_factory=FilematchSettings)
    hl7: MllpSettings = field(default_factory=MllpSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
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


# The file's sections, in docs/config.md's order: each a frozen dataclass whose annotated fields are its keys.
SECTIONS: Mapping[str, type[Any]] = typing.get_type_hints(Settings)

ENVIRONMENT: Mapping[str, tuple[str, str]] = {
    "PREGBRIDGE_DATABASE_URL": ("store", "url"),
    "PREGBRIDGE_DATA_DIR": ("store", "data_dir"),
    "PREGBRIDGE_HTTP_HOST": ("http", "host"),
    "PREGBRIDGE_HTTP_PORT": ("http", "port"),
    "PREGBRIDGE_HTTP_WORKERS": ("http", "workers"),
    "PREGBRIDGE_HTTP_TIMEOUT": ("http", "timeout"),
    "PREGBRIDGE_TLS_CERT": ("http", "tls_cert"),
    "PREGBRIDGE_TLS_KEY": ("http", "tls_key"),
    "PREGBRIDGE_HTTP_HEADER_TIMEOUT": ("http", "header_timeout"),
    "PREGBRIDGE_HTTP_BODY_TIMEOUT": ("http", "body_timeout"),
    "PREGBRIDGE_HTTP_MAX_CONNECTIONS": ("http", "max_connections"),
    "PREGBRIDGE_HTTP_MAX_CONNECTIONS_PER_ADDRESS": ("http", "max_connections_per_address"),
    "PREGBRIDGE_LOG_FORMAT": ("log", "format"),
    "PREGBRIDGE_LOG_LEVEL": ("log", "level"),
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
    "PREGBRIDGE_METRICS_ENABLED": ("metrics", "enabled"),
}


@functools.cache
def _hints(section: str) -> dict[str, Any]:
    """key → its annotation (bounds included) for a section."""
    return typing.get_type_hints(SECTIONS[section], include_extras=True)


@functools.cache
def _adapter(section: str, key: str) -> Any:
    from pydantic import TypeAdapter  # imported when a value is checked: the CLI's --help does not pay for it

    return TypeAdapter(_hints(section)[key])


def section_defaults(section: str) -> dict[str, Any]:
    """key → default of one section (docs/config.md lists each with this default)."""
    defaults = SECTIONS[section]()
    return {f.name: getattr(defaults, f.name) for f in fields(defaults)}


def _bounds(meta: list[Any]) -> str:
    def num(x: Any) -> str:
        return str(int(x)) if float(x).is_integer() else str(x)

    for m in meta:
        if isinstance(m, Interval):
            low = f"{num(m.ge)}" if m.ge is not None else f"more than {num(m.gt)}"
            high = f"{num(m.le)}" if m.le is not None else f"less than {num(m.lt)}"
            return f" from {low} to {high}"
        if isinstance(m, Ge):
            return f" of at least {num(m.ge)}"
        if isinstance(m, Gt):
            return f" greater than {num(m.gt)}"
        if isinstance(m, Le):
            return f" of at most {num(m.le)}"
        if isinstance(m, Lt):
            return f" less than {num(m.lt)}"
    return ""


def expected(hint: Any) -> str:
    """What a key takes, in the file's terms ("an integer from 0 to 65535", "a list of strings")."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *meta = typing.get_args(hint)
        return expected(base) + _bounds(meta)
    if origin in (typing.Union, types.UnionType):
        return expected(next(a for a in typing.get_args(hint) if a is not type(None)))
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(hint))
    if origin is tuple:
        return "a list of strings"
    if origin in (collections.abc.Mapping, dict):
        return "a table of strings"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path (a string)"}
    return names.get(hint, str(hint))


def _shown(value: Any) -> str:
    """A value as the file writes it, cut short (no secret or long text repeated in full)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_tuple(section: str, key: str) -> bool:
    hint = _hints(section)[key]
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    return typing.get_origin(hint) is tuple


def _check(section: str, key: str, value: Any, *, mode: str) -> Any:
    """The value of ``section.key`` typed and bound-checked; ValueError (the expected type) when it is not."""
    from pydantic import ValidationError

    adapter = _adapter(section, key)
    try:
        if mode == "file":  # strict, in JSON's terms: a TOML value's type must be the key's
            return adapter.validate_json(json.dumps(value, default=_not_json), strict=True)
        if mode == "environment":  # a string; a list is comma-separated
            if _is_tuple(section, key):
                return adapter.validate_python(tuple(v.strip() for v in value.split(",") if v.strip()), strict=True)
            return adapter.validate_strings(value)
        return adapter.validate_python(value)  # a command-line flag, already typed by argparse
    except ValidationError:
        raise ValueError(expected(_hints(section)[key])) from None


def _not_json(value: Any) -> Any:
    return {"TOML date or time": str(value)}  # fails every key's type: no key takes a date


def _unknown(kind: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"unknown {kind} {name}" + (f" (did you mean {close[0]}?)" if close else "")


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: the configuration file cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration file is not UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_settings(path: Path | None = None, env: Mapping[str, str] | None = None,
                  overrides: Mapping[str, tuple[str, Any]] | None = None) -> Settings:
    """Settings from defaults, an optional TOML file, the environment and ``overrides``
    (``"http.port"`` → (the flag that set it, its value)); :class:`ConfigError` for anything that does not fit."""
    env = os.environ if env is None else env
    if path is None and env.get("PREGBRIDGE_CONFIG"):
        path = Path(env["PREGBRIDGE_CONFIG"])
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    if path is not None:
        for section, table in _read_file(path).items():
            if section not in SECTIONS:
                if not isinstance(table, dict):
                    raise ConfigError(f"{path}: {_unknown('top-level key', section, [])}: every key belongs in a "
                                      f"section ({', '.join(f'[{s}]' for s in SECTIONS)})")
                raise ConfigError(f"{path}: {_unknown('section', f'[{section}]', [f'[{s}]' for s in SECTIONS])}")
            if not isinstance(table, dict):
                raise ConfigError(f"{path}: {section} = {_shown(table)}: expected a section ([{section}])")
            for key, raw in table.items():
                if key not in _hints(section):
                    raise ConfigError(f"{path}: " + _unknown("key", f"{section}.{key}",
                                                             [f"{section}.{k}" for k in _hints(section)]))
                try:
                    values[section][key] = _check(section, key, raw, mode="file")
                except ValueError as exc:
                    raise ConfigError(f"{path}: {section}.{key} = {_shown(raw)}: expected {exc}") from None
    for var, (section, key) in ENVIRONMENT.items():
        if var in env:
            try:
                values[section][key] = _check(section, key, env[var], mode="environment")
            except ValueError as exc:
                raise ConfigError(f"environment variable {var}={_shown(env[var])} ({section}.{key}): expected {exc}"
                                  ) from None
    for dotted, (flag, raw) in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        try:
            values[section][key] = _check(section, key, raw, mode="flag")
        except ValueError as exc:
            raise ConfigError(f"{flag} {_shown(raw)} ({dotted}): expected {exc}") from None
    built = {}
    for section, cls in SECTIONS.items():
        try:
            built[section] = cls(**values[section])
        except ValueError as exc:  # the section's own checks of keys that go together
            raise ConfigError(f"{path if path is not None else 'configuration'}: {exc}") from None
    return Settings(**built)
