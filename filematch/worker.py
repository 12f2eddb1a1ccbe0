"""The worker loop: claim a chunk, wash it, store its answer with the chunk marked done; repeat.

Run by ``pregbridge filematch worker`` (any number of processes, on any host sharing the database) and
optionally by a background thread in each server process. The profile named by the job is turned into a
:class:`~filematch.pipeline.Release` by ``release_for`` (the server derives it from the profile), so the
stored answer is already masked.
A worker that dies leaves its chunk ``running``; another worker takes it after the lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from filematch.formats import format_named
from filematch.jobs import JobStore
from filematch.pipeline import UNMASKED, Release, wash
from store.engine import read_connection
from store.source import PersonSource

__all__ = ["Worker"]

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, jobs: JobStore, release_for: Callable[[str], Release] = lambda _profile: UNMASKED, *,
                 worker_id: str | None = None, purge_every: float = 600.0,
                 source: PersonSource | None = None) -> None:
        self.jobs = jobs
        self.source = source  # read-through mode: where numbers the store lacks come from (store/source.py)
        self.release_for = release_for
        self.worker_id = worker_id or f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.purge_every = purge_every

    def run_once(self) -> bool:
        """Wash one chunk if there is one; True if a chunk was taken."""
        claim = self.jobs.claim(self.worker_id)
        if claim is None:
            return False
        try:
            release = self.release_for(claim.profile)
            with read_connection(self.jobs.engine) as conn:
                res = wash(conn, claim.records, release, source=self.source,
                           request_id=f"{claim.job_id}/{claim.chunk_no}")
            output = format_named(claim.format).encode(res.results, claim.options)
        except Exception as exc:  # noqa: BLE001 - any failure gives the chunk back for a retry
            log.warning("filematch chunk %s/%d failed: %s", claim.job_id, claim.chunk_no, type(exc).__name__)
            self.jobs.release(claim, type(exc).__name__)
            return True
        if not self.jobs.complete(claim, output, res.counts, res.persons, refused=len(res.refused)):
            log.info("filematch chunk %s/%d: claim lost, answer discarded", claim.job_id, claim.chunk_no)
        return True

    def run(self, stop: threading.Event, *, idle_sleep: float = 1.0) -> None:
        """Wash chunks until ``stop`` is set; purge expired jobs now and then."""
        next_purge = 0.0
        import time

        while not stop.is_set():
            if time.monotonic() >= next_purge:
                try:
                    purged = self.jobs.purge()
                    if purged:
                        log.info("filematch: purged %d expired job(s)", purged)
                except Exception as exc:  # noqa: BLE001 - purging is housekeeping; never stop the worker for it
                    log.warning("filematch purge failed: %s", type(exc).__name__)
                next_purge = time.monotonic() + self.purge_every
            try:
                busy = self.run_once()
            except Exception as exc:  # noqa: BLE001 - e.g. the database is briefly unavailable
                log.warning("filematch worker: %s", type(exc).__name__)
                busy = False
            if not busy:
                stop.wait(idle_sleep)
