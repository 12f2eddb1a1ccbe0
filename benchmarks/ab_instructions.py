"""Instruction-count A/B of two checkouts: the server work of one PIX, PDQ, getPerson and Filematch wash.

Wall-clock A/B on a shared VM swings by ±30–40 % run to run; the number of instructions a process executes
does not. This harness runs each face under ``valgrind --tool=callgrind`` once per side: the process starts
the face as the side's command line would, warms every case up, then runs ``N`` operations of each case
between two calls of ``os.getpgrp()``, which nothing else in these processes calls. With
``--dump-before=getpgrp`` callgrind writes one profile per stretch between two marks, so the instructions of
a case's ``N`` operations (Ir, the ``summary:`` line of that profile) are counted apart from start-up,
imports and warm-up (measuring a run of 0 operations and subtracting it, as before, costs twice the runs:
start-up is 2.5–9 G instructions, several minutes under valgrind). The audit writer is flushed before each
closing mark, so a case's audit batches count with it. Each side is a git checkout with its own ``.venv``
(``make venv``); each loads the same population
with its *own* ``pregbridge load`` into its own SQLite store, and runs the same operations, in the same
order, through its own code:

=========  ================================================================================================
case       one operation
=========  ================================================================================================
pix        an HL7 QBP^Q23 (PIX) message through the HL7 face's message handler, as ``listen-hl7`` composes
           it (only the socket bypassed): MLLP payload decoding, message parsing, the route, the store
           lookup, masking, PID encoding, the RSP encoding and framing, the audit record and its metrics
pdq        an HL7 QBP^Q22 (PDQ) message (family name and birth year, 1–50 hits) through the same handler
search     the store's part of a PDQ message alone: ``store.search.search`` of the same family name and birth
           year (full profile) on a held read connection, to tell the search's share of a PDQ difference
           from the HL7 path's
getperson  a PREG ``getPerson`` SOAP 1.1 request (real body, HTTP Basic auth) through the WSGI application
           ``serve`` builds for each worker, called in process (gunicorn and the HTTP front bypassed)
wash       a Filematch wash of 5,000 records with numbers (``filematch.local.wash_file``, one process)
=========  ================================================================================================

Audit, metrics and log level are each side's defaults (``load_settings()`` with only the store, the data
directory and the benchmark's HL7 sender set); ``--env KEY=VALUE`` sets more for both sides, e.g.
``--env PREGBRIDGE_LOG_LEVEL=warning --env PREGBRIDGE_METRICS_ENABLED=false`` to take the per-call request
log line and the call metrics out (a side that has no such setting ignores it). ``PYTHONHASHSEED`` is fixed;
what still varies between two runs of one side (when the audit thread wakes, the garbage collector's timing)
is a fraction of a percent of ``N`` operations.

Run from this checkout (any Python with the standard library; the sides run their own ``.venv/bin/python``)::

    git worktree add ../pregbridge-base 541d37c && make -C ../pregbridge-base venv
    python -m benchmarks.ab_instructions --side base=../pregbridge-base --side main=. --persons 20000

It prints one line per case and side, then the table: case, base Ir/op, main Ir/op, ratio (with one
``--side``, that side's Ir/op only). ``--calls`` runs the same operations under cProfile instead of valgrind
(a minute, not ten) and prints Python calls per operation on each side and the functions whose calls differ
most: which Python function an instruction difference comes from (callgrind does not see Python frames).
``--cases`` picks cases, ``-n`` the operations per case (default 300; the
wash: ``--washes``, default 2). Under valgrind Python runs about 50× slower: a face's run takes 3–15 minutes
on a busy 2-core VM (the SOAP face's start-up is the longest). Stores, inputs and the callgrind files stay in
``--work`` (default ``benchmarks/out/ab``): ``callgrind.<side>.<face>.<k>`` is the ``k``-th stretch (``.1``
start-up, then one per case in the order above), for ``callgrind_annotate --inclusive=yes``.

This file is also the program each measured run executes (``--inner``): it imports only the standard
library and the side's own packages, and composes the faces the way each side's command line does (the
composition functions moved between the two; :func:`_hl7_handler` and :func:`_wsgi_app` take either).
"""

