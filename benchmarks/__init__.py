"""pregbridge benchmarks: ``python -m benchmarks SUITE [--num N] [--dburl URL] [--profile]``.

One harness for every suite (SQLAlchemy ``examples/performance`` style). Each suite module is
``bench_<suite>.py`` with a docstring saying what it measures and a ``run(args) -> list[Result]``;
the harness prints one line per variant: name, n, seconds, the figure (rate or latency) and its ratio
to the baseline measured in the same run. Targets are checked here, not by timed tests.
"""
