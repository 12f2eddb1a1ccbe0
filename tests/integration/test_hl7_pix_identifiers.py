"""The PIX fast path (one query over person_identifier) answers PID-3 exactly as the person document does,
for every profile and domain filter, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from adapters.hl7 import identifiers_pid_segment, pid_segment, sorted_identifiers
from server.access import BUILTIN_PROFILES, AccessProfile, apply_profile, visible_identifiers
from server.hl7.handlers.pix import identifiers_of
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
        assert identifiers_of(conn, "00000000000") is None
        for n in numbers:
            found = repo.find(n)
            fast = identifiers_of(conn, n)
            assert found is not None and fast is not None
            for profile in PROFILES:
                view = apply_profile(found.person, profile)
                for kinds in KINDS:
                    ids = sorted_identifiers(visible_identifiers(fast, profile), kinds)
                    assert [i.number for i in ids] == [i.number for i in sorted_identifiers(view.identifiers, kinds)]
                    if ids:
                        assert identifiers_pid_segment(ids) == pid_segment(view, 1, kinds=kinds, demographics=False)