from __future__ import annotations

import argparse
import base64
import collections
import csv
import gc
import io
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = ["main"]

CASES = ("pix", "pdq", "search", "getperson", "wash")
SETUP = {"pix": "hl7", "pdq": "hl7", "search": "hl7", "getperson": "soap",
         "wash": "wash"}  # the cases one process measures
WARMUP = 30  # operations of each case run before any is measured (caches, the first password check, …)
USER = "abbench"
PASSWORD = "ab-bench-password-1"
SENDER = ("ABBENCH", "ABFAC")
NS = "urn:no:pregbridge:personregister:v1"
PREG_PATH = "/preg/v1/Personregister"
ENVELOPE = ('<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="' + NS + '"><s:Body>'
            '<p:getPerson><p:personnummer>{}</p:personnummer></p:getPerson></s:Body></s:Envelope>')
MSH = "MSH|^~\\&|{app}|{fac}|PREGBRIDGE|NHN|20260101120000||{type}|{ctl}|P|2.5|||||NOR|UNICODE UTF-8"
WORK = Path(__file__).parent / "out" / "ab"


# -- the inputs (made once, the same for both sides) ---------------------------------------------------------


def _population(work: Path, side: Path, persons: int, seed: int) -> Path:
    """The population directory, generated by the first side's ``pregbridge demo-data``."""
    out = work / f"population-{persons}-{seed}"
    if not (out / "persons.jsonl").is_file():
        subprocess.run([str(side / ".venv/bin/pregbridge"), "demo-data", "--persons", str(persons), "--seed",
                        str(seed), "--out", str(out)], check=True, cwd=side, stdout=subprocess.DEVNULL)
    return out


