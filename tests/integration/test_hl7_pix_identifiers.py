"""The PIX fast path (the person's stored current view found by number, PID-3 encoded from it) answers
exactly as the person document does through apply_profile and pid_segment, for every profile and domain
filter, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from adapters.hl7 import pid_segment, sorted_identifiers
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile
from server.hl7.pid import identifiers_pid, pid_release
from store.current import view_by_number
from store.document import from_document
from store.repository import PersonRepository
from tests.factories import meta, number, person_doc

PROFILES = [*BUILTIN_PROFILES.values(),
            AccessProfile("noids", "*", frozenset({"name", "birth"}), "fortrolig"),
            AccessProfile("idhistory", "*", frozenset({"identifiers", "history"}), "fortrolig")]
KINDS = [None, ["fnr"], ["dnr"], ["fh", "dnr"], ["hnr"]]


def _population() -> list[dict[str, object]]:
    born = dt.date(1980, 5, 17)
    ceased = {"status": "opphoert", **meta(False, "1999-01-01", "2001-01-01")}
    return [
        person_doc("one"),
        person_doc("many", identifiers=[
            {"number": number("dnr", born), "kind": "dnr", **ceased},
            {"number": number("fnr", born), "kind": "fnr", "status": "iBruk", **meta(True, "2001-01-01")},
            {"number": number("fh"), "kind": "fh", **ceased},
            {"number": number("dnr", born), "kind": "dnr", "status": "opphoert",
             **meta(False, "1995-01-01", "1999-01-01")},
            {"number": number("fnr", born), "kind": "fnr", "status": "opphoert", **meta(True, None, "2000-12-31")},
        ]),
        person_doc("fh-only", identifiers=[{"number": number("fh"), "kind": "fh", "status": "iBruk", **meta()}]),
    ]


@pytest.fixture
def stored(engine: Engine) -> list[dict[str, object]]:
    docs = _population()
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for doc in docs:
            repo.save(from_document(doc))
    return docs


def test_pix_identifiers_equal_those_of_the_document(engine: Engine, stored: list[dict[str, object]]) -> None:
    numbers = [str(i["number"]) for doc in stored for i in doc["identifiers"]]  # type: ignore[attr-defined]
    with engine.connect() as conn:
        repo = PersonRepository(conn)
        assert view_by_number(conn, "00000000000") is None
        for n in numbers:
            found = repo.find(n)
            fast = view_by_number(conn, n)
            assert found is not None and fast is not None
            for profile in PROFILES:
                view = apply_profile(found.person, profile)
                for kinds in KINDS:
                    pid, shown = identifiers_pid(fast, pid_release(profile), kinds)
                    expected = sorted_identifiers(view.identifiers, kinds)
                    assert shown == [i.number for i in expected]
                    if expected:
                        assert pid == pid_segment(view, 1, kinds=kinds, demographics=False)
                    else:
                        assert pid is None
