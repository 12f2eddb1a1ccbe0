"""The change feed of the synthetic population: one list of events per day after the snapshot.

The feed works on a *pool* of households kept in memory while the population was streamed to disk (the
caller picks them). Every event changes documents in the pool in place and carries the whole document
after the change, so later events build on earlier ones: a person who moved on day 1 and dies on day 3
dies at the new address. One event concerns one person; a household move is one event per member, a
birth is the child's ``personErOpprettet`` plus an ``endringIFamilierelasjon`` for each parent.
"""

from __future__ import annotations

import json
import random
from collections import deque
from collections.abc import Callable, Iterator
from datetime import date

from store.identity import IdKind
from store.synthetic.places import address, foreign_address
from store.synthetic.population import (
    Builder,
    Doc,
    Household,
    clock_of,
    dated,
    identifier,
    in_store_order,
    iso,
    item,
    marital,
    name,
    person_doc,
    relation,
)

__all__ = ["FeedWriter", "events_per_day"]

Event = tuple[str, Doc]  # (eventType, document after the event)
# action -> weight (per action; a household move or emigration is one event per member, a birth three)
_ACTIONS = (("move", 22.0), ("death", 8.0), ("birth", 5.0), ("name", 7.0), ("marriage", 3.0),
            ("emigration", 3.0), ("protection", 1.5), ("number", 4.0))
_REGULAR = ("single", "couple", "family", "singleParent")
_FITS: dict[str, Callable[[Household], bool]] = {
    "move": lambda h: h.kind in _REGULAR and h.protection != "strengtFortrolig",
    "death": lambda h: True,
    "birth": lambda h: h.kind in ("couple", "family"),
    "name": lambda h: h.kind != "fh",
    "marriage": lambda h: h.kind in ("couple", "family"),
    "emigration": lambda h: h.kind in _REGULAR and h.protection == "ugradert",
    "protection": lambda h: h.kind in _REGULAR and h.protection == "ugradert",
    "number": lambda h: h.kind == "dnr",
}


def events_per_day(persons: int) -> int:
    """About 0.1 % of the population a day, and at least a few."""
    return max(4, round(persons * 0.001))


def _current(items: list[Doc]) -> Doc | None:
    return next((i for i in items if i["current"]), None)


def _close(it: Doc | None, day: int) -> None:
    if it is not None:
        it["current"] = False
        it["validTo"] = iso(day)


def _value(doc: Doc, key: str) -> str | None:
    cur = _current(doc[key])
    return None if cur is None else cur.get("value")


def _bosatt(doc: Doc) -> bool:
    return _value(doc, "status") == "bosatt"


def _age(doc: Doc, day: int) -> float:
    return (day - date.fromisoformat(doc["birth"][0]["date"]).toordinal()) / 365.25


