"""A small demo population (persons, feed) for the upstream tests, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.synthetic import generate_population


@pytest.fixture(scope="session")
def demo_population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pregbridge demo-data --persons 240 --seed 14 --days 3``: 240 persons and their feed."""
    out = tmp_path_factory.mktemp("upstream-population")
    generate_population(out, 240, 14, feed_days=3)
    return out
