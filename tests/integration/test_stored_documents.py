"""Stored person documents (store.document's stored formats, issue 19) and migration 0031, which converts a store
written before them: on SQLite and PostgreSQL, an old store migrates and answers exactly as a store written by
today's code, and migrating down and up again gives the same rows."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, select

from store import schema as s
from store.document import (
    FORMAT_DEFLATE_1,
    StoredFormatError,
    decode_stored,
    dump_stored,
    from_document,
    load_stored,
    to_document,
)
from store.engine import _MIGRATIONS, make_engine, migrate
from store.model import Person
from store.repository import PersonRepository, person_rows
from store.synthetic import generate_population
from tests.integration.sync_support import another_store, snapshot


@pytest.fixture(scope="module")
def persons(tmp_path_factory: pytest.TempPathFactory) -> list[Person]:
    """300 synthetic persons with history (moves, name changes, ceased numbers, deaths, relations)."""
    out = tmp_path_factory.mktemp("pop")
    generate_population(out, 300, 19, feed_days=0)
    lines = (out / "persons.jsonl").read_text(encoding="utf-8").splitlines()
    return [from_document(json.loads(line)) for line in lines if line.strip()]


def _old_text(p: Person) -> str:
    """A document as the store wrote it before format 1 (store.repository.dump_document until migration 0031)."""
    return json.dumps(to_document(p), ensure_ascii=False, separators=(",", ":"))


def test_every_person_reads_back_the_same_from_a_fifth_of_the_text(persons: list[Person]) -> None:
    stored = [dump_stored(p) for p in persons]
    assert all(raw[0] == FORMAT_DEFLATE_1 for raw in stored)
    assert [load_stored(raw) for raw in stored] == persons
    text = sum(len(_old_text(p).encode()) for p in persons)
    assert sum(map(len, stored)) < text / 5  # measured: ~240 of ~2,200 bytes (docs/store.md "Size")


def test_documents_written_before_format_1_are_read_as_text_or_bytes(persons: list[Person]) -> None:
    for p in persons[:50]:
        old = _old_text(p)
        assert load_stored(old) == p  # SQLite gives the old rows back as text
        assert load_stored(old.encode()) == p  # PostgreSQL's bytea after migration 0031, before its rows
        assert load_stored(memoryview(old.encode())) == p
        assert decode_stored(dump_stored(p)) == to_document(p)


@pytest.mark.parametrize("damage", ["unknown format", "truncated", "damaged", "empty"])
def test_a_document_in_no_known_format_is_refused_without_its_content(persons: list[Person], damage: str) -> None:
    raw = dump_stored(persons[0])
    bad = {"unknown format": b"\x02" + raw[1:], "truncated": raw[: len(raw) // 2],
           "damaged": raw[:1] + bytes(b ^ 0x5A for b in raw[1:]), "empty": b""}[damage]
    with pytest.raises(StoredFormatError) as caught:
        load_stored(bad)
    name = persons[0].name
    assert name is not None and name.family not in str(caught.value)


_person_0023 = sa.table("person", *(sa.column(c.name, sa.Text() if c.name == "doc" else c.type) for c in s.person.c))


def _store_as_0023(engine: Engine, persons: list[Person]) -> None:
    """What revision 0023's code wrote: the document as JSON text, and every derived row."""
    now = dt.datetime(2026, 12, 1, 12, 0)
    with engine.begin() as conn:
        for pid, p in enumerate(persons, start=1):
            for table, rows in person_rows(p, pid, now).items():
                if table is s.person_given_word:  # not yet: migration 0033 fills it from person_search
                    continue
                if table is s.person:  # its doc column was text then
                    conn.execute(insert(_person_0023), [dict(rows[0], doc=_old_text(p))])
                else:
                    conn.execute(insert(table), rows)


def _downgrade(engine: Engine, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _docs(engine: Engine) -> dict[int, bytes | str]:
    with engine.connect() as conn:
        return {pid: doc for pid, doc in conn.execute(select(s.person.c.id, s.person.c.doc).order_by(s.person.c.id))}


def _answers(engine: Engine, persons: list[Person]) -> dict[str, tuple[int, Person, str]]:
    out = {}
    with engine.connect() as conn:
        repo = PersonRepository(conn)
        for p in persons:
            for ident in p.identifiers:
                found = repo.find(ident.number)
                assert found is not None
                out[ident.number] = (found.person_id, found.person, found.matched.number)
    return out


def test_an_old_store_migrates_to_compressed_documents_and_answers_the_same(db_url: str, tmp_path: Path,
                                                                            persons: list[Person]) -> None:
    engine = make_engine(db_url)
    try:
        migrate(engine, "0023")
        _store_as_0023(engine, persons)
        migrate(engine)
        docs = _docs(engine)
        assert len(docs) == len(persons)
        assert all(isinstance(d, bytes) and d[0] == FORMAT_DEFLATE_1 for d in docs.values())
        with another_store(db_url, tmp_path, "reference") as reference:
            with reference.begin() as conn:
                PersonRepository(conn).save_many([(p, None) for p in persons],
                                                 now=dt.datetime(2026, 12, 1, 12, 0))
            assert snapshot(engine) == snapshot(reference)
            assert _answers(engine, persons) == _answers(reference, persons)
            assert _docs(engine) == _docs(reference)  # the very bytes today's writer stores
        with engine.connect() as conn:
            assert {pid: p for pid, p in PersonRepository(conn).load(list(docs)).items()} == dict(
                enumerate(persons, start=1))
        _downgrade(engine, "0023")  # down: the JSON text again, which 0023's code read with orjson
        old = _docs(engine)
        assert all(isinstance(d, str) and orjson.loads(d) == to_document(persons[pid - 1]) for pid, d in old.items())
        migrate(engine)
        assert _docs(engine) == docs
    finally:
        engine.dispose()