def _current(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((i for i in items if i.get("current")), None)


def _inputs(population: Path, work: Path, seed: int, ops: int) -> Path:
    """``inputs.json``: the PIX numbers and PDQ (family name, birth year) pairs, drawn from the population
    files (never from a store), and ``wash.csv``: 5,000 numbered records in random order."""
    path = work / f"inputs-{population.name}-{seed}.json"
    if path.is_file() and (work / "wash.csv").is_file() and json.loads(path.read_text())["ops"] >= ops + WARMUP:
        return path
    rng = random.Random(seed)
    docs = [json.loads(line) for line in (population / "persons.jsonl").open(encoding="utf-8")]
    numbers, groups = [], collections.Counter[tuple[str, int]]()
    for doc in docs:
        in_use = [i["number"] for i in doc["identifiers"] if i["status"] == "iBruk"]
        if in_use:
            numbers.append(in_use[0])
        name, birth = _current(doc.get("names") or []), _current(doc.get("birth") or [])
        if name and birth and name.get("family") and birth.get("date"):
            groups[(name["family"], int(birth["date"][:4]))] += 1
    need = ops + WARMUP
    # four letters at least: a shorter name can fall below the search's three letters of key on one side and
    # not the other (Bøe was "bo" before the e after an ø was kept)
    pairs = sorted(k for k, v in groups.items() if 1 <= v <= 50 and len(k[0]) >= 4 and k[0].isalpha())
    data = {"ops": need, "numbers": [numbers[rng.randrange(len(numbers))] for _ in range(need)],
            "pairs": [pairs[rng.randrange(len(pairs))] for _ in range(need)]}
    if not (work / "wash.csv").is_file():
        _wash_input(docs, work / "wash.csv", rng)
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def _wash_input(docs: list[dict[str, Any]], path: Path, rng: random.Random, n: int = 5000) -> None:
    """``n`` records of persons drawn at random, each with its current number, in random order (a wash by number:
    a record without a number goes to identification, which #16 made slower by design and which the identify
    suite measures)."""
    rows = []
    for seq, doc in enumerate(rng.sample(docs, min(n, len(docs))), start=1):
        name, birth = _current(doc.get("names") or []), _current(doc.get("birth") or [])
        in_use = [i["number"] for i in doc["identifiers"] if i["status"] == "iBruk"]
        number = in_use[0] if in_use else ""
        gender = _current(doc.get("gender") or [])
        given = " ".join(x for x in ((name or {}).get("given"), (name or {}).get("middle")) if x)
        rows.append([f"R{seq}", number, given, (name or {}).get("family", ""), (birth or {}).get("date") or "",
                     ("K" if gender["value"] == "kvinne" else "M") if gender else ""])
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(["ref", "number", "given", "family", "birth", "gender"])
        w.writerows(rows)


def _store(side: Path, label: str, population: Path, work: Path) -> dict[str, str]:
    """The side's store (loaded by its own ``pregbridge load``, with the benchmark account) and environment."""
    home = work / label
    home.mkdir(parents=True, exist_ok=True)
    # The caches that expire by the clock hold for a day: under valgrind a second of the process's time is
    # ~50 times fewer operations, so a 60 s credential cache (an argon2 check at each expiry) or a 2 s account
    # state would be re-read per operation 50 times as often as in production, and as often as the load allows.
    (home / "pregbridge.toml").write_text(f'[hl7]\npeers = {{ "{SENDER[0]}^{SENDER[1]}" = "{USER}" }}\n'
                                          '[access]\ncredential_cache_ttl_seconds = 86400\n'
                                          'account_state_seconds = 86400\n')
    env = {"PREGBRIDGE_DATABASE_URL": f"sqlite:///{home / 'store.sqlite'}", "PREGBRIDGE_DATA_DIR": str(home),
           "PREGBRIDGE_CONFIG": str(home / "pregbridge.toml")}
    run_env = dict(os.environ, **env)
    cli = str(side / ".venv/bin/pregbridge")
    if not (home / "loaded").is_file():
        (home / "store.sqlite").unlink(missing_ok=True)
        subprocess.run([cli, "load", str(population)], check=True, cwd=side, env=run_env,
                       stdout=subprocess.DEVNULL)
        subprocess.run([cli, "users", "add", USER, "--profile", "full", "--password-stdin"], check=True, cwd=side,
                       env=run_env, input=PASSWORD + "\n", text=True, stdout=subprocess.DEVNULL)
        (home / "loaded").write_text("")
    return env


# -- measuring ------------------------------------------------------------------------------------------


def _instructions(out: Path) -> int:
    with out.open() as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no summary line in {out}")


def type_cache_misses(out: Path) -> tuple[int, int]:
    """(calls, instructions) of CPython's ``find_name_in_mro`` in one callgrind profile: a type attribute
    lookup that missed the interpreter's type cache walks the MRO there. That cache (3.11: 4,096 slots, indexed
    by the type's version tag and the *address* of the attribute's name) makes lookups collide by where objects
    happen to lie in memory, so two checkouts that do the same lookups can miss differently: a difference of
    these is layout, not work (docs/benchmarks.md, issue 12, session 8)."""
    names: dict[str, str] = {}
    callee, calls, ir, pending = "", 0, 0, False
    with out.open() as f:
        for line in f:
            if pending:  # the line after calls=: position, inclusive cost
                ir += int(line.split()[1])
                pending = False
            elif line.startswith(("fn=(", "cfn=(")):
                ident, _, name = line[line.index("(") + 1:].partition(")")
                if name.strip():
                    names[ident] = name.strip()
                if line.startswith("cfn="):
                    callee = ident
            elif line.startswith("calls=") and names.get(callee) == "find_name_in_mro":
                calls += int(line[6:].split()[0])
                pending = True
    return calls, ir


def _measure(side: Path, label: str, env: dict[str, str], setup: str, cases: list[str], ops: dict[str, int],
             inputs: Path, work: Path, extra: dict[str, str], tag: str) -> dict[str, int]:
    """One valgrind run of ``setup``'s face on one side: case → instructions of its measured operations."""
    out = work / f"callgrind.{label}{tag}.{setup}"
    for old in work.glob(out.name + "*"):
        old.unlink()
    run_env = dict(os.environ, **env, **extra, PYTHONHASHSEED="0", PYTHONWARNINGS="ignore", PYTHONPATH=str(side))
    run_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    plan = ",".join(f"{c}:{ops[c]}" for c in cases)
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--log-file={out}.log",
           "--dump-before=getpgrp", str(side / ".venv/bin/python"), str(Path(__file__).resolve()), "--inner", plan,
           str(inputs), str(work / "wash.csv")]
    with open(f"{out}.stderr", "wb") as err:
        subprocess.run(cmd, check=True, cwd=side, env=run_env, stdout=subprocess.DEVNULL, stderr=err)
    return {c: _instructions(d) for c, d in _dumps(out, cases).items()}


