"""Shared fixtures: store engines on SQLite and PostgreSQL, a loopback-only socket guard.

PostgreSQL tests use ``PREGBRIDGE_TEST_PG_URL`` (default: root@127.0.0.1:5432/test, trust auth, as on the
project's machines), each test in a schema of its own that is dropped afterwards. Where no PostgreSQL
answers they skip, saying why; with ``PREGBRIDGE_TEST_PG_REQUIRED=1`` (CI) they fail instead, so a
missing server can never pass silently.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from store.engine import make_engine, migrate

PG_URL = os.environ.get("PREGBRIDGE_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
PG_REQUIRED = os.environ.get("PREGBRIDGE_TEST_PG_REQUIRED") == "1"
FIXTURES = Path(__file__).parent / "fixtures"

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = str(address[0])
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = host == "localhost"
        if not ok:
            raise OSError(f"tests may only connect to loopback addresses, not {host}")
    return _real_connect(self, address)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True, scope="module")
def _register_assumption() -> Iterator[None]:
    """A read-through source built in a test module (server.bootstrap.person_source_of) takes identification's
    register to be the nation's for the rest of the process (store.linkage.params.assume_register): put back
    what the module found, or a later module's identification in the same worker scores against 5.6 million
    persons. Per module, not per test: a module's read-through server (a module fixture) keeps it for all of
    the module's tests, as its process would."""
    from store.linkage.params import assume_register, assumed_register

    before = assumed_register()
    yield
    if assumed_register() != before:
        assume_register(before)


_pg_checked: list[str | None] = []


def _pg_unavailable() -> str | None:
    """None when PostgreSQL answers, else why not (checked once per session)."""
    if not _pg_checked:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as conn:
                conn.execute(text("select 1"))
            eng.dispose()
            _pg_checked.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means: no server to test against
            _pg_checked.append(f"PostgreSQL not reachable at {PG_URL} ({type(exc).__name__}); "
                               "set PREGBRIDGE_TEST_PG_URL to test against PostgreSQL")
    return _pg_checked[0]


@contextlib.contextmanager
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped when the block ends; skips (or, in
    CI, fails) when no PostgreSQL answers."""
    why = _pg_unavailable()
    if why:
        if PG_REQUIRED:
            pytest.fail(why)
        pytest.skip(why)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    name = "pg_url" if request.param == "postgres" else "sqlite_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty store, once on SQLite and once on PostgreSQL."""
    eng = make_engine(db_url)
    migrate(eng)
    from store.linkage.params import forget

    forget()  # identification's cached parameters are of the store of a test before (same URL on PostgreSQL)
    yield eng
    eng.dispose()
