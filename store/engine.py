"""Engines for the two supported databases, and schema migration.

- SQLite (the embedded default): a file in the data directory, WAL journal, ``synchronous=NORMAL``
  (durable at checkpoints, safe against corruption), foreign keys on, a busy timeout so that a
  reader never fails on a writer, 64 MB page cache and memory-mapped reads. Transactions are begun by
  us (SQLAlchemy's documented pysqlite recipe) as ``BEGIN IMMEDIATE``: they take the write lock up front
  and wait for it (busy timeout) instead of failing on a lock upgrade; the hot read paths use
  :func:`read_connection`, which begins no transaction.
- PostgreSQL (scale-out), through psycopg 3: ``postgresql+psycopg://user@host:port/db``.

**Statement deadline** (``statement_timeout`` of :func:`make_engine`, the ``[store] statement_timeout``
setting): the reads of one :class:`Reader` use (one request of a face) or of one :func:`deadline` block
are stopped by the database when they run longer, and raise :class:`store.errors.QueryTimeout` — a typed
``Server.Unavailable`` / HL7 AE, never an internal error. On PostgreSQL it is the server's own
``statement_timeout`` (per statement, planning included), set on a reading connection once and reset when
the connection goes back to the pool, so loads, ingests and migrations on the same engine are never cut
short. On SQLite a progress handler (every :data:`PROGRESS_STEPS` virtual-machine instructions) compares
the clock with the deadline of the current use and interrupts the statement past it; outside a use it
returns at once.

The schema is created and upgraded by Alembic (store/migrations), never by ``metadata.create_all``
outside tests of the migrations themselves; :func:`migrate` to head then rebuilds any derived per-person table
whose recorded layout is not the code's (store/derived.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from store.errors import QueryTimeout

__all__ = ["PROGRESS_STEPS", "DriverStatement", "Reader", "deadline", "driver_statement", "fetch_all",
           "make_engine", "migrate", "read_connection", "run_driver", "sqlite_url", "write_transaction"]

PROGRESS_STEPS = 4000  # SQLite virtual-machine instructions between two looks at the deadline (~0.1 ms of work)

_MIGRATIONS = Path(__file__).parent / "migrations"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=10000",
        "cache_size=-65536",
        "temp_store=MEMORY",
        "mmap_size=268435456",
    ):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling is off (isolation_level=None in _sqlite_pragmas); we emit BEGIN
    # ourselves. IMMEDIATE by default: a deferred transaction that reads and then writes fails at once
    # (SQLITE_BUSY, no busy wait) when another writer committed in between, which any second writer (an
    # ingest, a Filematch worker, the audit thread) makes likely. Read paths that must not queue behind
    # writers use read_connection() (no transaction at all).
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    if mode == "none":  # a read-only connection: each statement reads its own consistent snapshot
        return
    conn.exec_driver_sql(f"BEGIN {mode}")


class _Deadline:
    """The monotonic time by which a SQLite connection's current use must end (None: no use under way); called
    by SQLite as the connection's progress handler, a non-zero answer interrupts the running statement."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self) -> int:
        at = self.at
        return 1 if at is not None and time.monotonic() > at else 0


def _sqlite_deadline(dbapi_conn: Any, record: Any) -> None:
    d = record.info["deadline"] = _Deadline()
    dbapi_conn.set_progress_handler(d, PROGRESS_STEPS)


def _pg_reset_timeout(dbapi_conn: Any, record: Any) -> None:
    # a reading connection (deadline()) set its session's statement_timeout: reset it before anyone else uses it
    if record.info.pop("statement_timeout", None) is None or dbapi_conn is None:
        return
    try:
        cur = dbapi_conn.cursor()
        cur.execute("RESET statement_timeout")
        cur.close()
        dbapi_conn.commit()
    except Exception:  # noqa: BLE001 - a connection that cannot be reset is not handed out again
        record.invalidate()


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5, statement_timeout: float | None = None) -> Engine:
    """An engine for a SQLite or PostgreSQL URL, configured for this store. Its errors (and ``echo``) do not
    show statement parameters: they are identity numbers and names, and errors get logged.

    ``statement_timeout`` (seconds; None or 0: none) is the deadline of the reads of a :class:`Reader` use or
    a :func:`deadline` block (module docstring); other connections of the engine have none."""
    u = make_url(url)
    options = {"statement_timeout": statement_timeout} if statement_timeout else {}
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(u, echo=echo, hide_parameters=True, execution_options=options)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        if statement_timeout:
            event.listen(engine, "connect", _sqlite_deadline)
        return engine
    if u.get_backend_name() == "postgresql":
        if u.drivername == "postgresql":
            u = u.set(drivername="postgresql+psycopg")
        engine = create_engine(u, echo=echo, pool_size=pool_size, pool_pre_ping=True, hide_parameters=True,
                               execution_options=options)
        event.listen(engine, "checkin", _pg_reset_timeout)
        return engine
    raise ValueError(f"unsupported database backend: {u.get_backend_name()}")


