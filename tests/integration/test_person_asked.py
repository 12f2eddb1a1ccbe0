"""store.retention.touch_asked: one row per person, asked_at only moves forward; deleting the person deletes it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, delete, select

from store import schema as s
from store.document import from_document
from store.repository import PersonRepository
from store.retention import touch_asked
from tests.factories import person_doc


def _stored(engine: Engine, n: int) -> list[int]:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        return [repo.save(from_document(person_doc(f"asked-{i}", given=f"Ola{i}"))) for i in range(n)]


def test_touch_records_each_person_once_and_only_moves_forward(engine: Engine) -> None:
    ids = _stored(engine, 3)
    t0 = dt.datetime(2026, 12, 1, 12, 0)
    with engine.begin() as conn:
        assert touch_asked(conn, [ids[0], ids[1], ids[0]], t0) == 2
        touch_asked(conn, [ids[1]], t0 + dt.timedelta(days=2))
        touch_asked(conn, [ids[0]], t0 - dt.timedelta(days=5))  # an older touch never moves it back
        assert touch_asked(conn, [], t0) == 0
    with engine.connect() as conn:
        got = dict(conn.execute(select(s.person_asked.c.person_id, s.person_asked.c.asked_at)).all())
    assert got == {ids[0]: t0, ids[1]: t0 + dt.timedelta(days=2)}


def test_deleting_the_person_deletes_its_asked_row(engine: Engine) -> None:
    ids = _stored(engine, 2)
    with engine.begin() as conn:
        touch_asked(conn, ids, dt.datetime(2026, 12, 1))
        conn.execute(delete(s.person).where(s.person.c.id == ids[0]))
    with engine.connect() as conn:
        left = conn.execute(select(s.person_asked.c.person_id)).scalars().all()
    assert left == [ids[1]]