def _dumps(out: Path, cases: list[str]) -> dict[str, Path]:
    """The profile of each case of one valgrind run (``out.1`` is its start-up)."""
    dumps = sorted((p for p in out.parent.glob(out.name + ".*") if p.suffix[1:].isdigit()),
                   key=lambda p: int(p.suffix[1:]))
    if len(dumps) != len(cases) + 1:  # start-up, then one per case: a stray getpgrp() would shift them
        raise RuntimeError(f"{out}: {len(dumps)} profiles, expected {len(cases) + 1}")
    return dict(zip(cases, dumps[1:], strict=True))


def _count_calls(side: Path, label: str, env: dict[str, str], setup: str, cases: list[str], ops: dict[str, int],
                 inputs: Path, work: Path, extra: dict[str, str], tag: str) -> dict[str, dict[str, int]]:
    """One run of ``setup``'s face on one side under cProfile: case → function → calls in its operations."""
    out = work / f"calls.{label}{tag}.{setup}.json"
    run_env = dict(os.environ, **env, **extra, PYTHONHASHSEED="0", PYTHONWARNINGS="ignore", PYTHONPATH=str(side))
    run_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    plan = ",".join(f"{c}:{ops[c]}" for c in cases)
    cmd = [str(side / ".venv/bin/python"), str(Path(__file__).resolve()), "--inner", plan, str(inputs),
           str(work / "wash.csv"), str(out)]
    with open(f"{out}.stderr", "wb") as err:
        subprocess.run(cmd, check=True, cwd=side, env=run_env, stdout=subprocess.DEVNULL, stderr=err)
    got: dict[str, dict[str, int]] = json.loads(out.read_text())
    return got


def _print_calls(calls: dict[tuple[str, str], dict[str, int]], labels: list[str], cases: list[str],
                 ops: dict[str, int], top: int) -> None:
    """Python calls per operation (cProfile's exact counts): the totals, then the functions that differ most."""
    print("\n" + f"{'case':<10}" + "".join(f"{lb + ' calls/op':>18}" for lb in labels)
          + (f"{'difference':>12}" if len(labels) == 2 else ""))
    for case in cases:
        totals = [sum(calls[(lb, case)].values()) / ops[case] for lb in labels]
        print(f"{case:<10}" + "".join(f"{v:>18,.1f}" for v in totals)
              + (f"{totals[1] - totals[0]:>+12,.1f}" if len(labels) == 2 else ""))
    if len(labels) != 2:
        return
    for case in cases:
        a, b = calls[(labels[0], case)], calls[(labels[1], case)]
        diff = {f: (b.get(f, 0) - a.get(f, 0)) / ops[case] for f in a.keys() | b.keys()}
        print(f"\n{case}: calls/op {labels[1]} - {labels[0]}, the {top} largest differences")
        for f, d in sorted(diff.items(), key=lambda x: (-abs(x[1]), x[0]))[:top]:
            if abs(d) >= 0.005:
                print(f"  {d:>+8.2f}  {f}")


