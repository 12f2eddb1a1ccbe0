"""Audit trail writes on SQLite: the person index in bulk (generations) against rows inserted with each batch.

A fresh SQLite store per variant is filled with ``--num`` PIX-shaped records (one number asked, two returned,
random numbers; the trail a busy face leaves), then 30,000 more are written in batches of 250 — what the
batched writer's thread does — and the process CPU time per record is measured. The variants:

- **bulk** (what pregbridge does): ``audit_event`` rows per batch, ``audit_person`` rows a generation of
  10,000 events at a time, sorted, inside SQLite (store/audit_index.py); the merges fall inside the
  measured records.
- **baseline, same run**: the same writer with the person rows inserted with each batch, as pregbridge did
  before (and still does where SQLite lacks JSON1): every number a random insert into the number index.

Both fill their store the same way (in bulk, which is quicker), so the measured part starts from the same
trail. Measured: the index by (generation, number, event) is what made rows-with-each-batch cheap (their
inserts land in the current generation's small subtree, not across the whole trail); the bulk writing
then saves a little CPU and most of the WAL volume (a generation's pages are written once, not at every
batch), which matters most for records with many numbers (a PDQ answer returns up to 50).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import OUT, Result
from server.access import AuditRecord

__all__ = ["run"]

BATCH = 250
MEASURED = 30_000


def _records(rng: random.Random, n: int) -> list[AuditRecord]:
    import datetime as dt

    now = dt.datetime(2026, 11, 22, 6)
    out: list[AuditRecord] = []
    for i in range(n):
        number = str(rng.randrange(10**10, 10**11))
        out.append(AuditRecord(now + dt.timedelta(microseconds=i), "bench-hl7", "hl7", "QBP^Q23", "127.0.0.1", None,
                               "AA", (number,), (number, str(rng.randrange(10**10, 10**11)))))
    return out


def _measure(path: Path, prefill: int, seed: int, json1: bool) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of writing MEASURED records after ``prefill`` on a fresh store at ``path``."""
    from server.access import audit
    from store import audit_index
    from store.engine import make_engine, migrate

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    rng = random.Random(seed)
    audit_index._JSON1[:] = [True]
    for k in range(0, prefill, 5_000):
        audit._insert(engine, _records(rng, min(5_000, prefill - k)))
    audit.index_persons(engine)
    records = _records(rng, MEASURED)
    audit_index._JSON1[:] = [json1]
    cpu, wall = time.process_time(), time.perf_counter()
    for k in range(0, MEASURED, BATCH):
        audit._insert(engine, records[k : k + BATCH])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    audit_index._JSON1[:] = []
    engine.dispose()
    return cpu, wall


def run(args: argparse.Namespace) -> Iterator[Result]:
    prefill = max(args.num)
    OUT.mkdir(parents=True, exist_ok=True)
    base_cpu, base_wall = _measure(OUT / "audit-immediate.sqlite", prefill, args.seed, json1=False)
    cpu, wall = _measure(OUT / "audit-bulk.sqlite", prefill, args.seed, json1=True)
    per, base_per = cpu / MEASURED * 1e6, base_cpu / MEASURED * 1e6
    yield Result(f"audit records after {prefill:,}", MEASURED, wall,
                 f"{per:.1f} µs CPU/record ({wall / MEASURED * 1e6:.1f} wall)", ratio=per / base_per,
                 baseline=f"person rows with each batch {base_per:.1f} µs CPU/record "
                          f"({base_wall / MEASURED * 1e6:.1f} wall)")
