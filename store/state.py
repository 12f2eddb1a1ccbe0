"""Small persistent facts about the store itself (the change feed's position)."""

from __future__ import annotations

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from store import schema as s

__all__ = ["get_feed_position", "set_feed_position"]

_FEED = "feed.last_applied"


def get_feed_position(conn: Connection) -> int:
    """The last applied change-feed sequence number (0 before any load or feed)."""
    v = conn.execute(select(s.store_state.c.value).where(s.store_state.c.key == _FEED)).scalar()
    return int(v) if v is not None else 0


def set_feed_position(conn: Connection, seq: int) -> None:
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(s.store_state).values(key=_FEED, value=str(seq))
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": str(seq)}))
    elif conn.dialect.name == "sqlite":
        stmt2 = sqlite.insert(s.store_state).values(key=_FEED, value=str(seq))
        conn.execute(stmt2.on_conflict_do_update(index_elements=["key"], set_={"value": str(seq)}))
    else:  # pragma: no cover - only the two dialects above are supported
        if not conn.execute(update(s.store_state).where(s.store_state.c.key == _FEED).values(value=str(seq))).rowcount:
            conn.execute(s.store_state.insert().values(key=_FEED, value=str(seq)))
