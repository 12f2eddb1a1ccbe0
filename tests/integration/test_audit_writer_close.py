"""close() racing write(): every record write() accepted is committed, every other one is refused (a stress
test: the window it guards, between write()'s check of closed and its append, is a few bytecodes wide)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import text

from server.access import AuditRecord, AuditWriter
from store.engine import make_engine, migrate


def test_a_write_racing_close_is_committed_or_refused(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    migrate(engine)
    try:
        accepted = 0
        for round_ in range(20):
            writer = AuditWriter(engine, max_delay=0.001)
            counts = [0] * 4
            go = threading.Event()

            def write(k: int, writer: AuditWriter = writer, counts: list[int] = counts,
                      go: threading.Event = go) -> None:
                go.wait()
                for i in range(10_000):
                    try:
                        writer.write(AuditRecord(dt.datetime(2026, 11, 22), "a", "hl7", "QBP^Q23", None, None, "AA",
                                                 (f"{k}{i:05d}",), ()))
                    except RuntimeError:  # closed
                        return
                    counts[k] += 1

            threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            go.set()
            threading.Event().wait(0.002 * (round_ % 5))
            writer.close()
            for t in threads:
                t.join()
            accepted += sum(counts)
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT count(*) FROM audit_event")).scalar_one()
            assert stored == accepted, round_
    finally:
        engine.dispose()