def outer(args: argparse.Namespace) -> int:
    sides = {label: Path(path).resolve() for label, path in (s.split("=", 1) for s in args.side)}
    if len(sides) not in (1, 2):
        raise SystemExit("give one or two --side LABEL=CHECKOUT (the first is the base of the ratio)")
    for label, path in sides.items():
        if not (path / ".venv/bin/pregbridge").is_file():
            raise SystemExit(f"{label}: no {path}/.venv/bin/pregbridge (run `make venv` there)")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    extra = dict(e.split("=", 1) for e in args.env)
    tag = "-" + re.sub(r"[^A-Za-z0-9]+", "_", "_".join(args.env)) if args.env else ""
    cases = [c for c in CASES if c in args.cases]
    ops = {c: (args.washes if c == "wash" else args.n) for c in cases}
    population = _population(work, next(iter(sides.values())), args.persons, args.seed)
    inputs = _inputs(population, work, args.seed, args.n)
    envs = {label: _store(path, label, population, work) for label, path in sides.items()}
    load = os.getloadavg()
    print(f"# {args.persons:,} persons, N={args.n} (wash: {args.washes} × 5,000 records), env {extra or 'defaults'}, "
          f"load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    jobs = [(label, setup) for label in sides for setup in dict.fromkeys(SETUP[c] for c in cases)]
    started = time.monotonic()

    if args.calls:
        calls: dict[tuple[str, str], dict[str, int]] = {}
        for label, setup in jobs:  # one at a time: seconds each, and cProfile's counts do not need parallel runs
            mine = [c for c in cases if SETUP[c] == setup]
            for c, counted in _count_calls(sides[label], label, envs[label], setup, mine, ops, inputs, work, extra,
                                           tag).items():
                calls[(label, c)] = counted
        _print_calls(calls, list(sides), cases, ops, args.top)
        return 0

    misses: dict[tuple[str, str], tuple[float, float]] = {}

    def run(job: tuple[str, str]) -> dict[tuple[str, str], float]:
        label, setup = job
        mine = [c for c in cases if SETUP[c] == setup]
        got = _measure(sides[label], label, envs[label], setup, mine, ops, inputs, work, extra, tag)
        for c, dump in _dumps(work / f"callgrind.{label}{tag}.{setup}", mine).items():
            n, ir = type_cache_misses(dump)
            misses[(label, c)] = (n / ops[c], ir / ops[c])
        for c, ir in got.items():
            print(f"  {label:<6} {c:<10} n={ops[c]:<5} Ir {ir:>15,}  {ir / ops[c]:>14,.0f} /op  "
                  f"({time.monotonic() - started:.0f} s)", flush=True)
        return {(label, c): ir / ops[c] for c, ir in got.items()}

    per: dict[tuple[str, str], float] = {}
    with ThreadPoolExecutor(args.parallel) as pool:
        for got in pool.map(run, jobs):
            per.update(got)
    labels = list(sides)
    ratio = len(labels) == 2
    print("\n" + f"{'case':<10}" + "".join(f"{lb + ' Ir/op':>16}" for lb in labels) + (f"{'ratio':>8}" * ratio))
    for case in cases:
        row = [per[(lb, case)] for lb in labels]
        print(f"{case:<10}" + "".join(f"{v:>16,.0f}" for v in row) + (f"{row[-1] / row[0]:>8.3f}" * ratio))
    print("\ntype-cache misses (type_cache_misses: layout, not work), per operation, and Ir/op without them")
    print(f"{'case':<10}" + "".join(f"{lb + ' misses':>16}{lb + ' Ir':>12}{lb + ' Ir/op':>16}" for lb in labels)
          + (f"{'ratio':>8}" * ratio))
    for case in cases:
        rest = [per[(lb, case)] - misses[(lb, case)][1] for lb in labels]
        print(f"{case:<10}" + "".join(f"{misses[(lb, case)][0]:>16,.1f}{misses[(lb, case)][1]:>12,.0f}{r:>16,.0f}"
                                      for lb, r in zip(labels, rest, strict=True))
              + (f"{rest[-1] / rest[0]:>8.3f}" * ratio))
    load = os.getloadavg()
    print(f"# load at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; callgrind files in {work}")
    return 0


# -- the measured process (runs inside a side's venv, importing that side's code) ------------------------------


def _configure_logging() -> Any:
    """The settings and the logging of the side's command line (``server.cli.main``)."""
    import logging

    from server.config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = load_settings()
    try:
        from server.logs import configure_logging
    except ImportError:  # a checkout from before the log settings
        return settings
    configure_logging(settings.log.format, settings.log.level)
    return settings


def _hl7_handler(settings: Any) -> tuple[Callable[[bytes, Any], bytes], Any]:
    """The MLLP handler ``listen-hl7`` serves, and its audit writer."""
    try:
        from server.bootstrap import build_hl7_app, listener_endpoint
    except ImportError:  # before #12 composed it in server/bootstrap.py
        from server.hl7.app import build_app, mllp_settings  # type: ignore[attr-defined]

        app, audit = build_app(settings, mllp_settings(settings))
        return app, audit
    from server.metrics import timed_handler

    app, audit = build_hl7_app(settings)
    listener_endpoint(settings, app.engine, settings.hl7, 0)  # installs the metrics; 0: no HTTP endpoint
    return timed_handler(app), audit


def _wsgi_app(settings: Any) -> tuple[Callable[..., Any], Any]:
    """The WSGI application one ``serve`` worker runs (with the metrics directory ``serve`` prepares), and its
    audit writer."""
    from server.bootstrap import build_components

    metrics = getattr(settings, "metrics", None)
    if metrics is not None and metrics.enabled:
        from server.metrics import prepare_multiprocess_dir

        prepare_multiprocess_dir()
    parts = build_components(settings)
    return parts.app, parts.audit


def _soap_call(app: Callable[..., Any], body: bytes, auth: str) -> bytes:
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": PREG_PATH, "SERVER_NAME": "127.0.0.1",
                               "SERVER_PORT": "8080", "REMOTE_ADDR": "127.0.0.1",
                               "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(body)),
                               "HTTP_SOAPACTION": '"getPerson"', "HTTP_AUTHORIZATION": auth,
                               "wsgi.input": io.BytesIO(body)}
    setup_testing_defaults(environ)
    status: list[str] = []
    result = app(environ, lambda s, h, exc=None: status.append(s))
    try:
        out = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    if not status or not status[0].startswith("200"):
        raise RuntimeError(f"getPerson answered {status[:1]}")
    return out


