"""Store benchmark: bulk load rate, lookup and search latency, and how they scale.

For each population size (``--num 100000 1000000``), in one run:

1. a synthetic population is generated (cached under benchmarks/out/, deterministic from ``--seed``);
2. **baseline**: the same rows pregbridge stores are inserted into the same schema with raw
   ``sqlite3.executemany`` (only the inserts are timed: the physical floor of the load);
3. **load**: ``store.loading.load_population`` into a fresh store (parse, validate, rows, insert,
   indexes maintained) — reported as persons/s and as the ratio to the baseline;
4. **lookup**: ``PersonRepository.find`` by the identifiers of ``--queries`` random persons (thousands, drawn
   over the whole store; a fifth of the lookups ceased numbers where the population has them), p50/p99;
5. **search**: ``store.search.search`` with criteria taken from ``--queries`` random persons (family name +
   birth year; given + family + birth date; family + kommune; family prefix + postnummer; given + family +
   birth year; family + street) and the PREG face's default hit limit (50; more is answered TooManyHits, as
   the face does), p50/p99 — overall and per kind of criteria, each line with its hits per search, how many
   were refused as too broad and how many criteria were below the minimum (not searched);
6. **load-independent figures** of the same searches and lookups (on a VM shared by other work, a wall-clock
   p99 is the scheduler's): the CPU time of each (``time.thread_time``: p50/p99; for searches also the
   least-squares line of CPU against hits, "CPU a ms + b µs a hit": what each person answered costs, since a
   national register answers the same criteria with more persons), and on SQLite the virtual
   machine instructions each statement ran (a progress handler called every :data:`VM_STEP` instructions, in
   a second, untimed pass): the work a plan does, whatever the machine is doing. A plan that reads the rows
   it answers runs about the same instructions at 100k and at 5.6M.

``--reuse`` skips generation, baseline and load when the store file of a size exists, and measures the
queries only (the load lines are then absent). ``--no-baseline`` skips the raw baseline (at 5.6 million
persons it costs as much disk and time as the load itself; docs/benchmarks.md "National size").

Then the ratio of the largest to the smallest size for lookup and search p99, wall-clock and CPU, and for the
search's VM instructions p50/p99 (indexes work: ≤ 1.5).
Targets (issue 2, SQLite, 2 cores): 1M persons loaded in ≤ 5 min; lookup p99 ≤ 2 ms; search p99 ≤ 20 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select

from benchmarks.harness import OUT, Result, maybe_profile, percentiles, warm_sqlite
from store import schema as s
from store.derived import DERIVED
from store.engine import make_engine, migrate, read_connection
from store.errors import InvalidInput, TooManyHits
from store.loading import load_population, prepared_chunks
from store.repository import PersonRepository
from store.search import ALL_RELEASABLE, SearchCriteria, search

__all__ = ["run"]


def ensure_population(n: int, seed: int) -> Path:
    from store.synthetic import generate_population

    out = OUT / f"pop-{n}-{seed}"
    if not (out / "manifest.json").is_file():
        t = time.perf_counter()
        generate_population(out, n, seed, feed_days=1)
        print(f"# generated {n:,} persons in {time.perf_counter() - t:.1f} s -> {out}", flush=True)
    return out


def _sql_value(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat()
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if isinstance(v, bool):
        return int(v)
    return v


def raw_baseline(pop: Path, db: Path) -> float:
    """Seconds spent in raw sqlite3.executemany inserting the rows pregbridge stores (same schema, same
    rows, prepared by the loader's own worker processes; only the inserts are timed)."""
    db.unlink(missing_ok=True)
    eng = create_engine(f"sqlite:///{db}")
    s.metadata.create_all(eng)
    eng.dispose()
    conn = sqlite3.connect(db, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "temp_store=MEMORY",
                   "mmap_size=268435456"):  # the store's own settings (store/engine.py)
        conn.execute(f"PRAGMA {pragma}")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    spent, pid = 0.0, 0
    for prepared, _rejects in prepared_chunks(pop / "persons.jsonl", os.cpu_count() or 1):
        persons: list[tuple[Any, ...]] = []
        derived: list[list[tuple[Any, ...]]] = [[] for _ in DERIVED]
        for key, doc, rows in prepared:
            pid += 1
            persons.append((pid, key, doc, None, now))
            for out, table_rows in zip(derived, rows, strict=True):
                out += [tuple(_sql_value(v) for v in dict(r, person_id=pid).values()) for r in table_rows]
        t = time.perf_counter()
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO person (id, person_key, doc, last_seq, updated_at) VALUES (?, ?, ?, ?, ?)",
                         persons)
        for k, d in enumerate(DERIVED):  # the registry's tables (store/derived.py), each with its builder's columns
            cols = ", ".join(dict(prepared[0].rows[k][0], person_id=0)) if prepared[0].rows[k] else ""
            if derived[k]:
                conn.executemany(f"INSERT INTO {d.name} ({cols}) VALUES ({', '.join('?' * len(derived[k][0]))})",
                                 derived[k])
        conn.execute("COMMIT")
        spent += time.perf_counter() - t
    conn.close()
    return spent


