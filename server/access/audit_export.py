"""Archiving the audit trail: ``pregbridge audit export`` to a file, and ``audit purge`` of what was exported.

The application never deletes audit records by itself. An operator who must keep the trail for a time
(the site's retention rule) but not the store's copy of it forever exports, keeps the file, and purges:

- :func:`export_audit` writes every event with ``at`` before ``until`` (UTC) to a gzip-compressed JSON
  Lines file (one event per line: ``id``, ``at`` in ISO 8601 with ``Z``, ``account``, ``face``,
  ``operation``, ``source``, ``purpose``, ``outcome``, ``asked``, ``returned``), in id order, and records
  the export in ``audit_export``: its ``until``, first and last id, record count, the file's path and
  its SHA-256. The file is written beside its final name and renamed once complete and synced, so a
  stopped export leaves no half file under the name; an existing file is never overwritten.
  ``until`` must be at least :data:`SETTLE` in the past: a record is stamped when the call is answered
  and reaches the store within the audit writer's delay (50 ms), so a record stamped before ``until`` is
  in the store by the time the export reads it.
- :func:`purge_audit` deletes the events before ``until`` and their person-index rows, only when an
  export covers them: it needs an export whose ``until`` is at or after the purge's, and refuses
  (:class:`NotExported`) when any event before ``until`` has an id past that export's last id (it came
  after the export). The newest event is never deleted (the SQLite writer numbers new events after it,
  server/access/audit.py). Deletion goes in slices of :data:`SLICE` events, each its own transaction;
  a slice's ``audit_person`` rows are found through their generations (store/audit_index.py), so the
  person index is never scanned whole.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Engine, and_, delete, func, insert, select, update

from store import schema as s
from store.audit_index import generation_of
from store.engine import read_connection
from store.errors import InvalidInput, PregbridgeError

__all__ = ["SETTLE", "SLICE", "ExportSummary", "NotExported", "PurgeSummary", "export_audit", "exports",
           "purge_audit"]

SETTLE = dt.timedelta(minutes=10)
SLICE = 10_000


class NotExported(PregbridgeError):
    """A purge would delete audit records that no export wrote to a file."""


@dataclass(frozen=True, slots=True)
class ExportSummary:
    file: Path
    until: dt.datetime
    records: int
    first_id: int | None
    last_id: int | None
    sha256: str


@dataclass(frozen=True, slots=True)
class PurgeSummary:
    until: dt.datetime
    records: int
    export_file: str


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def _line(r: object) -> bytes:
    at: dt.datetime = r.at  # type: ignore[attr-defined]
    doc = {"id": r.id, "at": at.isoformat(timespec="microseconds") + "Z",  # type: ignore[attr-defined]
           **{k: getattr(r, k) for k in ("account", "face", "operation", "source", "purpose", "outcome")},
           "asked": list(r.asked or ()), "returned": list(r.returned or ())}  # type: ignore[attr-defined]
    return orjson.dumps(doc) + b"\n"


def export_audit(engine: Engine, until: dt.datetime, path: Path, *, now: dt.datetime | None = None) -> ExportSummary:
    """Write the events before ``until`` to ``path`` (gzip JSON Lines) and record the export (module docstring)."""
    until = _utc(until)
    if until > (now or _utcnow()) - SETTLE:
        raise InvalidInput(f"--until must be at least {int(SETTLE.total_seconds() // 60)} minutes in the past "
                           "(records still on their way to the store would be left out)")
    if path.exists():
        raise InvalidInput(f"{path} exists; an export never overwrites a file")
    e = s.audit_event
    partial = path.with_name(path.name + ".partial")
    digest = hashlib.sha256()
    records, first, last = 0, None, None
    try:
        with partial.open("wb") as raw:
            with gzip.GzipFile(fileobj=_Hashing(raw, digest), mode="wb", mtime=0) as sink:
                after = 0
                with read_connection(engine) as conn:
                    while True:  # keyset pages: a long trail is never held in memory or one cursor
                        rows = conn.execute(select(e).where(and_(e.c.at < until, e.c.id > after))
                                            .order_by(e.c.id).limit(SLICE)).all()
                        if not rows:
                            break
                        sink.write(b"".join(_line(r) for r in rows))
                        records += len(rows)
                        first = rows[0].id if first is None else first
                        last = after = rows[-1].id
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    with engine.begin() as conn:
        conn.execute(insert(s.audit_export).values(
            exported_at=_utcnow(), until=until, first_id=first, last_id=last, records=records,
            file=str(path.resolve())[:1000], sha256=digest.hexdigest()))
    return ExportSummary(path, until, records, first, last, digest.hexdigest())


class _Hashing:
    """A write-only file object that hashes what passes through it (the compressed bytes, as stored)."""

    def __init__(self, raw: object, digest: hashlib._Hash) -> None:
        self.raw = raw
        self.digest = digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)  # type: ignore[attr-defined, no-any-return]

    def flush(self) -> None:
        self.raw.flush()  # type: ignore[attr-defined]


def exports(engine: Engine) -> list[dict[str, object]]:
    """Every export recorded, oldest first (``audit export --list``)."""
    x = s.audit_export
    with read_connection(engine) as conn:
        rows = conn.execute(select(x).order_by(x.c.id)).mappings().all()
    return [dict(r) for r in rows]


def purge_audit(engine: Engine, until: dt.datetime) -> PurgeSummary:
    """Delete the events before ``until`` that an export wrote (module docstring); refuse anything else."""
    until = _utc(until)
    e, x, p = s.audit_event, s.audit_export, s.audit_person
    with read_connection(engine) as conn:
        export = conn.execute(select(x).where(and_(x.c.until >= until, x.c.last_id.is_not(None)))
                              .order_by(x.c.last_id.desc()).limit(1)).first()
        if export is None:
            never = conn.execute(select(func.count()).select_from(e).where(e.c.at < until)).scalar_one()
            if never:
                raise NotExported(f"no export covers the records before {until:%Y-%m-%d %H:%M:%S}; run "
                                  f"pregbridge audit export --until {until:%Y-%m-%dT%H:%M:%S} first")
            return PurgeSummary(until, 0, "")
        late = conn.execute(select(func.count()).select_from(e)
                            .where(and_(e.c.at < until, e.c.id > export.last_id))).scalar_one()
        if late:
            raise NotExported(f"{late} record(s) before {until:%Y-%m-%d %H:%M:%S} reached the store after the last "
                              "export; run pregbridge audit export again first")
        newest = conn.execute(select(func.max(e.c.id))).scalar() or 0
        oldest = conn.execute(select(func.min(e.c.id)).where(e.c.at < until)).scalar() or 1
    top = min(int(export.last_id), int(newest) - 1)  # never the newest event
    deleted, low = 0, int(oldest) - 1
    while low < top:
        high = min(low + SLICE, top)
        with engine.begin() as conn:
            ids = select(e.c.id).where(and_(e.c.id > low, e.c.id <= high, e.c.at < until))
            gens = list(range(generation_of(low + 1), generation_of(high) + 1))  # the index leads with gen
            conn.execute(delete(p).where(and_(p.c.gen.in_(gens), p.c.audit_id.in_(ids))))
            deleted += conn.execute(delete(e).where(and_(e.c.id > low, e.c.id <= high, e.c.at < until))).rowcount
        low = high
    with engine.begin() as conn:
        conn.execute(update(x).where(x.c.id == export.id).values(
            purged_at=_utcnow(), purged_until=until, purged_records=(export.purged_records or 0) + deleted))
    return PurgeSummary(until, deleted, export.file)