def _hl7_steps(settings: Any, data: dict[str, Any]) -> tuple[dict[str, Callable[[int], None]], Any]:
    from server.hl7.listener import Peer

    handler, audit = _hl7_handler(settings)
    peer = Peer("127.0.0.1", 40000, 1)
    msgs = {"pix": [(MSH.format(app=SENDER[0], fac=SENDER[1], type="QBP^Q23^QBP_Q21", ctl=f"X{i}")
                     + f"\rQPD|IHE PIX Query|t{i}|{x}\rRCP|I\r").encode() for i, x in enumerate(data["numbers"])],
            "pdq": [(MSH.format(app=SENDER[0], fac=SENDER[1], type="QBP^Q22^QBP_Q21", ctl=f"Y{i}")
                     + f"\rQPD|IHE PDQ Query|t{i}|@PID.5.1^{f}~@PID.7^{y}\rRCP|I|50^RD\r").encode()
                    for i, (f, y) in enumerate(data["pairs"])]}

    def step_of(case: str) -> Callable[[int], None]:
        def step(i: int) -> None:
            reply = handler(msgs[case][i], peer)
            if b"MSA|AA|" not in reply or b"\rPID|" not in reply:  # accepted, with the person(s) found
                raise RuntimeError(f"{case} message {i} not accepted: {reply[:200]!r}")
        return step

    def search_step(i: int) -> None:  # the store's search of a PDQ message alone (full profile)
        from server.access import load_profiles, resolve_profile
        from server.access.masking import search_scope
        from store.search import SearchCriteria, search

        if not searches:
            scope = search_scope(resolve_profile("full", load_profiles(settings.access.profiles_path)))
            searches.extend((SearchCriteria(family=f, birth_year=y), scope) for f, y in data["pairs"])
        criteria, scope = searches[i]
        with reader.connection() as conn:
            if not search(conn, criteria, scope=scope):
                raise RuntimeError(f"search {i} found nobody")

    from store.engine import Reader, make_engine

    reader = Reader(make_engine(settings.store.database_url))
    searches: list[Any] = []
    return {"pix": step_of("pix"), "pdq": step_of("pdq"), "search": search_step}, audit


def _soap_steps(settings: Any, data: dict[str, Any]) -> tuple[dict[str, Callable[[int], None]], Any]:
    app, audit = _wsgi_app(settings)
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bodies = [ENVELOPE.format(x).encode() for x in data["numbers"]]

    def step(i: int) -> None:
        if b"Fault" in _soap_call(app, bodies[i], auth):
            raise RuntimeError(f"getPerson {i} answered a fault")

    return {"getperson": step}, audit


