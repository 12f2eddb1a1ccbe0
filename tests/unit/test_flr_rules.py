"""FLR's GPHerId rule and doctor cycles (store/flr.py), on contract documents alone."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from store.flr import FASTLEGE, VIKAR, PatientPeriod, active_on, cycles_of, gp_her_id

TODAY = dt.date(2026, 12, 3)


def contract(*cycles: dict[str, Any], service: int | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"contractId": 42, "gpHprNumber": 1001, "gpHerId": 501, "validFrom": "2020-01-01",
                           "validTo": None}
    if cycles:
        doc["doctorCycles"] = list(cycles)
    if service is not None:
        doc["serviceHerId"] = service
    return doc


def cycle(hpr: int, her: int | None, rel: str, start: str, end: str | None = None) -> dict[str, Any]:
    return {"hprNumber": hpr, "herId": her, "relationship": rel, "valid": {"from": start, "to": end}}


def test_implied_cycle_is_the_lists_gp() -> None:
    [c] = cycles_of(contract())
    assert (c.hpr_number, c.her_id, c.relationship, c.valid_from, c.valid_to) == (
        1001, 501, FASTLEGE, dt.date(2020, 1, 1), None)
    assert gp_her_id(contract(), TODAY) == 501
    ended = dict(contract(), validTo="2026-01-01")
    assert gp_her_id(ended, TODAY) is None and gp_her_id(ended, dt.date(2025, 6, 1)) == 501


@pytest.mark.parametrize(("cycles", "service", "expect"), [
    # the active GP wins over a substitute
    ([cycle(1001, 501, FASTLEGE, "2020-01-01"), cycle(1002, 502, VIKAR, "2026-11-01")], 900, 501),
    # GP away, one substitute: the substitute
    ([cycle(1001, 501, FASTLEGE, "2020-01-01", "2026-11-01"), cycle(1002, 502, VIKAR, "2026-11-01")], 900, 502),
    # GP away, two substitutes: the list's service party
    ([cycle(1001, 501, FASTLEGE, "2020-01-01", "2026-11-01"), cycle(1002, 502, VIKAR, "2026-11-01"),
      cycle(1003, 503, VIKAR, "2026-11-01")], 900, 900),
    # ... and without one: nil
    ([cycle(1001, 501, FASTLEGE, "2020-01-01", "2026-11-01"), cycle(1002, 502, VIKAR, "2026-11-01"),
      cycle(1003, 503, VIKAR, "2026-11-01")], None, None),
    # a substitute who starts tomorrow is not active; an ended one neither
    ([cycle(1001, 501, FASTLEGE, "2020-01-01", "2026-11-01"), cycle(1002, 502, VIKAR, "2026-12-04"),
      cycle(1003, 503, VIKAR, "2026-01-01", "2026-12-03")], None, None),
    # a single substitute without a HER-id falls through to the service party
    ([cycle(1002, None, VIKAR, "2026-11-01")], 900, 900),
])
def test_gp_her_id_rule(cycles: list[dict[str, Any]], service: int | None, expect: int | None) -> None:
    assert gp_her_id(contract(*cycles, service=service), TODAY) == expect


def test_active_period_is_the_latest_begun() -> None:
    old = PatientPeriod(1, "1", "n", dt.date(2020, 1, 1), dt.date(2026, 1, 1))
    new = PatientPeriod(2, "2", "n", dt.date(2026, 1, 1), None)
    assert active_on([old, new], dt.date(2025, 12, 31)) is old
    assert active_on([old, new], dt.date(2026, 1, 1)) is new  # valid_to is exclusive
    assert active_on([old], TODAY) is None