def is_timeout(exc: BaseException) -> bool:
    """Did the database stop a statement at its deadline? (SQLite: interrupted by the progress handler;
    PostgreSQL: SQLSTATE 57014 query_canceled.) ``exc`` may be a DBAPI error or SQLAlchemy's wrapper of one."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig) == "interrupted"
    return getattr(orig, "sqlstate", None) == "57014"


def _arm(conn: Connection, seconds: float) -> _Deadline | None:
    info = conn.connection.info
    if conn.dialect.name == "sqlite":
        d: _Deadline | None = info.get("deadline")
        if d is not None:
            d.at = time.monotonic() + seconds
        return d
    ms = max(1, round(seconds * 1000))
    if info.get("statement_timeout") != ms:  # once per connection: a session setting, committed
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        cur.execute(f"SET statement_timeout = {ms}")
        cur.close()
        raw.commit()
        info["statement_timeout"] = ms
    return None


def _end_transaction(conn: Connection) -> None:
    with contextlib.suppress(Exception):
        if conn.in_transaction():
            conn.rollback()
        elif conn.dialect.name != "sqlite":  # driver-level reads (fetch_all) began one behind SQLAlchemy's back
            conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]


_TIMED_OUT = "the query took longer than the statement deadline; narrow it"


@contextmanager
def deadline(conn: Connection, seconds: float | None = None) -> Iterator[Connection]:
    """Run the block's reads on ``conn`` under the statement deadline: ``seconds``, else the engine's
    ``statement_timeout`` as it is now (``Engine.update_execution_options`` changes it for the next block;
    none: the block runs unbounded). A statement stopped at the deadline raises
    :class:`QueryTimeout`, after the connection's transaction is rolled back (so that it can go on reading).
    On PostgreSQL the first block on a connection commits its open transaction (the setting is committed)."""
    seconds = seconds or conn.engine.get_execution_options().get("statement_timeout")
    if not seconds:
        yield conn
        return
    armed = _arm(conn, seconds)
    try:
        yield conn
    except Exception as exc:
        if is_timeout(exc):
            _end_transaction(conn)  # PostgreSQL refuses every statement of an aborted transaction
            raise QueryTimeout(_TIMED_OUT) from None
        raise
    finally:
        if armed is not None:
            armed.at = None


def read_connection(engine: Engine) -> Connection:
    """A connection for reads only. On SQLite it begins no transaction (each statement reads a consistent
    snapshot of the WAL), which saves a BEGIN/ROLLBACK round per lookup; elsewhere it is a plain connection.
    Never write on it."""
    return engine.connect().execution_options(sqlite_begin="none")


_DRIVER_SQL: dict[tuple[int, str], tuple[str, bool]] = {}


def driver_sql(statement: ClauseElement, dialect: Dialect) -> tuple[str, bool]:
    """A module-level statement compiled once per dialect to the driver's own SQL: (text, positional). Running
    that with ``exec_driver_sql`` skips SQLAlchemy's per-call statement handling on hot reads."""
    key = (id(statement), dialect.name)
    cached = _DRIVER_SQL.get(key)
    if cached is None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        cached = _DRIVER_SQL[key] = (str(compiled), bool(compiled.positional))
    return cached


