"""Filematch benchmark: washing records that carry numbers, and identification by demographics.

For each ``--num`` size (the store ``benchmarks/out/store-<n>.sqlite`` and its population
``pop-<n>-<seed>/persons.jsonl`` must exist: run the store suite first; or a population made elsewhere,
``PREGBRIDGE_BENCH_POPULATION=DIR`` with its store named by ``--dburl`` — both only read, e.g.
``PREGBRIDGE_BENCH_POPULATION=/data/1000k python -m benchmarks filematch --num 1000000
--dburl sqlite:////data/store-1000k.sqlite``; the input draws are cached under benchmarks/out/ by size,
draw and seed, so the same draw is reused between runs):

1. an input CSV of ``--draw`` records (default: n, at most 1,000,000) is derived from persons drawn at
   random from the whole population, in random order, as a client's register would be — not the first n by
   id, which wash faster (``filematch.testdata.numbered_records``: 90 % current numbers, 4 % a ceased number
   where the person has one (else current), 3 % mistyped numbers whose check digits fail — those are
   identified by demographics — the rest current; cached under benchmarks/out/ by size, draw and seed:
   delete ``filematch-in-*.csv`` after changing the generator);
2. **baseline**: the same file read and written with the ``csv`` module (reader → writer), in this run;
3. **wash**: ``filematch.local.wash_file`` on that file in a *subprocess* (so that its peak RSS is its
   own, from ``resource.getrusage``), with ``PROCESSES`` worker processes (one per core, at most 2: the
   reader/writer process and the workers share the machine), once on the first 100k records (a random draw
   too) and once on the whole draw — peak RSS (the largest of the main process and any one worker, both
   printed) must be ≤ 300 MB and flat (the two within 1.25×); ratio to the baseline (target ≤ 4);
4. **identify**: a labelled noisy file of ``--queries`` records without numbers
   (``filematch.testdata.noisy_records``), washed in one process: records/s, precision and recall.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import OUT, Result, warm_sqlite

__all__ = ["run"]

PROCESSES = min(2, os.cpu_count() or 1)
HEADER = ["ref", "number", "given", "family", "birth", "gender", "street", "postnummer", "poststed"]


def _write(path: Path, records: Iterator[object]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(HEADER)
        for r in records:
            w.writerow([getattr(r, k) for k in HEADER])
    tmp.rename(path)


def _input(n: int, seed: int, persons: Path, draw: int) -> Path:
    """``draw`` records of persons drawn at random from the ``n`` of ``persons``, in random order."""
    import random

    from filematch.testdata import numbered_records

    at = "" if persons.parent == OUT / f"pop-{n}-{seed}" else f"-{persons.parent.name}"  # a population made elsewhere
    path = OUT / f"filematch-in-{n}-{seed}-draw{draw}{at}.csv"
    if not path.is_file():
        OUT.mkdir(exist_ok=True)
        t = time.perf_counter()
        rng = random.Random(seed * 7919 + draw)
        keep = set(rng.sample(range(n), draw)) if draw < n else None
        drawn = [r for i, r in enumerate(numbered_records(persons, n, seed)) if keep is None or i in keep]
        rng.shuffle(drawn)
        _write(path, iter(drawn))
        print(f"# wrote {path.name} ({draw:,} of {n:,} persons at random) in {time.perf_counter() - t:.1f} s",
              flush=True)
    return path


def _head(src: Path, n: int) -> Path:
    path = src.with_name(src.stem + f"-head{n}.csv")
    if not path.is_file():
        with src.open("rb") as f, path.open("wb") as out:
            for i, line in enumerate(f):
                if i > n:
                    break
                out.write(line)
    return path


def _baseline(src: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of reading and writing ``src`` with the csv module."""
    t, c = time.perf_counter(), time.process_time()
    with src.open(encoding="utf-8", newline="") as f, open(OUT / "baseline-out.csv", "w", encoding="utf-8",
                                                             newline="") as out:
        w = csv.writer(out, delimiter=";")
        for row in csv.reader(f, delimiter=";"):
            w.writerow(row)
    return time.perf_counter() - t, time.process_time() - c


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from filematch.formats import format_named
from filematch.local import wash_file
from store.engine import make_engine
engine = make_engine(sys.argv[1])
cpu0 = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
           for f in ("ru_utime", "ru_stime"))
t = time.perf_counter()
with open(sys.argv[3], "wb") as out:
    rep = wash_file(engine, Path(sys.argv[2]), out, format_named("csv"), processes=int(sys.argv[4]))
