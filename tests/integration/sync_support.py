"""Helpers of the sync tests: populations served by the fake Persontjenesten, the same population loaded from
files, and a store's persons as comparable rows (every derived table's)."""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from store.document import decode_stored
from store.engine import make_engine, migrate
from store.feed import ingest
from store.loading import load_population
from store.state import get_feed_position
from tests.conftest import pg_schema_url
from tests.unit.test_upstream_mapping import contract_view, special_documents
from upstream.client import PersontjenestenClient
from upstream.fake import FakeOptions, RunningFake, serve_fake
from upstream.parts import ELEMENT_PARTS, information_parts
from upstream.sync import Syncer, SyncLock, SyncOptions, SyncSummary

ALL_PARTS = information_parts(ELEMENT_PARTS)
FAST_RETRIES = {"backoff_initial": 0.01, "backoff_max": 0.05, "retries": 8, "retry_after_max": 2.0}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write(path: Path, items: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) + "\n" for x in items),
                    encoding="utf-8")


def add_persons(directory: Path, docs: list[dict[str, Any]]) -> None:
    """Append person documents to a population directory (persons.jsonl and the manifest's count)."""
    persons = directory / "persons.jsonl"
    _write(persons, _lines(persons) + docs)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    manifest["persons"] += len(docs)
    (directory / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def with_special_persons(directory: Path) -> Path:
    """The population plus persons the generator does not make (shared residences, present addresses with a
    reason, cadastral and free-form addresses)."""
    add_persons(directory, special_documents())
    return directory


def contract_copy(src: Path, dst: Path) -> Path:
    """``src`` as Persontjenesten can carry it (tests.unit.test_upstream_mapping.contract_view on every person,
    in persons.jsonl and in the feed): what a file load must be given to equal a sync."""
    shutil.copytree(src, dst)
    _write(dst / "persons.jsonl", [contract_view(d) for d in _lines(src / "persons.jsonl")])
    for feed in sorted((src / "feed").glob("*.jsonl")):
        events = _lines(feed)
        for ev in events:
            ev["person"] = contract_view(ev["person"])
        _write(dst / "feed" / feed.name, events)
    return dst


def loaded(engine: Engine, directory: Path) -> Engine:
    """``directory`` loaded and its feed ingested (the file way)."""
    load_population(engine, directory, workers=1)
    ingest(engine, directory / "feed")
    return engine


def synced(engine: Engine, fake: RunningFake, *, workers: int = 1, parallelism: int = 4,
           **settings: Any) -> SyncSummary:
    """Everything the fake serves applied to ``engine`` by one syncer run (``once``)."""
    client = PersontjenestenClient(fake.client_settings(**{**FAST_RETRIES, **settings}))
    with SyncLock(engine):
        syncer = Syncer(engine, client, SyncOptions(ALL_PARTS, parallelism=parallelism, workers=workers))
        try:
            return syncer.run(once=True)
        finally:
            syncer.close()


@contextlib.contextmanager
def fake_of(directory: Path, **options: Any) -> Iterator[RunningFake]:
    with serve_fake(directory, FakeOptions(**options)) as fake:
        yield fake


@contextlib.contextmanager
def another_store(db_url: str, work: Path, name: str) -> Iterator[Engine]:
    """A second empty, migrated store on the backend of ``db_url``."""
    if db_url.startswith("postgresql"):
        with pg_schema_url() as url:
            engine = make_engine(url)
            migrate(engine)
            try:
                yield engine
            finally:
                engine.dispose()
        return
    engine = make_engine(f"sqlite:///{work / name}.sqlite")
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def snapshot(engine: Engine) -> dict[str, tuple[Any, ...]]:
    """person key → (document, identifier rows, search row, brief, current view, given-name words): everything a
    face reads."""
    out: dict[str, tuple[Any, ...]] = {}
    with engine.connect() as conn:
        persons = conn.execute(text(
            "SELECT p.id, p.person_key, p.doc, b.brief, c.current FROM person p"
            " LEFT JOIN person_brief b ON b.person_id = p.id LEFT JOIN person_current c ON c.person_id = p.id")).all()
        ids = {pid: key for pid, key, *_ in persons}
        idents: dict[str, list[tuple[Any, ...]]] = {key: [] for key in ids.values()}
        for row in conn.execute(text("SELECT person_id, number, kind, status, is_current, valid_from, valid_to, "
                                     "registered_at, source FROM person_identifier")):
            idents[ids[row[0]]].append(tuple(row[1:]))
        search = {ids[r[0]]: tuple(r[1:]) for r in conn.execute(text(
            "SELECT person_id, family_key, given_key, birth_date, birth_year, gender, kommune, postnummer, "
            "street_key, status FROM person_search"))}
        words: dict[str, list[tuple[Any, ...]]] = {key: [] for key in ids.values()}
        for row in conn.execute(text("SELECT person_id, birth_year, family_key, word FROM person_given_word")):
            words[ids[row[0]]].append(tuple(row[1:]))
    for _pid, key, doc, brief, current in persons:
        out[key] = (decode_stored(doc), sorted(idents[key], key=repr), search.get(key), brief, current,
                    sorted(words[key]))
    return out


def position(engine: Engine) -> int:
    with engine.connect() as conn:
        return get_feed_position(conn)


def feed_outcomes(engine: Engine) -> dict[int, tuple[str, str]]:
    with engine.connect() as conn:
        return {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT seq, person_key, outcome FROM feed_event"))}


def edited(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.update(changes)
    return out