class DriverStatement:
    """A statement built from store.schema's Table and Column objects, compiled once per dialect (and per size of
    its expanding ``IN`` parameters) to driver-level SQL with the dialect's positional placeholders (``?`` on
    SQLite, ``%s`` on PostgreSQL), for :func:`fetch_all`. Its text never names a table or column by hand, so a
    rename in store/schema.py changes it (or fails at import, where a Column is looked up by name).

    :meth:`args` orders the caller's values for the placeholders: a plain parameter by name, an expanding one
    (``bindparam(name, expanding=True)``) from its sequence, a value fixed in the statement (a LIMIT) as
    compiled. Dates go to SQLite as ISO text (SQLAlchemy's ``Date`` there is text, and sqlite3's own date
    adapter is deprecated)."""

    __slots__ = ("_fill", "_one", "_only", "_sqlite", "_template", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, sizes: dict[str, int]) -> None:
        from sqlalchemy.dialects import postgresql, sqlite

        style = "qmark" if dialect.paramstyle == "qmark" else "format"
        target: Dialect = (sqlite.dialect(paramstyle=style) if dialect.name == "sqlite"
                           else postgresql.psycopg.dialect(paramstyle=style))  # type: ignore[no-untyped-call]
        given = {k for k, v in cast(SQLCompiler, statement.compile(dialect=target)).params.items() if v is None}
        values = {k: [0] * sizes[k] if k in sizes else 0 for k in given}
        compiled = cast(SQLCompiler, statement.params(values).compile(
            dialect=target, compile_kwargs={"render_postcompile": True}))
        self.sql = str(compiled)
        self._sqlite = dialect.name == "sqlite"
        template: list[Any] = []
        fill: list[tuple[int, str, int]] = []  # (position, parameter, index in an expanding one or -1)
        for i, name in enumerate(compiled.positiontup or ()):
            base, _, k = name.rpartition("_")
            if base in sizes and k.isdigit():
                fill.append((i, base, int(k) - 1))
            elif name in given:
                fill.append((i, name, -1))
            template.append(None if fill and fill[-1][0] == i else compiled.params[name])
        self._template, self._fill = tuple(template), tuple(fill)
        # the common hot case: the placeholders are one expanding parameter's values, in order
        only = {n for _, n, _ in fill}
        self._only = (next(iter(only)) if len(only) == 1 and len(fill) == len(template)
                      and [k for _, _, k in fill] == list(range(len(fill))) else None)
        self._one = fill[0][1] if len(template) == 1 and len(fill) == 1 and fill[0][2] < 0 else None

    def args(self, values: dict[str, Any]) -> tuple[Any, ...]:
        if self._only is not None:
            return tuple(values[self._only])
        if self._one is not None:  # one plain parameter, nothing fixed (a lookup by number)
            v = values[self._one]
            return (v.isoformat() if self._sqlite and isinstance(v, dt.date) else v,)
        out = list(self._template)
        for i, name, k in self._fill:
            v = values[name] if k < 0 else values[name][k]
            out[i] = v.isoformat() if self._sqlite and isinstance(v, dt.date) else v
        return tuple(out)


_DRIVER_STATEMENTS: dict[tuple[int, str, tuple[tuple[str, int], ...]], DriverStatement] = {}


def driver_statement(statement: ClauseElement, dialect: Dialect, **sizes: int) -> DriverStatement:
    """``statement`` (module-level, built from store.schema) as a cached :class:`DriverStatement` for
    ``dialect``; ``sizes`` gives the length of each expanding parameter."""
    key = (id(statement), dialect.name, tuple(sorted(sizes.items())) if len(sizes) > 1 else tuple(sizes.items()))
    found = _DRIVER_STATEMENTS.get(key)
    if found is None:
        found = _DRIVER_STATEMENTS[key] = DriverStatement(statement, dialect, sizes)
    return found


def run_driver(conn: Connection, statement: ClauseElement, values: dict[str, Any], **sizes: int) -> list[Any]:
    """All rows of ``statement`` run at driver level (as :func:`fetch_all`) with ``values``.

    The cache lookup and the cursor are inlined (PIX runs this once a message): through
    :func:`driver_statement` and :func:`fetch_all` a PIX message took ~9 % more instructions than the driver
    SQL string it replaced, measured with benchmarks/ab_instructions.py."""
    dialect = conn.dialect
    d = _DRIVER_STATEMENTS.get((id(statement), dialect.name, tuple(sizes.items()) if len(sizes) < 2
                                else tuple(sorted(sizes.items()))))
    if d is None:
        d = driver_statement(statement, dialect, **sizes)
    cur = conn.connection.cursor()
    try:
        cur.execute(d.sql, d.args(values))
        return list(cur.fetchall())
    finally:
        cur.close()


