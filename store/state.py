"""Small persistent facts about the store itself: the change feed's position, and the upstream sync's
status (``sync.*`` keys, written by upstream/sync.py)."""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from store import schema as s

__all__ = ["get_feed_position", "get_state", "set_feed_position", "set_state"]

_FEED = "feed.last_applied"


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(s.store_state.c.value).where(s.store_state.c.key == key)).scalar()


def set_state(conn: Connection, key: str, value: str) -> None:
    """Insert or replace one fact (``value`` at most 200 characters)."""
    value = value[:200]
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(s.store_state).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))
    elif conn.dialect.name == "sqlite":
        stmt2 = sqlite.insert(s.store_state).values(key=key, value=value)
        conn.execute(stmt2.on_conflict_do_update(index_elements=["key"], set_={"value": value}))
    else:  # pragma: no cover - only the two dialects above are supported
        if not conn.execute(update(s.store_state).where(s.store_state.c.key == key).values(value=value)).rowcount:
            conn.execute(s.store_state.insert().values(key=key, value=value))


def get_feed_position(conn: Connection) -> int:
    """The last applied change-feed sequence number (0 before any load or feed)."""
    v = get_state(conn, _FEED)
    return int(v) if v is not None else 0


def set_feed_position(conn: Connection, seq: int) -> None:
    set_state(conn, _FEED, str(seq))
