"""When persons were last asked about (read-through mode, issue 18): the record that retention reads.

``touch_asked`` is called by the read-through source for every person a face asked about (fetched or already
held). It writes one row per person, moving ``asked_at`` forward only, so concurrent touches never move it back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from store import schema as s

__all__ = ["touch_asked"]


def touch_asked(conn: Connection, person_ids: Iterable[int], now: dt.datetime) -> int:
    """Record that each person was asked about at ``now`` (later of the stored and the new time); returns the count."""
    rows = [{"person_id": pid, "asked_at": now} for pid in sorted(set(person_ids))]
    if not rows:
        return 0
    t = s.person_asked
    if conn.dialect.name == "postgresql":
        pstmt = postgresql.insert(t)
        conn.execute(pstmt.on_conflict_do_update(
            index_elements=["person_id"], set_={"asked_at": pstmt.excluded.asked_at},
            where=t.c.asked_at < pstmt.excluded.asked_at), rows)
    else:
        sstmt = sqlite.insert(t)
        conn.execute(sstmt.on_conflict_do_update(
            index_elements=["person_id"], set_={"asked_at": sstmt.excluded.asked_at},
            where=t.c.asked_at < sstmt.excluded.asked_at), rows)
    return len(rows)