def fetch_all(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """All rows of driver-level ``sql`` (the dialect's paramstyle) as DBAPI tuples, on the connection's own
    DBAPI cursor: for hot reads where SQLAlchemy's statement and row handling cost more than the query."""
    cur = conn.connection.cursor()
    try:
        cur.execute(sql, tuple(params))
        return list(cur.fetchall())
    finally:
        cur.close()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction that holds SQLite's write lock from its start (``BEGIN IMMEDIATE``): a deferred
    one would fail instead of waiting when another writer commits between its first read and its write.
    On PostgreSQL a plain transaction (writers that must not interleave take store.feed.write_lock)."""
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


class _Held:
    """A reader's connection in one thread; closed (returned to the pool) when the thread's locals go,
    so a server that runs a thread per request does not leave one open connection per finished thread.
    ``deadline`` is its SQLite progress handler's deadline (None elsewhere), looked up once."""

    __slots__ = ("conn", "deadline")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.deadline: _Deadline | None = conn.connection.info.get("deadline")

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class Reader:
    """One long-lived read connection per thread, for the hot lookup path of a server process. Each use runs
    under the engine's statement deadline (as in :func:`deadline`, inlined: this is the hottest path).

    Checking a connection out of the pool and returning it costs more than a keyed SQLite lookup, so a
    worker keeps one. Each use ends with a rollback, so no transaction (and, on PostgreSQL, no snapshot)
    outlives a call — also one that driver-level reads (:func:`fetch_all`) began on the DBAPI connection
    behind SQLAlchemy's back, which would otherwise stay "idle in transaction" holding its locks; a
    connection that failed is discarded and the next use opens a new one.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._local = threading.local()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.conn.closed or held.conn.invalidated:
            held = self._local.held = _Held(read_connection(self.engine))
        conn = held.conn
        timeout = self.engine.get_execution_options().get("statement_timeout")
        armed = held.deadline
        if timeout:
            if armed is not None:
                armed.at = time.monotonic() + timeout
            else:
                _arm(conn, timeout)
        try:
            yield conn
        except BaseException as exc:
            self._local.held = None
            conn.close()
            if timeout and isinstance(exc, Exception) and is_timeout(exc):
                raise QueryTimeout(_TIMED_OUT) from None
            raise
        finally:
            if armed is not None:
                armed.at = None
        if conn.in_transaction():
            conn.rollback()
        elif conn.dialect.name != "sqlite":  # SQLite's read connections are in autocommit (read_connection)
            conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]

    def close(self) -> None:
        """Close this thread's connection (others close as their threads end)."""
        held: _Held | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.conn.close()


def migrate(engine: Engine, revision: str = "head", *, rebuild_stale: bool = True) -> None:
    """Bring the schema to ``revision`` with Alembic (idempotent); at head, also build the search indexes an
    initial load was killed before building (store.loading.restore_deferred_indexes), and rebuild every derived
    table whose recorded layout is not the code's (unless ``rebuild_stale`` is False: the caller rebuilds)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    if revision == "head":
        from store.loading import restore_deferred_indexes

        restore_deferred_indexes(engine)  # a store whose initial load was killed before building its indexes
        if rebuild_stale:
            _rebuild_stale(engine)


def _rebuild_stale(engine: Engine) -> None:
    """At head, rebuild every derived per-person table whose recorded layout is not this code's (store.derived),
    and re-key every register's derived columns whose recorded layout is not: a release that changes a
    builder's layout needs no migration of its own for the rows."""
    import logging

    from sqlalchemy import select

    from store import schema as s
    from store.derived import rebuild_views, record_layouts, rekey_columns, stale_columns, stale_tables

    with engine.connect() as conn:
        stale = [d.name for d in stale_tables(conn)]
        empty = conn.execute(select(s.person.c.id).limit(1)).first() is None
        columns = stale_columns(conn)
    if stale and empty:  # a new store (its migrations recorded their layouts): nothing to rebuild, nothing to say
        with engine.begin() as conn:
            record_layouts(conn)
    elif stale:
        logging.getLogger(__name__).warning("derived tables %s were written in another layout: rebuilding them "
                                            "from the documents", ", ".join(stale))
        rebuild_views(engine)
    for d in columns:  # a register's derived columns (hpr_person's name keys): rows that differ are re-keyed
        seen, differed = rekey_columns(engine, d)
        if differed:
            logging.getLogger(__name__).warning("%s: %d of %d rows re-keyed from their documents (layout %s)",
                                                d.name, differed, seen, d.layout)
