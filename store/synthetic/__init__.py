"""Synthetic demo population: persons, change feed and register files (docs/data-formats.md,
docs/registers.md), deterministic from a seed.

``generate_population`` streams ``persons.jsonl`` to disk household by household and keeps only what
the registers (residents per kommune, a sample of adults who can be health personnel) and the change
feed (a pool of whole households) need. One ``random.Random(seed)`` derives four sub-generators, for
the persons, the feed pool, the feed and the registers, so the persons do not change with ``feed_days``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from store.synthetic.feed import FeedWriter, events_per_day
from store.synthetic.krk import write_krk
from store.synthetic.numbers import NumberBook
from store.synthetic.places import Places
from store.synthetic.population import Builder, Candidate, Household, in_store_order
from store.synthetic.registers import RegisterCounts, Residents, write_registers

__all__ = ["FORMAT", "Manifest", "RegisterCounts", "generate_population"]

FORMAT = "pregbridge-population/1"
_CHUNK = 2_000  # documents per write
# The feed pool (whole households kept in memory for the change feed, ~6.5 kB a person) holds about this many
# persons at most: ~8 per feed event up to ~450,000 persons, fewer above, so memory stays bounded at national
# size (a 25,000-person pool still gives 5.6 million persons' 5,600 events a day, 7 days running).
_POOL_PERSONS = 25_000


@dataclass(frozen=True, slots=True)
class Manifest:
    """The content of ``manifest.json``."""

    seed: int
    persons: int
    snapshot_date: date
    feed_days: int
    feed_events: int
    feed_files: tuple[str, ...]
    snapshot_sequence: int = 0
    format: str = FORMAT
    persons_file: str = "persons.jsonl"
    hpr_file: str = "hpr.jsonl"
    ar_file: str = "ar.jsonl"
    flr_file: str = "flr.jsonl"
    krk_file: str = "krk.csv"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format, "seed": self.seed, "persons": self.persons,
            "snapshotSequence": self.snapshot_sequence, "snapshotDate": self.snapshot_date.isoformat(),
            "feedDays": self.feed_days, "feedEvents": self.feed_events,
            "files": {"persons": self.persons_file, "hpr": self.hpr_file, "ar": self.ar_file,
                      "flr": self.flr_file, "krk": self.krk_file, "feed": list(self.feed_files)},
        }


def _dumps(doc: Any) -> str:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


def generate_population(out_dir: Path, persons: int, seed: int, *, feed_days: int = 7,
                        snapshot_date: date = date(2026, 11, 20),
                        progress: Callable[[int], None] | None = None) -> Manifest:
    """Write a population directory (manifest, persons, registers, feed) for ``persons`` persons.

    ``progress`` is called with the number of person documents written so far (every few thousand, and
    once at the end). Returns the manifest, which is also written to ``out_dir/manifest.json``.
    """
    if persons < 1:
        raise ValueError("persons must be at least 1")
    if feed_days < 0:
        raise ValueError("feed_days must not be negative")
    out_dir = Path(out_dir)
    (out_dir / "feed").mkdir(parents=True, exist_ok=True)
    master = random.Random(seed)
    people_rng, pool_rng, feed_rng, register_rng = (random.Random(master.getrandbits(64)) for _ in range(4))
    krk_rng = random.Random(master.getrandbits(64))  # drawn after the four, so they do not change
    places = Places()
    book = NumberBook()
    builder = Builder(people_rng, places, snapshot_date, book)
    per_day = events_per_day(persons)
    p_pool = min(1.0, max(0.02, 8 * per_day * feed_days / persons), _POOL_PERSONS / persons)
    residents: dict[str, Residents] = {}
    candidates: dict[str, list[Candidate]] = {}
    pool: list[Household] = []
    written = 0
    with open(out_dir / "persons.jsonl", "w", encoding="utf-8", newline="\n") as out:
        buf: list[str] = []
        for h in builder.households(persons):
            buf.extend(_dumps(in_store_order(doc)) for doc in h.docs)
            if h.kommune is not None:
                here = residents.get(h.kommune)
                if here is None:
                    here = residents[h.kommune] = Residents()
                for number, since in h.residents:
                    here.add(number, since)
                cands = candidates.setdefault(h.kommune, [])
                for c in h.candidates:
                    if len(cands) < 6 + len(here) // 40:
                        cands.append(c)
            if pool_rng.random() < p_pool:
                pool.append(h)
            if len(buf) >= _CHUNK:
                out.write("\n".join(buf) + "\n")
                written += len(buf)
                buf.clear()
                if progress is not None:
                    progress(written)
        if buf:
            out.write("\n".join(buf) + "\n")
            written += len(buf)
    if progress is not None:
        progress(written)
    write_registers(out_dir, register_rng, snapshot_date, places, residents, candidates)
    write_krk(out_dir, krk_rng)
    del residents, candidates
    feed_builder = Builder(feed_rng, places, snapshot_date, book)
    feed_builder.next_id = persons + 1
    writer = FeedWriter(feed_rng, feed_builder, pool, 1, per_day)
    files: list[str] = []
    for d in range(1, feed_days + 1):
        name = f"feed/{d:04d}.jsonl"
        lines = list(writer.day((snapshot_date + timedelta(days=d)).toordinal()))
        with open(out_dir / name, "w", encoding="utf-8", newline="\n") as f:
            f.write("".join(line + "\n" for line in lines))
        files.append(name)
    manifest = Manifest(seed, persons, snapshot_date, feed_days, writer.seq - 1, tuple(files))
    text = json.dumps(manifest.to_json(), ensure_ascii=False, indent=2) + "\n"
    (out_dir / "manifest.json").write_text(text, encoding="utf-8")
    return manifest
