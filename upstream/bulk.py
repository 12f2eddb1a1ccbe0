"""A bulk answer of the Person API (``person/bulk-by-id``, ``person/bulk-by-nin``) from its bytes to its persons,
and (:func:`map_bulk`) to the store's rows.

Apart from the client (upstream/client.py) and the sync (upstream/sync.py) because this is all the sync's
worker processes run: importing this module imports neither httpx nor the JOSE library (~15 MB of resident
memory each), nor the sync's feed, loading and state modules (~4 MB each).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import orjson

from store.document import from_document
from store.errors import InvalidDocument
from store.model import IdentifierStatus, Person
from store.repository import PreparedPerson, prepare_person
from upstream.errors import UpstreamError, UpstreamUnavailable
from upstream.mapping import store_document

__all__ = ["Mapped", "bulk_persons", "map_answers", "map_bulk", "person_object", "ready"]


def person_object(body: Any) -> dict[str, Any]:
    """``body`` if it is a JSON object (a Person), else :class:`UpstreamError`."""
    if not isinstance(body, dict):
        raise UpstreamError("Persontjenesten sent a person that is not an object")
    return body


def bulk_persons(body: bytes, op: str = "persons_by_id") -> list[dict[str, Any]]:
    """A bulk answer's bytes → its persons: a JSON list of objects, else an error (a body that is not JSON is
    :class:`UpstreamUnavailable`, as for every answer of the client; one that is not a list of objects is
    :class:`UpstreamError`)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UpstreamUnavailable(f"Persontjenesten answered {op} with a body that is not JSON") from None
    if not isinstance(parsed, list):
        raise UpstreamError(f"Persontjenesten answered {op} with something other than a list")
    return [person_object(p) for p in parsed]


class Mapped(NamedTuple):
    """A batch of upstream answers mapped, validated and turned into rows (:func:`map_answers`)."""

    persons: list[PreparedPerson]
    settle: list[list[str]]  # the numbers of each person that may be shared (upstream.sync._settle_numbers)
    rejects: list[tuple[str, str, str]]  # (person id, reason, raw answer as JSON)
    unknown: Counter[str]
    answered: list[str]  # the ids asked for that the answers held
    strays: int = 0  # persons in a bulk answer that were not asked for (left out)


def _may_share_numbers(p: Person) -> bool:
    return p.current_status == "opphoert" or any(i.status == IdentifierStatus.CEASED for i in p.identifiers)


def map_bulk(asked: Sequence[str], body: bytes | Sequence[Any]) -> Mapped:
    """A bulk answer (its bytes as Persontjenesten sent them, or its parsed list) to the ids ``asked`` → rows:
    parsed (:func:`bulk_persons`), the persons not asked for left out and counted, then :func:`map_answers`.
    Runs in a worker process: pure, no I/O."""
    if isinstance(body, bytes):
        body = bulk_persons(body)
    wanted = set(asked)
    answers: list[tuple[str, dict[str, Any]]] = []
    strays = 0
    for item in body:
        key = item.get("id") if isinstance(item, dict) else None
        if isinstance(key, str) and key in wanted:
            answers.append((key, cast(dict[str, Any], item)))
        else:
            strays += 1
    return map_answers(answers)._replace(strays=strays)


def map_answers(answers: Sequence[tuple[str, dict[str, Any]]]) -> Mapped:
    """(asked person id, answer) pairs → rows (runs in a worker process: pure, no I/O)."""
    out = Mapped([], [], [], Counter(), [asked for asked, _ in answers])
    for asked, raw in answers:
        try:
            person = from_document(store_document(raw, out.unknown))
            if person.person_key != asked:
                raise InvalidDocument("the person's id differs from the one asked for", field="id")
        except InvalidDocument as exc:
            out.rejects.append((asked, str(exc), json.dumps(raw, ensure_ascii=False, separators=(",", ":"))))
            continue
        out.persons.append(prepare_person(person))
        if _may_share_numbers(person):
            out.settle.append([i.number for i in person.identifiers])
    return out


def ready() -> int:
    """A worker process's first task: this module (all a page's work imports) imported (upstream.sync.Syncer)."""
    return os.getpid()