SEARCH_KINDS = ("family+year", "given+family+date", "family+kommune", "prefix+postnummer", "given+family+year",
                "family+street")


def _criteria(rng: random.Random, p: Any) -> tuple[str, SearchCriteria] | None:
    name, born, home = p.name, p.birth_date, p.address("bosted") or p.address("post") or p.address("opphold")
    if name is None or born is None:
        return None
    kind = rng.randrange(len(SEARCH_KINDS))
    if kind == 5 and home and home.street:
        return SEARCH_KINDS[5], SearchCriteria(family=name.family, street=home.street)
    if kind == 4:
        return SEARCH_KINDS[4], SearchCriteria(given=name.given, family=name.family, birth_year=born.year)
    if kind == 1:
        return SEARCH_KINDS[1], SearchCriteria(given=name.given, family=name.family, birth_date=born)
    if kind == 2 and home and home.kommune:
        return SEARCH_KINDS[2], SearchCriteria(family=name.family, kommune=home.kommune)
    if kind == 3 and home and home.postnummer and len(name.family) >= 4:
        return SEARCH_KINDS[3], SearchCriteria(family=name.family[:4], postnummer=home.postnummer)
    return SEARCH_KINDS[0], SearchCriteria(family=name.family, birth_year=born.year)


def _valid(c: SearchCriteria) -> bool:
    try:
        c.validate()
    except InvalidInput:  # e.g. a two-letter family name with a birth year: below the minimum criteria
        return False
    return True


def measure(url: str, pop: Path | None, n: int, queries: int, seed: int, profile: bool,
            baseline_s: float | None) -> tuple[list[Result], dict[str, float]]:
    results: list[Result] = []
    engine = make_engine(url)
    migrate(engine)
    if pop is not None:
        results.append(_load(engine, pop, n, profile, baseline_s))
        if baseline_s:
            results.append(Result("baseline (raw executemany, inserts only)", n, baseline_s,
                                  f"{n / baseline_s:,.0f} persons/s"))
    query_results, figures = _queries(engine, n, queries, seed, profile)
    engine.dispose()
    return results + query_results, figures


def _load(engine: Engine, pop: Path, n: int, profile: bool, baseline_s: float | None) -> Result:
    with maybe_profile(profile, f"store-load-{n}"):
        summary = load_population(engine, pop)
    rate = summary.persons / summary.seconds
    return Result("load (pregbridge load_population)", summary.persons, summary.seconds, f"{rate:,.0f} persons/s",
                  ratio=summary.seconds / baseline_s if baseline_s else None,
                  baseline="raw sqlite3.executemany of the same rows",
                  target="1M in ≤ 300 s" if n >= 1_000_000 else "",
                  ok=(summary.seconds * 1_000_000 / n <= 300) if n >= 1_000_000 else None)