seconds = time.perf_counter() - t
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
main, worker = me.ru_maxrss / 1024, kids.ru_maxrss / 1024
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime - cpu0
print(json.dumps({"seconds": seconds, "records": rep.records, "counts": rep.counts, "cpu": cpu,
                  "rss_mb": max(main, worker), "rss_main_mb": main, "rss_worker_mb": worker}))
"""


def _wash(url: str, src: Path, processes: int = PROCESSES) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _CHILD, url, str(src), str(OUT / "filematch-out.csv"),
                          str(processes)], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).parents[1])
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _identify(url: str, persons: Path, queries: int, seed: int) -> tuple[float, float, float, int]:
    from filematch.formats import format_named
    from filematch.local import wash_file
    from filematch.testdata import noisy_records, truth_of
    from store.engine import make_engine

    # per population: the records' references name their persons (a 100k file washed against 5.6M is not a test)
    src = OUT / f"filematch-noisy-{persons.parent.name}-{queries}.csv"
    if not src.is_file():
        _write(src, iter(noisy_records(persons, queries, seed, population=200_000)))
    engine = make_engine(url)
    buf = io.BytesIO()
    t = time.perf_counter()
    wash_file(engine, src, buf, format_named("csv"))
    seconds = time.perf_counter() - t
    rows = list(csv.DictReader(io.StringIO(buf.getvalue().decode(), newline=""), delimiter=";"))
    ident = [r for r in rows if r["code"] == "IDENTIFIED"]
    correct = sum(1 for r in ident if r["number"] == truth_of(r["ref"]))
    return seconds, correct / max(1, len(ident)), correct / max(1, len(rows)), len(rows)


def run(args: argparse.Namespace) -> Iterator[Result]:
    given = os.environ.get("PREGBRIDGE_BENCH_POPULATION")
    for n in args.num:
        store = OUT / f"store-{n}.sqlite"
        persons = Path(given) / "persons.jsonl" if given else OUT / f"pop-{n}-{args.seed}" / "persons.jsonl"
        if given and not args.dburl:
            raise SystemExit("PREGBRIDGE_BENCH_POPULATION needs --dburl: the store loaded from that population")
        if not persons.is_file() or (not args.dburl and not store.is_file()):
            raise SystemExit(f"{store} / {persons} missing: run `python -m benchmarks store --num {n}` first")
        url = args.dburl or f"sqlite:///{store}"
        warm_sqlite(url)  # the store in the page cache, as a running server's would be (harness.warm_sqlite)
        draw = min(n, args.draw or 1_000_000)
        src = _input(n, args.seed, persons, draw)
        base, base_cpu = _baseline(src)
        yield Result(f"csv read+write (baseline, {draw:,} of {n:,})", draw, base,
                     f"{draw / base:,.0f} rows/s, CPU {base_cpu / draw * 1e6:.1f} µs/row")
        sizes = [100_000, draw] if draw > 100_000 else [draw]
        rss: list[float] = []
        for size in sizes:
            part = _head(src, size) if size < draw else src
            res = _wash(url, part)
            secs, mb = float(res["seconds"]), float(res["rss_mb"])  # type: ignore[arg-type]
            rss.append(mb)
            ratio = secs / (base * size / draw)
            ok = mb <= 300 and ratio <= 4
            yield Result(f"wash numbers ({size:,} rows)", size, secs, f"{size / secs:,.0f} rows/s, RSS {mb:.0f} MB",
                         ratio=ratio, baseline="csv", target="ratio ≤ 4, RSS ≤ 300 MB", ok=ok)
            cpu = float(res["cpu"])  # type: ignore[arg-type]
            print(f"#   CPU {cpu / size * 1e6:.1f} µs/row, all processes (ratio {cpu / (base_cpu * size / draw):.2f} "
                  f"to the baseline's CPU: a ratio the VM's load does not move, where the wall-clock one is the "
                  f"scheduler's on a busy VM)", flush=True)
            print(f"#   counts: {res['counts']}; processes {PROCESSES}, peak RSS main "
                  f"{float(res['rss_main_mb']):.0f} MB, largest worker {float(res['rss_worker_mb']):.0f} MB",  # type: ignore[arg-type]
                  flush=True)
        if len(rss) == 2:
            print(f"# peak RSS 100k → {draw:,}: {rss[0]:.0f} → {rss[1]:.0f} MB (flat: {rss[1] <= rss[0] * 1.25})")
        secs, p, r, q = _identify(url, persons, args.queries, args.seed)
        yield Result("identify by demographics", q, secs, f"{q / secs:,.0f} rec/s, P {p:.4f} R {r:.4f}",
                     target="P ≥ 0.99, R ≥ 0.95", ok=p >= 0.99 and r >= 0.95)
