"""store.linkage.score's birth levels computed one row date at a time (``_date_level``, for a scorer that weighs a
few rows) against the map ``_date_levels`` builds (its reference; the scorer itself is compared with
``Parameters.weigh`` in tests/integration/test_linkage.py and test_search_fast_score.py)."""

from __future__ import annotations

import datetime as dt
import random

from store.linkage.score import _date_level, _date_levels


def _swapped(d: dt.date) -> str | None:
    iso = d.isoformat()
    return f"{iso[:5]}{iso[8:]}-{iso[5:7]}" if d.day != d.month and d.day <= 12 else None


def test_a_row_dates_level_is_the_maps() -> None:
    rng = random.Random(19)
    dates = [dt.date(2000, 2, 29), dt.date(1999, 12, 31), dt.date(999, 1, 1), dt.date(1000, 10, 10),
             dt.date(1854, 1, 12), dt.date(2024, 12, 1), dt.date(1900, 1, 1)]
    dates += [dt.date(1854, 1, 1) + dt.timedelta(rng.randrange(62000)) for _ in range(400)]
    levels_met = set()
    for d in dates:
        iso, levels = d.isoformat(), _date_levels(d)
        # every string one character away (digits, '-', a letter), every key of the map, other dates, odd texts
        rows = {iso[:i] + c + iso[i + 1 :] for i in range(10) for c in "0123456789-x"}
        rows |= set(levels) | {iso[:i] + iso[i + 1] + iso[i] + iso[i + 2 :] for i in range(9)}
        rows |= {(d + dt.timedelta(rng.randrange(-400, 400))).isoformat() for _ in range(20)}
        rows |= {"", iso[:9], iso + "0", iso.replace("-", "/"), f"{iso[:5]}{iso[8:]}-{iso[5:7]}"}
        for rd in rows:
            level = _date_level(iso, _swapped(d), rd)
            assert level == levels.get(rd, 0), (iso, rd)
            levels_met.add(level)
    assert levels_met == {0, 1, 2, 3}
