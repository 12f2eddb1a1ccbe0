"""Change-feed ingestion: sequence-numbered events, each carrying one person's document after the event.

The rules (docs/data-formats.md, "Change feed"):

- **idempotent**: an event whose sequence number is already recorded is skipped; if its content
  differs from what was recorded (checksum), it is counted as a conflict and not applied;
- **gap detection first**: the whole file is read and checked before anything is applied: every line
  must be an event with an integer sequence number, and the new numbers must continue the last applied
  one without a gap, or the file is refused (FeedGap / FeedFormatError) and nothing changes;
- **resumable**: events are applied in batches, each batch in one transaction together with the new
  feed position, so an interrupted ingest resumes from the last committed event;
- **history kept**: a person is replaced by the document after the event, which carries the element
  history; every event is recorded in ``feed_event`` with its type and checksum;
- **nothing lost silently**: an event whose document breaks a rule is recorded as rejected, with its
  reason and raw line in ``reject``, and the feed moves on.

Ingestion takes the store's write lock for its whole run (PostgreSQL: an advisory lock), so two
ingesters never interleave.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text

from store import schema as s
from store.document import from_document
from store.errors import FeedFormatError, FeedGap, InvalidDocument
from store.loading import record_reject
from store.repository import PersonRepository
from store.state import get_feed_position, set_feed_position

__all__ = ["Event", "IngestSummary", "feed_files", "ingest", "read_events", "write_lock"]

BATCH = 500
_PG_LOCK = 0x70726567  # "preg"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    event_type: str
    person_key: str
    registered_at: str | None
    document: Any
    checksum: str
    file: str
    line: int
    raw: str


@dataclass
class IngestSummary:
    files: int = 0
    events: int = 0
    applied: int = 0
    skipped: int = 0
    conflicts: int = 0
    rejected: int = 0
    first_seq: int | None = None
    last_seq: int = 0
    seconds: float = 0.0
    reject_reasons: list[str] = field(default_factory=list)


def feed_files(path: Path) -> list[Path]:
    """A feed file, or the ``*.jsonl`` files of a feed directory in name order."""
    if path.is_dir():
        return sorted(path.glob("*.jsonl"))
    if path.is_file():
        return [path]
    raise FeedFormatError(f"no feed at {path}")


def _event(file: str, n: int, line: str) -> Event:
    where = f"{file} line {n}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FeedFormatError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise FeedFormatError(f"{where}: an event must be a JSON object")
    seq = obj.get("sequenceNumber")
    if isinstance(seq, str) and seq.isdigit():  # Persontjenesten sends it as a string
        seq = int(seq)
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise FeedFormatError(f"{where}: no valid sequenceNumber")
    event_type = obj.get("eventType")
    if not isinstance(event_type, str) or not event_type:
        event_type = "unknown"
    key = obj.get("personId")
    canonical = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return Event(seq, event_type[:80], key if isinstance(key, str) else "", obj.get("registeredAt"),
                 obj.get("person"), hashlib.sha256(canonical.encode()).hexdigest(), file, n, line.rstrip("\n"))


def read_events(files: Iterable[Path]) -> list[Event]:
    """Every event of the files, checked for format and strictly increasing sequence numbers."""
    events: list[Event] = []
    for path in files:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                if line.strip():
                    ev = _event(path.name, n, line)
                    if events and ev.seq <= events[-1].seq:
                        raise FeedFormatError(f"{path.name} line {n}: sequence number {ev.seq} does not "
                                              f"follow {events[-1].seq}")
                    events.append(ev)
    return events


def _check_gaps(events: list[Event], position: int) -> None:
    expected = position + 1
    for ev in events:
        if ev.seq <= position:
            continue
        if ev.seq != expected:
            raise FeedGap(f"{ev.file} line {ev.line}: expected sequence number {expected}, found {ev.seq}; "
                          "nothing was applied", expected=expected, found=ev.seq)
        expected += 1


def write_lock(conn: Connection) -> None:
    """Serialise ingesters: an advisory lock on PostgreSQL (SQLite: the BEGIN IMMEDIATE write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})


def _registered(ev: Event) -> dt.datetime | None:
    if not isinstance(ev.registered_at, str):
        return None
    try:
        t = dt.datetime.fromisoformat(ev.registered_at)
    except ValueError:
        return None
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def _apply(conn: Connection, ev: Event, summary: IngestSummary, now: dt.datetime) -> None:
    outcome = "applied"
    try:
        person = from_document(ev.document)
        if ev.person_key and person.person_key != ev.person_key:
            raise InvalidDocument("the event's personId differs from its document's", field="personId")
    except InvalidDocument as exc:
        outcome = "rejected"
        reason = str(exc)
        record_reject(conn, origin="ingest", file=ev.file, line=ev.line, seq=ev.seq, key=ev.person_key or None,
                      reason=reason, raw=ev.raw)
        summary.rejected += 1
        summary.reject_reasons.append(f"seq {ev.seq} ({ev.file} line {ev.line}): {reason}")
    else:
        PersonRepository(conn).save(person, seq=ev.seq, now=now)
        summary.applied += 1
    conn.execute(insert(s.feed_event).values(seq=ev.seq, person_key=ev.person_key or "", event_type=ev.event_type,
                                             registered_at=_registered(ev), applied_at=now,
                                             checksum=ev.checksum, outcome=outcome))


def ingest(engine: Engine, path: Path, *, progress: Callable[[int], None] | None = None) -> IngestSummary:
    """Apply a feed file or directory; raises FeedGap/FeedFormatError before applying anything."""
    started = time.perf_counter()
    files = feed_files(path)
    events = read_events(files)
    summary = IngestSummary(files=len(files), events=len(events))
    with engine.connect() as conn:
        position = get_feed_position(conn)
    _check_gaps(events, position)
    old = [ev for ev in events if ev.seq <= position]
    new = [ev for ev in events if ev.seq > position]
    with engine.connect() as conn:
        recorded: dict[int, str] = {}
        seqs = [ev.seq for ev in old]
        for i in range(0, len(seqs), 500):
            recorded.update((r[0], r[1]) for r in conn.execute(select(s.feed_event.c.seq, s.feed_event.c.checksum)
                                         .where(s.feed_event.c.seq.in_(seqs[i : i + 500]))).all())
    for ev in old:
        if ev.seq in recorded and recorded[ev.seq] != ev.checksum:
            summary.conflicts += 1
        else:
            summary.skipped += 1
    if progress and old:
        progress(len(old))
    for i in range(0, len(new), BATCH):
        chunk = new[i : i + BATCH]
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                write_lock(conn)
                at = get_feed_position(conn)
                if at != chunk[0].seq - 1:  # another ingester moved the feed meanwhile
                    raise FeedGap("the feed position changed during ingestion; nothing more was applied",
                                  expected=at + 1, found=chunk[0].seq)
                for ev in chunk:
                    _apply(conn, ev, summary, now)
                set_feed_position(conn, chunk[-1].seq)
        if progress:
            progress(len(chunk))
    if events:
        summary.first_seq = events[0].seq
    with engine.connect() as conn:
        summary.last_seq = get_feed_position(conn)
    summary.seconds = time.perf_counter() - started
    return summary