class FeedWriter:
    """Makes the events of each day; ``builder`` supplies numbers, names and addresses (its own RNG)."""

    def __init__(self, rng: random.Random, builder: Builder, pool: list[Household], first_sequence: int,
                 per_day: int) -> None:
        self.rng, self.b, self.pool = rng, builder, pool
        self.seq = first_sequence
        self.per_day = per_day
        # households that may suit each action (checked again when used: documents change)
        self._fit = {a: [h for h in pool if _FITS[a](h)] or pool for a, _ in _ACTIONS}
        # every kind of action is tried early, so even a tiny feed shows all of them when it can
        self._todo = deque(a for a, _ in _ACTIONS)
        self._do: dict[str, Callable[[Household, int, str], list[Event]]] = {
            "move": self._move, "death": self._death, "birth": self._birth, "name": self._name,
            "marriage": self._marriage, "emigration": self._emigration, "protection": self._protection,
            "number": self._number,
        }

    def day(self, day: int) -> Iterator[str]:
        """The JSON lines of one day's events, sequence numbers continuing from the previous day."""
        made, attempts = 0, 0
        spacing = 50_400 // (self.per_day + 10)
        kinds, weights = [k for k, _ in _ACTIONS], [w for _, w in _ACTIONS]
        while made < self.per_day and attempts < 200 * self.per_day and self.pool:
            attempts += 1
            if self._todo and attempts % 2:
                action = self._todo[0]
                self._todo.rotate(-1)
            else:
                action = self.rng.choices(kinds, weights=weights)[0]
            h = self.rng.choice(self._fit[action])
            seconds = min(86_399, 21_600 + made * spacing)
            clock = f"T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"
            events = self._do[action](h, day, clock)
            if events and action in self._todo:
                self._todo.remove(action)
            for event_type, doc in events:
                made += 1
                line = {"sequenceNumber": self.seq, "eventType": event_type, "personId": doc["personId"],
                        "registeredAt": iso(day) + clock, "person": in_store_order(doc)}
                self.seq += 1
                yield json.dumps(line, ensure_ascii=False, separators=(",", ":"))

    # -- actions: each returns [] when the household does not fit ----------------------------------------

    def _move(self, h: Household, day: int, clock: str) -> list[Event]:
        movers = [d for d in h.docs if _bosatt(d)]
        if h.protection == "strengtFortrolig" or not movers:
            return []
        places = self.b.places
        kommune = h.kommune if h.kommune and self.rng.random() < 0.6 else places.pick_kommune(self.rng)
        base = places.street_address(self.rng, "bosted", places.place(self.rng, kommune), h.protection)
        out = []
        for doc in movers:
            old = next((a for a in doc["addresses"] if a["current"] and a["type"] == "bosted"), None)
            if old is not None:
                _close(old, day)
            doc["addresses"].append(dated(base, True, day, None, clock))
            out.append(("endringIBostedsadresse", doc))
        h.kommune = kommune
        return out

    def _death(self, h: Household, day: int, clock: str) -> list[Event]:
        alive = [d for d in h.docs if _bosatt(d)]
        if not alive:
            return []
        doc = max(alive, key=lambda d: _age(d, day))
        if _age(doc, day) < 50 and self.rng.random() < 0.8:
            return []
        _close(_current(doc["status"]), day)
        doc["status"].append(item({"value": "doed"}, True, day, None, clock))
        doc["death"].append(item({"date": iso(day)}, True, day, None, clock))
        for a in doc["addresses"]:
            if a["current"] and a["type"] == "bosted":
                _close(a, day)
        out: list[Event] = [("personErDoed", doc)]
        number = doc["identifiers"][0]["number"]
        for other in h.docs:
            ms = _current(other["maritalStatus"])
            if other is not doc and ms and ms["value"] == "gift" and ms["spouse"] == number:
                _close(ms, day)
                other["maritalStatus"].append(marital("enkeEllerEnkemann", number, day, True, None, clock))
                out.append(("endringISivilstand", other))
        return out

    def _parents(self, h: Household, day: int) -> tuple[Doc, Doc] | None:
        adults = [d for d, r in zip(h.docs, h.roles, strict=True) if r in ("adult", "mother", "father")]
        alive = [d for d in adults if _bosatt(d)]
        mothers = [d for d in alive if _value(d, "gender") == "kvinne" and 20 <= _age(d, day) <= 44]
        fathers = [d for d in alive if _value(d, "gender") == "mann" and _age(d, day) <= 60]
        if h.kind not in ("couple", "family") or not mothers or not fathers:
            return None
        return mothers[0], fathers[0]

    def _birth(self, h: Household, day: int, clock: str) -> list[Event]:
        parents = self._parents(h, day)
        if parents is None:
            return []
        mother, father = parents
        rng, b = self.rng, self.b
        born = day - rng.randrange(4)
        female = rng.random() < 0.49
        pid = b.next_id
        b.next_id += 1
        number = b.number(IdKind.FNR, born, female)
        kids = [d for d, r in zip(h.docs, h.roles, strict=True) if r == "child"]
        family = (_current((kids[0] if kids else father)["names"]) or {}).get("family") or b.names.family()
        cur = [dict(a) for a in mother["addresses"] if a["current"]]
        addresses = [dated(a, True, born, None, clock) for a in cur]
        level = (_current(mother["protection"]) or {}).get("level", "ugradert")
        mine = clock_of(pid)
        pair = ((mother, "mor"), (father, "far"))
        child = person_doc(
            pid, [identifier(number, "fnr", True, born, None, mine)],
            [name(b.names.given(female, 2026), None, family, True, born, None, mine)], born, h.kommune, "NOR",
            female, [item({"value": "bosatt"}, True, born, None, mine)], [], addresses,
            [item({"level": level}, True, born, None, mine)],
            [marital("ugift", None, born, True, None, mine)],
            [item({"country": "NOR", "acquired": None}, True, born, None, mine)],
            [relation(p["identifiers"][0]["number"], role, "barn", born, mine) for p, role in pair], mine)
        out: list[Event] = [("personErOpprettet", child)]
        for p, role in pair:
            p["relations"].append(relation(number, "barn", role, born, clock))
            out.append(("endringIFamilierelasjon", p))
        h.roles = ["mother" if d is mother else "father" if d is father else r
                   for d, r in zip(h.docs, h.roles, strict=True)]
        h.docs.append(child)
        h.roles.append("child")
        h.kind = "family"
        return out

    def _name(self, h: Household, day: int, clock: str) -> list[Event]:
        adults = [d for d in h.docs if _bosatt(d) and _age(d, day) >= 18]
        if not adults:
            return []
        doc = self.rng.choice(adults)
        old = _current(doc["names"])
        if old is None:
            return []
        _close(old, day)
        doc["names"].append(name(old["given"], old["middle"], self.b.names.family(), True, day, None, clock))
        return [("endringINavn", doc)]

    def _marriage(self, h: Household, day: int, clock: str) -> list[Event]:
        adults = [d for d, r in zip(h.docs, h.roles, strict=True) if r in ("adult", "mother", "father")]
        if (len(adults) != 2 or not all(_bosatt(d) and _age(d, day) >= 20 for d in adults)
                or any(_value(d, "maritalStatus") not in ("ugift", "skilt") for d in adults)):
            return []
        out = []
        for doc, spouse in ((adults[0], adults[1]), (adults[1], adults[0])):
            _close(_current(doc["maritalStatus"]), day)
            spouse_number = spouse["identifiers"][0]["number"]
            doc["maritalStatus"].append(marital("gift", spouse_number, day, True, None, clock))
            out.append(("endringISivilstand", doc))
        return out

    def _emigration(self, h: Household, day: int, clock: str) -> list[Event]:
        movers = [d for d in h.docs if _bosatt(d)]
        if h.protection != "ugradert" or not movers:
            return []
        abroad = foreign_address(self.rng)
        out = []
        for doc in movers:
            _close(_current(doc["status"]), day)
            doc["status"].append(item({"value": "utflyttet"}, True, day, None, clock))
            for a in doc["addresses"]:
                if a["current"]:
                    _close(a, day)
            doc["addresses"].append(item(address("postUtland", "utenlandsk", lines=list(abroad.lines),
                                                 country=abroad.country), True, day, None, clock))
            out.append(("personErUtflyttet", doc))
        return out

    def _protection(self, h: Household, day: int, clock: str) -> list[Event]:
        members = [d for d in h.docs if _bosatt(d)]
        if h.protection != "ugradert" or not members:
            return []
        r = self.rng.random()
        level = "fortrolig" if r < 0.6 else "klientadresse" if r < 0.85 else "strengtFortrolig"
        post = self.b.places.postbox(self.rng, level) if level == "strengtFortrolig" else None
        out = []
        for doc in members:
            _close(_current(doc["protection"]), day)
            doc["protection"].append(item({"level": level}, True, day, None, clock))
            if post is not None:
                doc["addresses"] = [dated(post, True, day, None, clock)]
            else:
                for a in doc["addresses"]:
                    if a["current"]:
                        a["protection"] = level
            out.append(("endringIAdressebeskyttelse", doc))
        h.protection = level
        return out

    def _number(self, h: Household, day: int, clock: str) -> list[Event]:
        if h.kind != "dnr" or not h.docs:
            return []
        doc = h.docs[0]
        dnr = _current(doc["identifiers"])
        if dnr is None or dnr["kind"] != "dnr" or _value(doc, "status") not in ("midlertidig", "inaktiv"):
            return []
        female = _value(doc, "gender") == "kvinne"
        number = self.b.number(IdKind.FNR, date.fromisoformat(doc["birth"][0]["date"]).toordinal(), female)
        _close(dnr, day)
        dnr["status"] = "opphoert"
        doc["identifiers"].insert(0, identifier(number, "fnr", True, day, None, clock))
        _close(_current(doc["status"]), day)
        doc["status"].append(item({"value": "bosatt"}, True, day, None, clock))
        kommune = self.b.places.pick_kommune(self.rng)
        for a in doc["addresses"]:
            if a["current"]:
                _close(a, day)
        base = self.b.places.street_address(self.rng, "bosted", self.b.places.place(self.rng, kommune))
        doc["addresses"].append(dated(base, True, day, None, clock))
        h.kind, h.kommune, h.roles = "single", kommune, ["adult"]
        return [("endringIIdentifikasjonsnummer", doc)]