def _queries(engine: Engine, n: int, queries: int, seed: int, profile: bool) -> tuple[list[Result], dict[str, float]]:
    warm_sqlite(str(engine.url))
    results: list[Result] = []
    rng = random.Random(seed)
    figures: dict[str, float] = {}
    with read_connection(engine) as conn:  # no transaction: other suites may open (and migrate) the store meanwhile
        t = s.person_identifier
        ceased = [r[0] for r in conn.execute(select(t.c.number).where(t.c.status == "opphoert").limit(queries))]
        top = conn.execute(select(s.person.c.id).order_by(s.person.c.id.desc()).limit(1)).scalar_one()
        ids = sorted({rng.randint(1, top) for _ in range(queries)})
        repo = PersonRepository(conn)
        numbers, people = [], []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            numbers += [r[0] for r in conn.execute(select(t.c.number).where(t.c.person_id.in_(chunk)))]
            people += list(repo.load(chunk).values())
        persons_drawn = len(ids)
        rng.shuffle(numbers)
        numbers = numbers[: queries - queries // 5]
        numbers += [rng.choice(ceased) for _ in range(queries // 5)] if ceased else []
        rng.shuffle(numbers)
        for number in numbers[:200]:  # warm the page cache the way a running server has it
            repo.find(number)
        lat, cpu = [], []
        started = time.perf_counter()
        with maybe_profile(profile, f"store-lookup-{n}"):
            for number in numbers:
                c0, t0 = time.thread_time(), time.perf_counter()
                found = repo.find(number)
                lat.append(time.perf_counter() - t0)
                cpu.append(time.thread_time() - c0)
                assert found is not None
        p50, p99 = percentiles(lat)
        c50, c99 = percentiles(cpu)
        figures["lookup_p99"], figures["lookup_p50"], figures["lookup_cpu_p99"] = p99, p50, c99
        results.append(Result("lookup by identifier", len(lat), time.perf_counter() - started,
                              f"p50 {p50:.3f} ms  p99 {p99:.3f} ms (CPU p50 {c50:.3f} p99 {c99:.3f}), numbers of "
                              f"{persons_drawn:,} random persons", target="p99 ≤ 2 ms", ok=p99 <= 2.0))
        drawn = [kc for p in people if (kc := _criteria(rng, p)) is not None]
        below = Counter(kind for kind, c in drawn if not _valid(c))
        criteria = [(kind, c) for kind, c in drawn if _valid(c)]
        rng.shuffle(criteria)
        for _, c in criteria[:100]:
            try:
                search(conn, c, limit=50, scope=ALL_RELEASABLE)
            except TooManyHits:
                pass
        lat, kinds = [], {k: _Tally() for k in SEARCH_KINDS}
        started = time.perf_counter()
        with maybe_profile(profile, f"store-search-{n}"):
            for kind, c in criteria:
                c0, t0 = time.thread_time(), time.perf_counter()
                try:
                    hits = len(search(conn, c, limit=50, scope=ALL_RELEASABLE))
                except TooManyHits:
                    hits = -1
                spent = time.perf_counter() - t0
                lat.append(spent)
                kinds[kind].add(spent, time.thread_time() - c0, hits)
        p50, p99 = percentiles(lat)
        total = _Tally()
        for tally in kinds.values():
            total.merge(tally)
        steps = _vm_steps(conn, [c for _, c in criteria])
        for (kind, _), count in zip(criteria, steps or [], strict=False):
            kinds[kind].steps.append(count)
        total.steps = steps or []
        lookup_steps = _vm_steps(conn, numbers[:1000], lambda number: repo.find(number))
        if lookup_steps:
            figures["lookup_vm_p99"] = _pct(lookup_steps, 0.99)
            results.append(Result("  lookup SQLite VM instructions", len(lookup_steps), 0.0,
                                   f"p50 {_pct(lookup_steps, 0.5):,.0f}  p99 {figures['lookup_vm_p99']:,.0f}"))
        figures["search_p99"], figures["search_p50"] = p99, p50
        figures.update(total.figures("search"))
        results.append(Result("search (name + date/place)", len(lat), time.perf_counter() - started,
                              f"p50 {p50:.3f} ms  p99 {p99:.3f} ms, {total.summary(sum(below.values()))}",
                              target="p99 ≤ 20 ms", ok=p99 <= 20.0))
        for kind, tally in kinds.items():
            if tally.latencies:
                k50, k99 = percentiles(tally.latencies) if len(tally.latencies) > 1 else (0.0, 0.0)
                figures[f"search_p99 {kind}"] = k99
                figures.update(tally.figures(f"search {kind}"))
                results.append(Result(f"  search {kind}", len(tally.latencies), sum(tally.latencies),
                                      f"p50 {k50:.3f} ms  p99 {k99:.3f} ms, {tally.summary(below[kind])}"))
    return results, figures


VM_STEP = 1  # SQLite virtual machine instructions between two calls of the counting progress handler


def _vm_steps(conn: Any, items: list[Any], call: Any = None) -> list[int] | None:
    """The SQLite VM instructions (to :data:`VM_STEP`) each ``call(item)`` ran on ``conn`` (default: the search
    of the criteria ``item``, refusals included); None on another database. Untimed: the handler slows them."""
    raw = conn.connection.dbapi_connection
    if conn.dialect.name != "sqlite" or not hasattr(raw, "set_progress_handler"):
        return None
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0  # go on

    def searched(c: SearchCriteria) -> None:
        try:
            search(conn, c, limit=50, scope=ALL_RELEASABLE)
        except TooManyHits:
            pass

    run_one = call or searched
    out = []
    raw.set_progress_handler(tick, VM_STEP)
    try:
        for item in items:
            counted[0] = 0
            run_one(item)
            out.append(counted[0] * VM_STEP)
    finally:
        raw.set_progress_handler(None, VM_STEP)
    return out


def _pct(values: list[int] | list[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))]) if ordered else 0.0


class _Tally:
    """Latencies, CPU times, VM instructions and answers of one kind of search: hits, refusals as too broad."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.cpu: list[float] = []
        self.steps: list[int] = []
        self.hits = 0
        self.too_broad = 0
        self.answered: list[tuple[int, float]] = []  # (hits, CPU seconds) of each search answered

    def add(self, seconds: float, cpu_seconds: float, hits: int) -> None:
        self.latencies.append(seconds)
        self.cpu.append(cpu_seconds)
        if hits < 0:
            self.too_broad += 1
        else:
            self.hits += hits
            self.answered.append((hits, cpu_seconds))

    def merge(self, other: _Tally) -> None:
        self.latencies += other.latencies
        self.cpu += other.cpu
        self.hits += other.hits
        self.too_broad += other.too_broad
        self.answered += other.answered

    def per_hit(self) -> tuple[float, float] | None:
        """CPU seconds of a search answered as (fixed, per hit): the least-squares line through (hits, CPU) — what
        a larger answer costs (a national register answers the same criteria with more persons), apart from the
        search's own cost; None when the answers are too alike to tell."""
        if len({h for h, _ in self.answered}) < 2:
            return None
        slope, intercept = statistics.linear_regression([h for h, _ in self.answered], [c for _, c in self.answered])
        return intercept, slope

    def figures(self, name: str) -> dict[str, float]:
        out = {}
        if len(self.cpu) > 1:
            out[f"{name} cpu_p50"], out[f"{name} cpu_p99"] = percentiles(self.cpu)
        if self.steps:
            out[f"{name} vm_p50"], out[f"{name} vm_p99"] = _pct(self.steps, 0.5), _pct(self.steps, 0.99)
        return out

    def summary(self, below_minimum: int) -> str:
        answered = len(self.latencies) - self.too_broad
        per = self.hits / answered if answered else 0.0
        share = self.too_broad / len(self.latencies) if self.latencies else 0.0
        cpu = ""
        if len(self.cpu) > 1:
            c50, c99 = percentiles(self.cpu)
            cpu = f" (CPU p50 {c50:.3f} p99 {c99:.3f})"
        vm = f", VM p50 {_pct(self.steps, 0.5):,.0f} p99 {_pct(self.steps, 0.99):,.0f}" if self.steps else ""
        line = self.per_hit()
        hit = f", CPU {line[0] * 1e3:.3f} ms + {line[1] * 1e6:.1f} µs a hit" if line else ""
        return (f"{per:.1f} hits/answer, {self.too_broad:,} too broad ({share:.1%}), "
                f"{below_minimum:,} below the minimum criteria{cpu}{vm}{hit}")


def run(args: argparse.Namespace) -> Iterator[Result]:
    figures: dict[int, dict[str, float]] = {}
    for n in sorted(args.num):
        baseline_s = None
        if args.dburl:
            url, pop = args.dburl, (None if args.reuse else ensure_population(n, args.seed))
        elif args.reuse and (OUT / f"store-{n}.sqlite").is_file():
            url, pop = f"sqlite:///{OUT / f'store-{n}.sqlite'}", None
        else:
            pop = ensure_population(n, args.seed)
            db = OUT / f"store-{n}.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
            url = f"sqlite:///{db}"
            if not args.no_baseline:
                baseline_s = raw_baseline(pop, OUT / f"baseline-{n}.sqlite")
        results, figures[n] = measure(url, pop, n, args.queries, args.seed, args.profile, baseline_s)
        yield from results
    sizes = sorted(figures)
    if len(sizes) > 1:
        lo, hi = figures[sizes[0]], figures[sizes[-1]]
        for key in ("lookup_p99", "lookup_p50", "lookup_cpu_p99", "lookup_vm_p99", "search_p99", "search_p50",
                    "search cpu_p99", "search vm_p50", "search vm_p99",
                    *(f"search_p99 {kind}" for kind in SEARCH_KINDS),
                    *(f"search {kind} {m}" for kind in SEARCH_KINDS for m in ("cpu_p99", "vm_p99"))):
            if not lo.get(key) or key not in hi:
                continue
            ratio = hi[key] / lo[key]
            unit = "instructions" if "vm_" in key else "ms"
            yield Result(f"scaling {key} {sizes[-1]:,}/{sizes[0]:,}", sizes[-1], 0.0,
                         f"{hi[key]:,.3f} / {lo[key]:,.3f} {unit}", ratio=ratio, baseline=f"{sizes[0]:,} persons",
                         target="≤ 1.5", ok=ratio <= 1.5)
