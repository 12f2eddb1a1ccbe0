"""The sync in read-through mode (issue 18): the feed updates only the persons the store holds.

In read-through mode (``[upstream] mode = "read-through"``) the store holds only the persons this site has asked
about. ``pregbridge sync`` follows the event feed exactly as in replica mode (upstream.sync: same pages, same
transaction, same position), with three differences, all made here and called from the syncer's hooks:

- **Which persons a page fetches** (:meth:`ReadThroughFeed.select`): the page's person ids are filtered against
  the store's ``person.person_key`` in one query; events of persons the store does not hold are *skipped*:
  nothing is fetched for them, nothing is written about them (not even a ``feed_event`` row: the store keeps
  nothing about persons it does not hold), and the position moves past them with the page, in the page's
  transaction. So ``kill -9`` at any moment and a rerun converge as in replica mode.
- **Merges touching a held person** (:meth:`ReadThroughFeed.narrow`): a merge's survivor
  (``PersonIsContinuedAsValidUponMerger``) that the store does not hold is fetched too (merges are rare), and
  kept only when it holds a number that a held person holds (the duplicate this site knows): stored, the
  survivor takes the duplicate's numbers over (upstream.sync's settling), so a lookup by the duplicate's number
  answers the survivor as a replica does. A survivor touching no held person is dropped unstored. The
  duplicate's own event (``PersonIsDiscontinuedAsDuplicate``) and any discontinuation of a held person are
  ordinary events of a held person.
- **Checked again in the page's transaction** (:meth:`ReadThroughFeed.recheck`), under the store's write lock:
  a person deleted meanwhile (the retention purge) is not written back; a person stored meanwhile by a face
  (its event was skipped at the filter) makes the page be fetched again (:class:`HeldMeanwhile`), so that no
  event of a held person is ever skipped.

Also here: the retention purge's schedule inside ``sync`` (:class:`PurgeSchedule`, store.retention.purge every
``purge_interval`` seconds, read-through only), the feed's staleness (:class:`FeedWatch`: a warning when the
feed has failed for longer than ``stale_after``; :func:`feed_figures` for ``sync --status`` and /metrics).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, bindparam, func, select

from store import schema as s
from store.derived import DERIVED, IDENTIFIER
from store.errors import PregbridgeError
from store.repository import PreparedPerson
from store.retention import last_purge, purge, purged_total

__all__ = ["MERGE_SURVIVOR", "FeedFigures", "FeedWatch", "HeldMeanwhile", "PurgeSchedule", "ReadThroughFeed",
           "Selection", "feed_figures", "held_keys"]

log = logging.getLogger("pregbridge.sync")

MERGE_SURVIVOR = "PersonIsContinuedAsValidUponMerger"
_IDENTIFIERS = DERIVED.index(IDENTIFIER)  # PreparedPerson.rows[_IDENTIFIERS]: the person_identifier rows

_HELD = select(s.person.c.person_key).where(s.person.c.person_key.in_(bindparam("keys", expanding=True)))
_HELD_NUMBERS = (select(s.person_identifier.c.number)
                 .where(s.person_identifier.c.number.in_(bindparam("numbers", expanding=True))))


class HeldMeanwhile(PregbridgeError):
    """A person whose event a page skipped was stored before the page's transaction: the page is fetched again."""


def held_keys(conn: Connection, keys: Iterable[str]) -> set[str]:
    """The person ids (``person_key``) among ``keys`` that the store holds: one query."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return set()
    return set(conn.execute(_HELD, {"keys": wanted}).scalars())


class EventLike(Protocol):
    @property
    def person_id(self) -> str: ...
    @property
    def event_type(self) -> str: ...


class PageLike(Protocol):
    """What the hooks read and narrow of upstream.sync's page."""

    seqs: dict[str, int]
    persons: list[PreparedPerson]
    settle: list[str]
    rejects: list[tuple[str, str, str]]
    missing: list[str]
    read_through: Selection | None


@dataclass
class Selection:
    """A page's persons in read-through mode: those held when it was fetched, the merge survivors fetched to
    see whether they touch a held person, and those of them that do (``adopted``: written like held ones)."""

    held: set[str]
    survivors: set[str]
    adopted: set[str] = field(default_factory=set)

    @property
    def fetch(self) -> list[str]:
        return [*sorted(self.held), *sorted(self.survivors)]

    def writes(self, person_id: str) -> bool:
        return person_id in self.held or person_id in self.adopted


def _drop(page: PageLike, ids: set[str]) -> None:
    if not ids:
        return
    gone = [p for p in page.persons if p.key in ids]
    page.persons = [p for p in page.persons if p.key not in ids]
    numbers = {r["number"] for p in gone for r in p.rows[_IDENTIFIERS]}
    page.settle = [n for n in page.settle if n not in numbers]
    page.rejects = [r for r in page.rejects if r[0] not in ids]
    page.missing = [m for m in page.missing if m not in ids]


