"""When persons were last asked about (read-through mode, issue 18), and the retention purge that reads it.

``touch_asked`` is called by the read-through source for every person a face asked about (fetched or already
held). It writes one row per person, moving ``asked_at`` forward only, so concurrent touches never move it back.

**Retention** (:func:`purge`; ``pregbridge purge`` and the sync's schedule, docs/operations.md). A person's
*clock* is its ``person_asked.asked_at``; a person not asked about for ``retention_days`` (clock < now −
retention_days) is deleted with every row the store keeps about it: each table of store.derived.DERIVED, its
``person_asked`` row and its ``person`` row, deleted explicitly (the foreign keys also cascade, on both
databases; SQLite's ``foreign_keys`` pragma is on in store.engine). What is *not* deleted:

- the audit trail: ``audit_event``/``audit_person`` name persons by their numbers and hold no key of
  ``person``, so a person's audit records outlive it and are still found by its numbers;
- persons whose key starts with ``fh-``: felles hjelpenummer allocated by this store (store.hjelpenummer) exist
  nowhere else, so deleting one would lose the number given out; ``fh_request`` keeps pointing at them;
- ``feed_event`` and ``reject`` rows, which name Persontjenesten's opaque person id, not a person's data.

**A person stored but never asked about** (no ``person_asked`` row: stored by a search whose hits no face
then answered with, or a replica's person in a store switched to read-through) has as its clock the time it
was stored, ``person.updated_at``, read by the first purge that sees it and written as its ``asked_at``
then (*adopted*): the feed's later updates of the person (which move ``updated_at``) do not extend its life,
and a face asking about it later moves the clock forward as for any person.

**Bounded.** Persons are read in id order, :data:`BATCH` at a time, without a lock; each batch's expired
persons are deleted (and its never-asked persons adopted) in one short write transaction under the store's
write lock (store.feed.write_lock), which checks the clock again, so a person asked about between the read
and the delete stays. ``dry_run`` reads only and counts what a purge at the same ``now`` would delete.
Totals go to ``store_state`` (:data:`PURGED_KEY`, :data:`LAST_PURGE_KEY`) for ``sync --status`` and /metrics.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from store import schema as s
from store.derived import DERIVED
from store.engine import write_transaction
from store.feed import write_lock
from store.state import get_state, set_state

__all__ = ["BATCH", "LAST_PURGE_KEY", "LOCAL_PREFIX", "PURGED_KEY", "PurgeResult", "last_purge", "purge",
           "purged_total", "touch_asked"]

log = logging.getLogger("pregbridge.retention")

BATCH = 500  # persons read, and at most deleted, per write transaction
LOCAL_PREFIX = "fh-"  # person keys of felles hjelpenummer allocated here (store.hjelpenummer): never purged
PURGED_KEY = "retention.purged_total"  # store_state: persons purged since the store was made
LAST_PURGE_KEY = "retention.last_purge"  # store_state: "<ISO time>Z <persons>" of the last purge that ran


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


def _insert_ignore(conn: Connection, rows: list[dict[str, object]]) -> None:
    t = s.person_asked
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(t).on_conflict_do_nothing(index_elements=["person_id"]), rows)
    else:
        conn.execute(sqlite.insert(t).on_conflict_do_nothing(index_elements=["person_id"]), rows)


@dataclass
class PurgeResult:
    """What one purge did (``dry_run``: would do). Counts only: no person is named."""

    cutoff: dt.datetime  # persons whose clock is before this were (would be) purged
    persons: int = 0  # purged (dry run: expired)
    adopted: int = 0  # never-asked persons given their stored time as their clock (dry run: 0)
    seen: int = 0  # persons read
    batches: int = 0  # write transactions (dry run: 0)
    seconds: float = 0.0
    dry_run: bool = False


_p, _a = s.person, s.person_asked
_CLOCK = func.coalesce(_a.c.asked_at, _p.c.updated_at)
_SCAN = (select(_p.c.id, _p.c.person_key, _CLOCK.label("clock"), _a.c.person_id.label("asked"))
         .select_from(_p.outerjoin(_a, _a.c.person_id == _p.c.id))
         .where(_p.c.id > bindparam("after")).order_by(_p.c.id).limit(bindparam("n")))
_STILL_EXPIRED = (select(_p.c.id).select_from(_p.outerjoin(_a, _a.c.person_id == _p.c.id))
                  .where(_p.c.id.in_(bindparam("ids", expanding=True)), _CLOCK < bindparam("cutoff")))


def _delete_persons(conn: Connection, ids: Sequence[int]) -> None:
    """Every row of these persons: each derived table's, person_asked's, then person's (children first)."""
    for table in [*(d.table for d in DERIVED), s.person_asked]:
        conn.execute(delete(table).where(table.c.person_id.in_(ids)))
    conn.execute(delete(s.person).where(s.person.c.id.in_(ids)))


def purge(engine: Engine, retention_days: int, *, now: dt.datetime | None = None, dry_run: bool = False,
          batch: int = BATCH, progress: Callable[[PurgeResult], None] | None = None) -> PurgeResult:
    """Delete the persons not asked about for ``retention_days`` (module docstring); ``now`` is naive UTC."""
    if retention_days < 1:
        raise ValueError("retention_days must be at least 1")
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    result = PurgeResult(cutoff=now - dt.timedelta(days=retention_days), dry_run=dry_run)
    started = time.perf_counter()
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(_SCAN, {"after": after, "n": batch}).all()
        if not rows:
            break
        after = rows[-1].id
        result.seen += len(rows)
        local = [r for r in rows if not r.person_key.startswith(LOCAL_PREFIX)]
        expired = [r.id for r in local if r.clock < result.cutoff]
        adopt = [{"person_id": r.id, "asked_at": r.clock} for r in local
                 if r.asked is None and r.clock >= result.cutoff]
        if dry_run:
            result.persons += len(expired)
        elif expired or adopt:
            with write_transaction(engine) as conn:
                write_lock(conn)
                gone = list(conn.execute(_STILL_EXPIRED, {"ids": expired, "cutoff": result.cutoff}).scalars()
                            if expired else [])
                if gone:
                    _delete_persons(conn, gone)
                    total = int(get_state(conn, PURGED_KEY) or 0) + len(gone)
                    set_state(conn, PURGED_KEY, str(total))
                if adopt:
                    _insert_ignore(conn, adopt)
            result.persons += len(gone)
            result.adopted += len(adopt)
            result.batches += 1
        if progress:
            progress(result)
    result.seconds = time.perf_counter() - started
    if not dry_run:
        with write_transaction(engine) as conn:
            set_state(conn, LAST_PURGE_KEY, f"{now:%Y-%m-%dT%H:%M:%S}Z {result.persons}")
    log.info("retention purge%s: %d of %d persons not asked about for %d days %s (%d adopted their stored time) "
             "in %.1f s", " (dry run)" if dry_run else "", result.persons, result.seen, retention_days,
             "would be deleted" if dry_run else "deleted", result.adopted, result.seconds)
    return result


def purged_total(conn: Connection) -> int:
    """Persons purged since the store was made (:data:`PURGED_KEY`)."""
    return int(get_state(conn, PURGED_KEY) or 0)


def last_purge(conn: Connection) -> tuple[dt.datetime, int] | None:
    """When the last (not dry-run) purge ran and how many persons it deleted; None: never."""
    value = get_state(conn, LAST_PURGE_KEY)
    if not value:
        return None
    at, _, persons = value.partition(" ")
    return dt.datetime.fromisoformat(at.removesuffix("Z")), int(persons or 0)
