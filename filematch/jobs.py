"""Durable, resumable Filematch jobs: a submitted file becomes a job row and chunk rows in the store.

Why in the store (not a data directory): any number of worker processes, on any host, share jobs
through the database alone, and a chunk's answer is committed in the *same transaction*
that marks the chunk done, so a worker killed at any instant loses at most the chunk it was washing,
which is then washed again — every input record is answered exactly once. Inputs and outputs are
kept zlib-compressed at level 1 (a 1M-record CSV is ~40 MB of chunk input; level 6 saved 15 % and cost
5 s of the split, measured).

Lifecycle: ``receiving`` (the file is being split; invisible to workers) → ``queued`` → ``running``
(a chunk has been claimed) → ``done`` | ``failed`` (a chunk failed ``max_attempts`` times) |
``cancelled``. Chunks: ``pending`` → ``running`` (claimed: ``locked_by``, ``locked_at``,
``attempts`` + 1) → ``done`` (output stored) | ``failed`` | ``cancelled``.

Claiming: on PostgreSQL ``SELECT … FOR UPDATE SKIP LOCKED`` (workers never wait on each other); on
SQLite inside ``BEGIN IMMEDIATE`` (the one write lock serialises claimers). The claim is committed at
once and the chunk is washed outside any write transaction; a claim whose worker died is taken again
once ``lease_seconds`` have passed. Completion updates the chunk only ``WHERE status = 'running' AND
locked_by = <me>``, so a worker whose lease was taken over (or whose job was cancelled) cannot
write a second answer.

Retention: a job and its chunks are deleted by :meth:`JobStore.purge` once ``expires_at`` (created +
``retention``) has passed; a job left ``receiving`` by a crashed submitter after ``receiving_timeout``.
Broken lines: a line the format refuses (filematch.formats: unbalanced quote, field over ``max_field``,
wrong number of fields, …) is a record answered ``INVALID`` like the others, so a job's ``records`` is
every record of the file; how many were refused and the first reasons (line and column, no content) are
kept with the job's options under ``reading`` when it is submitted, shown by its status (``refused``) and
its report, and each chunk's counts carry its own ``refused`` so the report's counts add up as it runs.

Audit: filematch cannot import the server's audit writer, so the server passes an ``audit`` callback;
it gets a :class:`JobEvent` for submit, wash (on completion, with every number returned), fetch and
cancel. Events carry counts and numbers, never names or addresses.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from filematch.formats import TextOptions, format_named
from filematch.formats.text import MAX_FIELD
from filematch.local import chunked
from filematch.records import Code, FileFormatError, InputRecord
from filematch.report import MAX_PROBLEMS, REFUSED, Report
from store import schema as s
from store.engine import read_connection

__all__ = ["Auditor", "Claim", "JobEvent", "JobInfo", "JobSettings", "JobStore", "JobStateError"]

_j, _c = s.filematch_job, s.filematch_chunk
ACTIVE = ("queued", "running")
_COMMIT_EVERY = 16  # chunks per transaction while a file is split


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class JobSettings:
    chunk_size: int = 1000
    retention: dt.timedelta = dt.timedelta(days=7)
    lease_seconds: float = 300.0
    max_attempts: int = 3
    receiving_timeout: dt.timedelta = dt.timedelta(hours=1)
    max_field: int = MAX_FIELD  # characters in one field of a submitted file (a longer one refuses its line)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """What the audit trail records of a job operation (the server maps it to an AuditRecord)."""

    job_id: str
    account: str | None
    operation: str  # filematch.submit | filematch.wash | filematch.fetch | filematch.cancel
    outcome: str
    records: int
    numbers: tuple[str, ...] = ()


Auditor = Callable[[JobEvent], None]


class JobStateError(Exception):
    """The job is not in a state that allows the operation (e.g. fetching a job that is not done)."""


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: str
    account: str | None
    profile: str
    status: str
    format: str
    options: dict[str, Any]
    records: int
    chunks: int
    done_chunks: int
    done_records: int
    counts: dict[str, int] | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime

    @property
    def refused(self) -> int:
        """How many of ``records`` are broken lines, refused unread (answered INVALID), from the submit."""
        return int(dict(self.options.get("reading") or {}).get("refused", 0))

    @property
    def problems(self) -> list[str]:
        return [str(p) for p in dict(self.options.get("reading") or {}).get("problems", [])]

    @property
    def progress(self) -> float:
        return self.done_records / self.records if self.records else (1.0 if self.status == "done" else 0.0)

    def to_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat(timespec="seconds") + "Z" if t else None

        return {"job": self.id, "status": self.status, "format": self.format, "profile": self.profile,
                "records": self.records, "doneRecords": self.done_records, "chunks": self.chunks,
                "doneChunks": self.done_chunks, "refused": self.refused, "progress": round(self.progress, 4),
                "error": self.error,
                "created": iso(self.created_at), "started": iso(self.started_at), "finished": iso(self.finished_at),
                "expires": iso(self.expires_at)}


@dataclass(frozen=True, slots=True)
class Claim:
    job_id: str
    chunk_no: int
    worker_id: str
    profile: str
    format: str
    options: TextOptions
    records: list[InputRecord] = field(repr=False)


def _pack(obj: Any) -> bytes:
    return zlib.compress(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(), 1)


def _unpack(data: bytes) -> Any:
    return json.loads(zlib.decompress(data))


def _info(row: Any) -> JobInfo:
    return JobInfo(row.id, row.account, row.profile, row.status, row.format, dict(row.options or {}), row.records,
                   row.chunks, row.done_chunks, row.done_records, row.counts, row.error, row.created_at,
                   row.started_at, row.finished_at, row.expires_at)


class JobStore:
    """Jobs and chunks on one engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, settings: JobSettings = JobSettings(), *, audit: Auditor | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine = engine
        self.settings = settings
        self.audit = audit
        self.clock = clock
        self._pg = engine.dialect.name == "postgresql"

    # -- transactions ------------------------------------------------------------------------------

    def _write(self) -> Connection:
        """A connection whose transaction takes SQLite's write lock at BEGIN (no lock upgrade deadlocks)."""
        return self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")

    def _emit(self, event: JobEvent) -> None:
        if self.audit is not None:
            self.audit(event)

    # -- submit --------------------------------------------------------------------------------------

    def submit(self, path: Path, format_name: str, *, account: str | None, profile: str,
               encoding: str | None = None) -> JobInfo:
        """Split a file into a queued job (FileFormatError, with nothing kept, if the file cannot be read)."""
        fmt = format_named(format_name)
        options = replace(fmt.detect(path, encoding), max_field=self.settings.max_field)
        job_id = uuid.uuid4().hex
        now = self.clock()
        records = chunks = 0
        created = False
        problems: list[str]
        try:
            batch: list[dict[str, Any]] = []
            refused, problems = 0, []  # broken lines (records with an error) and the first reasons
            for chunk in chunked(fmt.read(path, options), self.settings.chunk_size):
                if errors := [r.error for r in chunk if r.error]:
                    refused += len(errors)
                    problems.extend(errors[: MAX_PROBLEMS - len(problems)])
                if not created:
                    with self._write() as conn, conn.begin():
                        conn.execute(insert(_j).values(
                            id=job_id, account=account, profile=profile, status="receiving", format=fmt.name,
                            options=options.to_json(), records=0, chunks=0, done_chunks=0, done_records=0,
                            created_at=now, expires_at=now + self.settings.retention))
                    created = True
                batch.append({"job_id": job_id, "chunk_no": chunks, "first_record": chunk[0].seq,
                              "last_record": chunk[-1].seq, "status": "pending",
                              "input": _pack([r.to_list() for r in chunk]), "attempts": 0})
                chunks += 1
                records += len(chunk)
                if len(batch) >= _COMMIT_EVERY:
                    self._insert_chunks(batch)
                    batch = []
            if batch:
                self._insert_chunks(batch)
            if records == 0:
                raise FileFormatError("the file has no records")
            with self._write() as conn, conn.begin():
                reading = {"refused": refused, "problems": problems}
                conn.execute(update(_j).where(_j.c.id == job_id).values(status="queued", records=records,
                                                                          chunks=chunks,
                                                                          options={**options.to_json(),
                                                                                   "reading": reading}))
        except BaseException:
            if created:
                self._delete(job_id)
            raise
        self._emit(JobEvent(job_id, account, "filematch.submit", "ok", records))
        info = self.get(job_id)
        assert info is not None
        return info

    def _insert_chunks(self, rows: list[dict[str, Any]]) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(insert(_c), rows)

    def _delete(self, job_id: str) -> None:
        with self._write() as conn, conn.begin():
            conn.execute(delete(_c).where(_c.c.job_id == job_id))
            conn.execute(delete(_j).where(_j.c.id == job_id))

    # -- read ----------------------------------------------------------------------------------------

    def get(self, job_id: str, account: str | None = None, *, any_account: bool = True) -> JobInfo | None:
        """The job, or None; with ``any_account=False`` only the account's own job."""
        with read_connection(self.engine) as conn:
            row = conn.execute(select(_j).where(_j.c.id == job_id)).first()
        if row is None or (not any_account and row.account != account):
            return None
        return _info(row)

    def report(self, job_id: str) -> Report:
        info = self.get(job_id)
        if info is None:
            raise KeyError(job_id)
        rep = Report(job=info.id, status=info.status, problems=info.problems)
        with read_connection(self.engine) as conn:
            for (counts,) in conn.execute(select(_c.c.counts).where(_c.c.job_id == job_id, _c.c.status == "done")):
                rep.add(counts or {})
        if info.started_at:
            rep.started = info.started_at.isoformat(timespec="seconds") + "Z"
            end = info.finished_at or self.clock()
            rep.seconds = (end - info.started_at).total_seconds()
        if info.finished_at:
            rep.finished = info.finished_at.isoformat(timespec="seconds") + "Z"
        return rep

    def result(self, job_id: str, *, account: str | None = None) -> Iterator[bytes]:
        """The answer file of a done job, streamed chunk by chunk (JobStateError unless done)."""
        info = self.get(job_id)
        if info is None:
            raise KeyError(job_id)
        if info.status != "done":
            raise JobStateError(f"the job is {info.status}, not done")
        fmt = format_named(info.format)
        options = TextOptions.from_json(info.options)
        self._emit(JobEvent(job_id, account, "filematch.fetch", "ok", info.records))
        return self._stream(job_id, info, fmt.header(options), fmt.footer(options))

    def _stream(self, job_id: str, info: JobInfo, header: bytes, footer: bytes) -> Iterator[bytes]:
        yield header
        last, expected = -1, 1
        while True:
            with read_connection(self.engine) as conn:
                rows = conn.execute(select(_c.c.chunk_no, _c.c.first_record, _c.c.last_record, _c.c.output)
                                    .where(_c.c.job_id == job_id, _c.c.chunk_no > last)
                                    .order_by(_c.c.chunk_no).limit(16)).all()
            if not rows:
                break
            for r in rows:
                if r.first_record != expected or r.output is None:  # never serve a gap or a hole
                    raise JobStateError("the job's stored result is incomplete")
                expected = r.last_record + 1
                yield zlib.decompress(r.output)
                last = r.chunk_no
        if expected != info.records + 1:
            raise JobStateError("the job's stored result is incomplete")
        yield footer

    # -- cancel and purge ----------------------------------------------------------------------------

    def cancel(self, job_id: str, *, account: str | None = None) -> JobInfo:
        """Cancel a queued or running job (JobStateError for a finished one); chunks in flight are discarded."""
        now = self.clock()
        with self._write() as conn, conn.begin():
            n = conn.execute(update(_j).where(_j.c.id == job_id, _j.c.status.in_(ACTIVE))
                             .values(status="cancelled", finished_at=now)).rowcount
            if n:
                conn.execute(update(_c).where(_c.c.job_id == job_id, _c.c.status.in_(("pending", "running")))
                             .values(status="cancelled"))
        info = self.get(job_id)
        if info is None:
            raise KeyError(job_id)
        if not n:
            raise JobStateError(f"the job is {info.status} and cannot be cancelled")
        self._emit(JobEvent(job_id, account, "filematch.cancel", "ok", info.records))
        return info

    def delete(self, job_id: str, *, account: str | None = None) -> JobInfo:
        """Delete a finished (done, failed or cancelled) job with its input and answer before its retention
        ends — the owner has fetched it and wants the patient data gone. JobStateError for an active job."""
        info = self.get(job_id)
        if info is None:
            raise KeyError(job_id)
        with self._write() as conn, conn.begin():
            n = conn.execute(delete(_j).where(_j.c.id == job_id,
                                              _j.c.status.in_(("done", "failed", "cancelled")))).rowcount
            if n:
                conn.execute(delete(_c).where(_c.c.job_id == job_id))
        if not n:
            raise JobStateError(f"the job is {info.status}: cancel it first")
        self._emit(JobEvent(job_id, account, "filematch.delete", "ok", info.records))
        return info

    def purge(self) -> int:
        """Delete expired jobs (and jobs stuck in ``receiving``) with their chunks; the number of jobs deleted."""
        now = self.clock()
        stuck = now - self.settings.receiving_timeout
        with self._write() as conn, conn.begin():
            ids = [r[0] for r in conn.execute(select(_j.c.id).where(or_(
                _j.c.expires_at < now, and_(_j.c.status == "receiving", _j.c.created_at < stuck))))]
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                conn.execute(delete(_c).where(_c.c.job_id.in_(part)))
                conn.execute(delete(_j).where(_j.c.id.in_(part)))
        return len(ids)

    # -- workers -------------------------------------------------------------------------------------

    def claim(self, worker_id: str) -> Claim | None:
        """Take the next chunk to wash (pending, or running with an expired lease), or None."""
        now = self.clock()
        stale = now - dt.timedelta(seconds=self.settings.lease_seconds)
        q = (select(_c.c.job_id, _c.c.chunk_no, _c.c.attempts, _c.c.input, _j.c.format, _j.c.options, _j.c.profile)
             .join(_j, _j.c.id == _c.c.job_id)
             .where(_j.c.status.in_(ACTIVE),
                    or_(_c.c.status == "pending", and_(_c.c.status == "running", _c.c.locked_at < stale)))
             .order_by(_j.c.created_at, _c.c.job_id, _c.c.chunk_no).limit(1))
        probe = q.with_only_columns(_c.c.chunk_no)
        if self._pg:
            q = q.with_for_update(skip_locked=True, of=_c)
        while True:
            # An idle worker polls: look for work without the write lock, so that polling never holds up
            # (or, on SQLite, collides with) the store's writers; take the lock only when there is work.
            with read_connection(self.engine) as conn:
                if conn.execute(probe).first() is None:
                    return None
            failed_job: str | None = None
            with self._write() as conn, conn.begin():
                row = conn.execute(q).first()
                if row is None:
                    return None
                where = and_(_c.c.job_id == row.job_id, _c.c.chunk_no == row.chunk_no)
                if row.attempts >= self.settings.max_attempts:
                    error = f"chunk {row.chunk_no} failed {row.attempts} times"
                    conn.execute(update(_c).where(where).values(status="failed", locked_by=None))
                    conn.execute(update(_j).where(_j.c.id == row.job_id, _j.c.status.in_(ACTIVE))
                                 .values(status="failed", error=error, finished_at=now))
                    failed_job = row.job_id
                else:
                    conn.execute(update(_c).where(where).values(status="running", locked_by=worker_id[:80],
                                                                locked_at=now, attempts=row.attempts + 1))
                    conn.execute(update(_j).where(_j.c.id == row.job_id, _j.c.status == "queued")
                                 .values(status="running", started_at=now))
                    records = [InputRecord.from_list(v) for v in _unpack(row.input)]
                    return Claim(row.job_id, row.chunk_no, worker_id[:80], row.profile, row.format,
                                 TextOptions.from_json(row.options), records)
            if failed_job is not None:
                self._emit(JobEvent(failed_job, None, "filematch.wash", "failed", 0))

    def complete(self, claim: Claim, output: bytes, counts: Counter[str], persons: list[str], *,
                 refused: int = 0) -> bool:
        """Store a chunk's answer and mark it done, atomically; False if the claim was lost (lease taken
        over, job cancelled) and the answer discarded. ``refused``: how many of its INVALID records are
        broken lines (kept in its counts as ``refused``, for the report)."""
        if refused:
            counts = Counter({**counts, REFUSED: refused})
        now = self.clock()
        finished: JobInfo | None = None
        with self._write() as conn, conn.begin():
            n = conn.execute(update(_c).where(_c.c.job_id == claim.job_id, _c.c.chunk_no == claim.chunk_no,
                                              _c.c.status == "running", _c.c.locked_by == claim.worker_id)
                             .values(status="done", output=zlib.compress(output, 1), counts=dict(counts),
                                     persons=" ".join(persons), error=None, locked_at=now)).rowcount
            if n != 1:  # nothing was written: the empty transaction commits harmlessly
                return False
            conn.execute(update(_j).where(_j.c.id == claim.job_id)
                         .values(done_chunks=_j.c.done_chunks + 1, done_records=_j.c.done_records + len(claim.records)))
            job = conn.execute(select(_j).where(_j.c.id == claim.job_id)).one()
            if job.done_chunks == job.chunks and job.status == "running":
                total: Counter[str] = Counter({c.value: 0 for c in Code})
                for (cc,) in conn.execute(select(_c.c.counts).where(_c.c.job_id == claim.job_id)):
                    total.update(cc or {})
                conn.execute(update(_j).where(_j.c.id == claim.job_id, _j.c.status == "running")
                             .values(status="done", finished_at=now, counts=dict(total)))
                finished = _info(job)
        if finished is not None:
            self._emit(JobEvent(finished.id, finished.account, "filematch.wash", "ok", finished.records,
                                tuple(self._persons(finished.id))))
        return True

    def release(self, claim: Claim, error: str) -> None:
        """Give a chunk back after a failure in washing it (it is retried until ``max_attempts``)."""
        with self._write() as conn, conn.begin():
            conn.execute(update(_c).where(_c.c.job_id == claim.job_id, _c.c.chunk_no == claim.chunk_no,
                                          _c.c.status == "running", _c.c.locked_by == claim.worker_id)
                         .values(status="pending", locked_by=None, error=error[:400]))

    def _persons(self, job_id: str) -> Iterator[str]:
        with read_connection(self.engine) as conn:
            for (text,) in conn.execute(select(_c.c.persons).where(_c.c.job_id == job_id).order_by(_c.c.chunk_no)):
                yield from (text or "").split()

    def chunk_states(self, job_id: str) -> dict[str, int]:
        """How many chunks of the job are in each state (for tests and operators)."""
        with read_connection(self.engine) as conn:
            rows = conn.execute(select(_c.c.status, func.count()).where(_c.c.job_id == job_id)
                                .group_by(_c.c.status)).all()
        return {r[0]: int(r[1]) for r in rows}