class ReadThroughFeed:
    """The syncer's read-through hooks (module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def select(self, events: Sequence[EventLike]) -> Selection:
        """The page's held persons (one query) and the merge survivors it does not hold."""
        ids = list(dict.fromkeys(ev.person_id for ev in events))
        with self.engine.connect() as conn:
            held = held_keys(conn, ids)
        survivors = {ev.person_id for ev in events if ev.event_type == MERGE_SURVIVOR} - held
        return Selection(held, survivors)

    def narrow(self, page: PageLike) -> None:
        """After the fetch: keep the survivors that hold a number a held person holds; drop the others."""
        sel = page.read_through
        if sel is None or not sel.survivors:
            return
        numbers = {p.key: [r["number"] for r in p.rows[_IDENTIFIERS]] for p in page.persons if p.key in sel.survivors}
        wanted = sorted({n for ns in numbers.values() for n in ns})
        shared: set[str] = set()
        if wanted:
            with self.engine.connect() as conn:
                shared = set(conn.execute(_HELD_NUMBERS, {"numbers": wanted}).scalars())
        sel.adopted = {key for key, ns in numbers.items() if shared.intersection(ns)}
        _drop(page, sel.survivors - sel.adopted)

    def recheck(self, conn: Connection, page: PageLike) -> None:
        """In the page's transaction, under the write lock: drop persons deleted since the fetch; raise
        :class:`HeldMeanwhile` when a person the page skipped is held now."""
        sel = page.read_through
        if sel is None:
            return
        now = held_keys(conn, page.seqs)
        if now - sel.held - sel.adopted:
            raise HeldMeanwhile("a person of this page was stored while the page was fetched; fetched again")
        gone = sel.held - now
        sel.held -= gone
        _drop(page, gone)

    @staticmethod
    def recorded(page: PageLike, events: Sequence[Any]) -> list[Any]:
        """The events of a page that are written to ``feed_event`` (those of the persons it writes)."""
        sel = page.read_through
        return list(events) if sel is None else [ev for ev in events if sel.writes(ev.person_id)]


# -- the purge's schedule ----------------------------------------------------------------------------------


class PurgeSchedule:
    """store.retention.purge every ``interval`` seconds, counted from the last purge the store records (so a
    restarted syncer does not purge again at once). A failed purge is logged (its type only) and tried again
    at the next interval: it never stops the feed."""

    def __init__(self, engine: Engine, retention_days: int, interval: float,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.engine = engine
        self.retention_days = retention_days
        self.interval = interval
        self.clock = clock or _now
        with engine.connect() as conn:
            last = last_purge(conn)
        wait = 0.0 if last is None else max(0.0, interval - (self.clock() - last[0]).total_seconds())
        self._due = time.monotonic() + wait
        self.runs = 0

    def tick(self) -> bool:
        """Purge when due; returns whether a purge ran."""
        if time.monotonic() < self._due:
            return False
        self._due = time.monotonic() + self.interval
        try:
            purge(self.engine, self.retention_days, now=self.clock())
        except Exception as exc:  # noqa: BLE001 - the feed goes on; the next interval tries again
            log.warning("the scheduled retention purge failed (%s); tried again in %.0f s", type(exc).__name__,
                        self.interval)
            return False
        self.runs += 1
        return True


# -- staleness ---------------------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.removesuffix("Z"))
    except ValueError:
        return None


class FeedWatch:
    """Warns when the feed has failed for longer than ``stale_after`` seconds since the last successful read
    (``last_ok``: the store's ``sync.last_run`` when the syncer starts), then at most once per ``stale_after``."""

    def __init__(self, stale_after: float, last_ok: str | None) -> None:
        self.stale_after = stale_after
        self._ok = _parse(last_ok)
        self._warned: float | None = None

    def ok(self) -> None:
        self._ok = _now()
        self._warned = None

    def failed(self) -> float:
        """A failed pass: returns for how long (seconds) the feed has been failing, warning past the threshold."""
        now = _now()
        if self._ok is None:
            self._ok = now  # never read before: the failure starts the clock
        failing = (now - self._ok).total_seconds()
        if failing > self.stale_after and (self._warned is None or time.monotonic() - self._warned >= self.stale_after):
            self._warned = time.monotonic()
            log.warning("the Persontjenesten feed has been failing for %.0f s (threshold %.0f s): the store's "
                        "persons may be out of date; `pregbridge sync --status` shows the last successful read",
                        failing, self.stale_after)
        return failing


@dataclass(frozen=True, slots=True)
class FeedFigures:
    """The read-through figures of ``sync --status`` and /metrics."""

    held: int  # persons in the store
    last_ok: dt.datetime | None  # the sync's last successful read of the feed (a page applied, or caught up)
    staleness_seconds: float | None  # since then
    last_purge: dt.datetime | None
    last_purge_persons: int | None
    purged_total: int


def feed_figures(engine: Engine, last_run: str | None, *, count: bool = True) -> FeedFigures:
    """``last_run``: upstream.sync.SyncStatus.last_run. ``count``: count the held persons (a COUNT; /metrics
    has them already as pregbridge_store_persons)."""
    with engine.connect() as conn:
        held = int(conn.execute(select(func.count()).select_from(s.person)).scalar_one()) if count else -1
        purged = last_purge(conn)
        total = purged_total(conn)
    ok = _parse(last_run)
    return FeedFigures(held, ok, None if ok is None else max(0.0, (_now() - ok).total_seconds()),
                       purged[0] if purged else None, purged[1] if purged else None, total)