def _wash_steps(settings: Any, wash_path: str) -> tuple[dict[str, Callable[[int], None]], Any]:
    from filematch.formats import format_named
    from filematch.local import wash_file
    from store.engine import make_engine

    engine = make_engine(settings.store.database_url)
    src = Path(wash_path)
    records = sum(1 for _ in src.open(encoding="utf-8")) - 1  # the header line

    def step(i: int) -> None:
        rep = wash_file(engine, src, io.BytesIO(), format_named("csv"))
        if rep.records != records:
            raise RuntimeError(f"the wash read {rep.records} records")

    return {"wash": step}, None


def _calls_of(profiler: Any) -> dict[str, int]:
    """A cProfile's exact call counts by function (``file:line(name)``, the path cut to the package)."""
    import pstats

    out: dict[str, int] = {}
    for (path, _line, name), (_cc, ncalls, *_rest) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        short = re.sub(r"^.*/(site-packages|lib/python3\.\d+)/", "", path)
        short = re.sub(r"^.*/(server|adapters|store|filematch|upstream)/", r"\1/", short)
        key = f"{short}({name})"  # no line number: the two sides' lines differ
        out[key] = out.get(key, 0) + ncalls
    return out


def inner(plan: str, inputs_path: str, wash_path: str, calls_out: str | None = None) -> int:
    """Warm every case of ``plan`` (``case:n,…``, one face) up, then run each ``n`` times between two marks
    (with ``calls_out``: under cProfile instead, its call counts per case written there as JSON)."""
    data = json.loads(Path(inputs_path).read_text())
    counts = {c: int(n) for c, n in (item.split(":") for item in plan.split(","))}
    settings = _configure_logging()
    setup = SETUP[next(iter(counts))]
    steps, audit = (_hl7_steps(settings, data) if setup == "hl7" else _soap_steps(settings, data)
                    if setup == "soap" else _wash_steps(settings, wash_path))
    warm = {c: 1 if c == "wash" else WARMUP for c in counts}
    for case in counts:
        for i in range(warm[case]):
            steps[case](i)
    if audit is not None:
        audit.flush()
    gc.collect()
    gc.freeze()  # as listen-hl7 and serve's workers do after start-up
    os.getpgrp()  # mark: callgrind dumps the start-up
    calls: dict[str, dict[str, int]] = {}
    for case, n in counts.items():
        step = steps[case]
        if calls_out is not None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        for i in range(n):
            step(i if case == "wash" else warm[case] + i)
        if audit is not None:
            audit.flush()  # the case's audit records written before its stretch ends
        if calls_out is not None:
            profiler.disable()
            calls[case] = _calls_of(profiler)
        os.getpgrp()  # mark: callgrind dumps this case's stretch
    if audit is not None:
        audit.close()
    if calls_out is not None:
        Path(calls_out).write_text(json.dumps(calls))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--inner"]:
        return inner(argv[1], argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab_instructions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", action="append", required=True, metavar="LABEL=CHECKOUT",
                   help="a checkout with its .venv; twice: the base first, then the one compared with it")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    p.add_argument("-n", type=int, default=300, help="operations per measured run (pix, pdq, getperson)")
    p.add_argument("--washes", type=int, default=2, help="5,000-record washes per measured wash run")
    p.add_argument("--persons", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for both sides' measured runs (e.g. PREGBRIDGE_LOG_LEVEL=warning)")
    p.add_argument("--parallel", type=int, default=2, help="valgrind runs at once (instruction counts do not "
                   "depend on it)")
    p.add_argument("--work", default=str(WORK), help="stores, inputs and callgrind files")
    p.add_argument("--calls", action="store_true", help="count Python calls per operation with cProfile instead "
                   "(no valgrind; exact counts, seconds instead of minutes): the total per side, then the functions "
                   "whose calls per operation differ most")
    p.add_argument("--top", type=int, default=25, help="with --calls: how many differing functions to list")
    return outer(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
