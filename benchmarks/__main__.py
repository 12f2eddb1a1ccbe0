"""``python -m benchmarks SUITE``: run one benchmark suite and print one line per variant."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
import time

SUITES = ("store", "store-size", "soap", "ar", "grunndata", "mllp", "filematch", "filematch-http", "audit", "sync",
          "identify", "readthrough")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("suite", choices=SUITES)
    p.add_argument("--num", type=int, nargs="+", default=[100_000], help="population size(s)")
    p.add_argument("--dburl", help="database URL (default: a fresh SQLite file per size)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--queries", type=int, default=5000, help="lookups and searches timed per size")
    p.add_argument("--seconds", type=int, default=10, help="duration of each timed load run (soap, mllp)")
    p.add_argument("--profile", action="store_true", help="cProfile the measured variants")
    p.add_argument("--reuse", action="store_true", help="store: reuse existing stores, measure queries only")
    p.add_argument("--rounds", type=int, default=5,
                   help="mllp, soap, ar, grunndata: the variants measured in this many alternating slices")
    p.add_argument("--slow-clients", type=int, default=0,
                   help="soap: measure getPerson with this many slow clients open (issue 13) instead")
    p.add_argument("--processes", type=int, default=1,
                   help="mllp: listener processes on one port (SO_REUSEPORT), server and echo baseline alike; "
                        "readthrough: washing processes")
    p.add_argument("--metrics", action="store_true",
                   help="soap: getPerson with metrics on, off, and on with the JSON request log, in --rounds slices")
    p.add_argument("--no-baseline", action="store_true",
                   help="store: skip the raw-insert baseline (national size: it doubles disk and time)")
    p.add_argument("--draw", type=int, default=0,
                   help="filematch: records drawn at random from the population to wash (default: n, ≤ 1,000,000)")
    p.add_argument("--threads", type=int,
                   help="mllp: also measure the real face with this many handler threads (0: on the event loop), "
                        "in the same slices as the default")
    args = p.parse_args(argv)
    module = importlib.import_module(f"benchmarks.bench_{args.suite.replace('-', '_')}")
    print(f"# {args.suite}: python {platform.python_version()}, {platform.machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, sizes {args.num}")
    for result in module.run(args):
        print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
