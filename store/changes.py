"""Which persons changed after a sequence number: the integration way to wash one's own register.

A client keeps the last sequence number it has seen and asks, for its own persons, what changed since;
the answer comes from ``feed_event`` (every applied change-feed event, by person), in sequence order,
one page at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from store import schema as s

__all__ = ["Change", "changes_since"]


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    event_type: str
    person_key: str
    registered_at: dt.datetime | None


def changes_since(conn: Connection, after: int, person_keys: Sequence[str], limit: int) -> tuple[list[Change], bool]:
    """(changes with sequence number > after for these persons, in order, at most limit; more left?)."""
    if not person_keys:
        return [], False
    t = s.feed_event
    rows = conn.execute(
        select(t.c.seq, t.c.event_type, t.c.person_key, t.c.registered_at)
        .where(t.c.seq > after, t.c.person_key.in_(list(dict.fromkeys(person_keys))), t.c.outcome == "applied")
        .order_by(t.c.seq)
        .limit(limit + 1)
    ).all()
    return [Change(r.seq, r.event_type, r.person_key, r.registered_at) for r in rows[:limit]], len(rows) > limit
