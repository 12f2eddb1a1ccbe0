"""Households and person documents of the synthetic population (docs/registers.md, "How the demo
population is built").

:class:`Builder` yields :class:`Household` objects one at a time, each holding finished person documents
(docs/data-formats.md) plus what the registers and the change feed need to know about them, so the
caller can stream the documents to disk and keep only that little. Dates are handled as proleptic
ordinals (``date.toordinal``) and turned into ISO strings once, through a cache.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from store.identity import IdKind
from store.model import ADDRESS_ORDER
from store.synthetic.names import ForeignNames, NamePicker
from store.synthetic.numbers import NumberBook
from store.synthetic.places import Places, address, foreign_address

__all__ = ["Builder", "Candidate", "Household", "address", "dated", "identifier", "item", "iso", "marital",
           "name", "person_doc", "relation"]

Doc = dict[str, Any]
SKATT = "Skatteetaten"
NHN = "NHN"
Y = 365.25

# Regular households: kind -> share of regular households; children per family: count -> share.
_REGULAR = (("single", 0.40), ("couple", 0.28), ("family", 0.24), ("singleParent", 0.08))
_KIDS = ((1, 0.35), (2, 0.42), (3, 0.17), (4, 0.06))
_MEAN_KIDS = sum(k * w for k, w in _KIDS)
_MEAN_REGULAR = sum(w * {"single": 1, "couple": 2, "family": 2 + _MEAN_KIDS,
                         "singleParent": 1 + _MEAN_KIDS}[k] for k, w in _REGULAR)
# One-person special households: kind -> share of *persons* wanted.
_SPECIAL = (("dnr", 0.04), ("utflyttet", 0.01), ("doed", 0.008), ("fh", 0.0005))
_S = sum(w for _, w in _SPECIAL)
_P_SPECIAL = _S * _MEAN_REGULAR / (1 - _S + _S * _MEAN_REGULAR)  # households drawn as specials
_HOUSEHOLD_KINDS = [k for k, _ in _SPECIAL] + [k for k, _ in _REGULAR]
_HOUSEHOLD_WEIGHTS = [_P_SPECIAL * w / _S for _, w in _SPECIAL] + [(1 - _P_SPECIAL) * w for _, w in _REGULAR]
_P_REPLACED_DNR = 0.0045  # per regular adult: had a D-nummer, now a fødselsnummer (~0.3 % of persons)
_P_PREVIOUS_BOSTED = 0.175
_P_MAIDEN_NAME = 0.37  # married woman in a mixed-sex marriage who took her husband's family name
_AGES = list(range(18, 102))
_AGE_CUM = list(itertools.accumulate(
    1.0 if a < 30 else 1.05 if a < 50 else 1.0 if a < 65 else 0.85 if a < 75 else 0.55 if a < 85
    else 0.2 if a < 95 else 0.03 for a in _AGES))


_ADDRESS_RANK = {t: i for i, t in enumerate(ADDRESS_ORDER)}


def in_store_order(doc: Doc) -> Doc:
    """``doc`` with its addresses in the order the store keeps them (store.model.ADDRESS_ORDER, stable within a
    type), so that a file round-trips through the store unchanged; sorts in place and returns ``doc``."""
    doc["addresses"].sort(key=lambda a: _ADDRESS_RANK[a["type"]])
    return doc


@functools.cache
def iso(ordinal: int) -> str:
    return date.fromordinal(ordinal).isoformat()


def item(fields: Doc, current: bool, valid_from: int | None, valid_to: int | None, clock: str,
         source: str = SKATT) -> Doc:
    """Add the five META keys to ``fields`` (dates as ordinals; ``clock`` is the ``THH:MM:SSZ`` part)."""
    fields["current"] = current
    fields["validFrom"] = None if valid_from is None else iso(valid_from)
    fields["validTo"] = None if valid_to is None else iso(valid_to)
    fields["registeredAt"] = None if valid_from is None else iso(valid_from) + clock
    fields["source"] = source
    return fields


def marital(value: str, spouse: str | None, when: int | None, current: bool, valid_to: int | None,
            clock: str) -> Doc:
    """A maritalStatus item valid from ``when`` (ordinal; the birth for ``ugift``)."""
    when_iso = None if value == "ugift" or when is None else iso(when)
    fields = {"value": value, "spouse": spouse, "date": when_iso}
    return item(fields, current, when, valid_to, clock)


def dated(base: Doc, current: bool, valid_from: int, valid_to: int | None, clock: str) -> Doc:
    """A copy of an address ``base`` with its own movedAt and META."""
    d = dict(base)
    d["lines"] = list(base["lines"])
    d["movedAt"] = iso(valid_from) if base["type"] in ("bosted", "opphold") else None
    return item(d, current, valid_from, valid_to, clock)


def clock_of(pid: int) -> str:
    """A fixed, plausible time of day for a person's registrations (no RNG needed)."""
    return f"T{7 + pid % 9:02d}:{pid * 7 % 60:02d}:{pid * 13 % 60:02d}Z"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A bosatt adult who can be made a GP or other health personnel."""

    person_id: str
    number: str
    given: str
    middle: str | None
    family: str
    birth: int  # ordinal
    female: bool
    kommune: str


@dataclass(slots=True)
class Household:
    kind: str  # single, couple, family, singleParent, dnr, utflyttet, doed, fh
    kommune: str | None  # where it lives (also for strengtFortrolig, whose documents hide it)
    protection: str
    docs: list[Doc]
    roles: list[str]  # per doc: adult, mother, father, child, other
    residents: list[tuple[str, str]] = field(default_factory=list)  # (number, since) of bosatt members
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(slots=True)
class _Spec:
    female: bool
    birth: int
    given: str
    family: str
    role: str
    middle: str | None = None
    maiden: str | None = None  # family name before marriage, when it changed at the wedding
    foreign: ForeignNames | None = None
    dnr_from: int | None = None  # replaced D-nummer: issued then, replaced by the FNR at fnr_from
    fnr_from: int | None = None
    number: str = ""
    dnr: str | None = None
    pid: int = 0
    marital: list[Doc] = field(default_factory=list)
    relations: list[Doc] = field(default_factory=list)


class Builder:
    """Makes households (:meth:`households`); person ids count on from ``next_id``."""

    def __init__(self, rng: random.Random, places: Places, snapshot: date, book: NumberBook) -> None:
        self.rng, self.places, self.book = rng, places, book
        self.names = NamePicker(rng)
        self.snap = snapshot.toordinal()
        self.next_id = 1

    # -- small pieces ------------------------------------------------------------------------------

    def number(self, kind: IdKind, birth: int | None, female: bool | None = None) -> str:
        """An unused number (:class:`store.synthetic.numbers.NumberBook`; raises its ``NumbersExhausted``)."""
        return self.book.take(kind, birth, self.rng, female)

    def adult_age(self, lo: int, hi: int) -> int:
        choices = self.rng.choices
        while True:
            a = choices(_AGES, cum_weights=_AGE_CUM)[0]
            if lo <= a <= hi:
                return a

    def birth_for_age(self, age: int, at: int | None = None) -> int:
        at = self.snap if at is None else at
        # no floor: births spread over every day of the year they fall in (a floor date once piled up the
        # oldest persons on one day and ran out of its ~200 numbers per gender at national size)
        return at - int(age * Y) - self.rng.randrange(365)

    def between(self, lo: int, hi: int) -> int:
        return lo if hi <= lo else self.rng.randint(lo, hi)

    def _new_pid(self) -> int:
        pid, self.next_id = self.next_id, self.next_id + 1
        return pid

    # -- households --------------------------------------------------------------------------------

    def households(self, total: int) -> Iterator[Household]:
        made = 0
        while made < total:
            kind = self.rng.choices(_HOUSEHOLD_KINDS, weights=_HOUSEHOLD_WEIGHTS)[0]
            left = total - made
            if kind in ("dnr", "utflyttet", "doed", "fh"):
                h = self._special(kind)
            else:
                kids = self.rng.choices([k for k, _ in _KIDS], weights=[w for _, w in _KIDS])[0]
                if kind == "couple" and left < 2:
                    kind = "single"
                if kind in ("family", "singleParent"):
                    adults = 2 if kind == "family" else 1
                    kids = min(kids, left - adults)
                    if kids < 1:
                        kind = "couple" if left >= 2 else "single"
                h = self._regular(kind, kids)
            made += len(h.docs)
            yield h

    def _regular(self, kind: str, n_kids: int) -> Household:
        rng, names = self.rng, self.names
        kommune = self.places.pick_kommune(rng)
        place = self.places.place(rng, kommune)
        r = rng.random()
        # per mille of all persons, and only regular households (~94 % of persons) are protected
        protection = ("klientadresse" if r < 0.00106 else "fortrolig" if r < 0.00319
                      else "strengtFortrolig" if r < 0.00425 else "ugradert")
        specs: list[_Spec] = []
        married = False
        if kind in ("family", "singleParent"):
            young = self.snap - rng.randrange(18 * 365)
            kid_births = [young]
            for _ in range(n_kids - 1):
                nxt = kid_births[-1] - rng.randrange(400, 6 * 365)
                if self.snap - nxt > 25 * 365:
                    break
                kid_births.append(nxt)
            eldest = kid_births[-1]
            g = self.between(max(int(20 * Y), int(18 * Y) + (young - eldest) + 1), int(44 * Y))
            mother = young - g
            father = mother - rng.randint(int(-3 * Y), int(8 * Y))
            father = max(min(father, eldest - int(18 * Y) - 1), young - int(45 * Y) + 1)
            mfam, ffam = names.family(), names.family()
            if kind == "family" or rng.random() < 0.8:
                specs.append(_Spec(True, mother, names.given(True, int(iso(mother)[:4])), mfam, "mother"))
            if kind == "family" or not specs:
                specs.append(_Spec(False, father, names.given(False, int(iso(father)[:4])), ffam, "father"))
            married = kind == "family" and rng.random() < 0.6 and self.snap - max(mother, father) > 21 * 365
            if married and rng.random() < _P_MAIDEN_NAME:
                specs[0].maiden, specs[0].family = mfam, ffam
            kid_family = specs[-1].family if (specs[0].maiden or rng.random() < 0.6) else specs[0].family
            for b in kid_births:
                female = rng.random() < 0.49
                middle = mfam if mfam != kid_family and rng.random() < 0.3 else None
                specs.append(_Spec(female, b, names.given(female, int(iso(b)[:4])), kid_family, "child",
                                   middle=middle))
        else:
            age = self.adult_age(18, 101) if kind == "single" else self.adult_age(20, 95)
            female = rng.random() < 0.5
            b = self.birth_for_age(age)
            specs.append(_Spec(female, b, names.given(female, int(iso(b)[:4])), names.family(), "adult"))
            if kind == "couple":
                age2 = min(101, max(18, age + rng.randint(-6, 6)))
                female2 = (not female) if rng.random() < 0.97 else female
                b2 = self.birth_for_age(age2)
                specs.append(_Spec(female2, b2, names.given(female2, int(iso(b2)[:4])), names.family(),
                                   "adult"))
                married = rng.random() < 0.55 and self.snap - max(b, b2) > 21 * 365
                wife = specs[0] if specs[0].female and not specs[1].female else (
                    specs[1] if specs[1].female and not specs[0].female else None)
                if married and wife is not None and rng.random() < _P_MAIDEN_NAME:
                    other = specs[1] if wife is specs[0] else specs[0]
                    wife.maiden, wife.family = wife.family, other.family
        adults = [s for s in specs if s.role != "child"]
        for s in adults:
            if s.middle is None and rng.random() < 0.08:
                s.middle = names.family()
            if rng.random() < _P_REPLACED_DNR and self.snap - s.birth > int(21 * Y):
                s.foreign = names.foreign()
                s.given, s.family = names.foreign_person(s.foreign, s.female)
                s.maiden = None
                s.dnr_from = self.between(max(s.birth + int(18 * Y), date(2000, 1, 1).toordinal()),
                                          self.snap - 800)
                s.fnr_from = self.between(s.dnr_from + 180, self.snap - 30)
        for s in specs:
            s.pid = self._new_pid()
            s.number = self.number(IdKind.FNR, s.birth, s.female)
            if s.dnr_from is not None:
                s.dnr = self.number(IdKind.DNR, s.birth, s.female)
        wedding = 0
        if married:
            wedding = self.between(max(s.birth for s in adults) + int(20 * Y), self.snap - 1)
        for s in specs:
            s.marital = self._marital(s, married, wedding, adults)
        self._relate(specs)
        # where and since when they live here
        adult18 = max(s.birth for s in adults) + int(18 * Y)
        moved = self.between(max(adult18, self.snap - int(40 * Y)), self.snap - 1)
        base = (self.places.postbox(rng, protection) if protection == "strengtFortrolig"
                else self.places.street_address(rng, "bosted", place, protection))
        if protection != "strengtFortrolig" and len(specs) == 1 and rng.random() < 0.01:
            base = address("bosted", "ukjentBosted", kommune=kommune, protection=protection)
        prev_base, prev_from = None, 0
        if protection != "strengtFortrolig" and rng.random() < _P_PREVIOUS_BOSTED and moved - adult18 > 60:
            elsewhere = self.places.place(rng, self.places.pick_kommune(rng))
            prev_base = self.places.street_address(rng, "bosted", place if rng.random() < 0.5 else elsewhere)
            prev_from = self.between(adult18, moved - 30)
        p_date = self.between(self.snap - int(10 * Y), self.snap - 1) if protection != "ugradert" else 0
        h = Household(kind, kommune, protection, [], [])
        for s in specs:
            h.docs.append(self._regular_doc(s, base, moved, (prev_base, prev_from), protection, p_date,
                                            kommune))
            h.roles.append(s.role)
            since = h.docs[-1]["addresses"][-1]["validFrom"]
            h.residents.append((s.number, since))
            if protection == "ugradert" and s.role != "child" and 30 <= (self.snap - s.birth) / Y < 67:
                h.candidates.append(Candidate(f"p{s.pid:09d}", s.number, s.given, s.middle, s.family, s.birth,
                                              s.female, kommune))
        return h

    def _marital(self, s: _Spec, married: bool, wedding: int, adults: list[_Spec]) -> list[Doc]:
        rng, clock = self.rng, clock_of(s.pid)
        if s.role == "child" or self.snap - s.birth < int(20 * Y):
            return [marital("ugift", None, s.birth, True, None, clock)]
        if married:
            spouse = next(a for a in adults if a is not s)
            return [marital("ugift", None, s.birth, False, wedding, clock),
                    marital("gift", spouse.number, wedding, True, None, clock)]
        age = (self.snap - s.birth) / Y
        r = rng.random()
        if age < 32 or r < 0.5 or len(adults) > 1 and r < 0.8:
            return [marital("ugift", None, s.birth, True, None, clock)]
        m = self.between(s.birth + int(22 * Y), self.snap - int(2 * Y))
        end = self.between(m + 365, self.snap - 1)
        value = "enkeEllerEnkemann" if age > 70 and rng.random() < 0.6 else "skilt"
        return [marital("ugift", None, s.birth, False, m, clock), marital("gift", None, m, False, end, clock),
                marital(value, None, end, True, None, clock)]

    @staticmethod
    def _relate(specs: list[_Spec]) -> None:
        parents = [s for s in specs if s.role in ("mother", "father")]
        for child in (s for s in specs if s.role == "child"):
            for p in parents:
                role = "mor" if p.role == "mother" else "far"
                child.relations.append(relation(p.number, role, "barn", child.birth, clock_of(child.pid)))
                p.relations.append(relation(child.number, "barn", role, child.birth, clock_of(p.pid)))

    def _regular_doc(self, s: _Spec, base: Doc, moved: int, previous: tuple[Doc | None, int],
                     protection: str, p_date: int, kommune: str) -> Doc:
        clock = clock_of(s.pid)
        prev_base, prev_from = previous
        identifiers = [identifier(s.number, "fnr", True, s.fnr_from or s.birth, None, clock)]
        status = [item({"value": "bosatt"}, True, s.fnr_from or s.birth, None, clock)]
        addresses: list[Doc] = []
        start = max(s.birth, s.fnr_from or 0)
        if s.dnr is not None and s.dnr_from is not None and s.fnr_from is not None:
            identifiers.append(identifier(s.dnr, "dnr", False, s.dnr_from, s.fnr_from, clock))
            status.insert(0, item({"value": "midlertidig"}, False, s.dnr_from, s.fnr_from, clock))
        if s.dnr_from is not None and s.fnr_from is not None and protection != "strengtFortrolig":
            opphold = self.places.street_address(self.rng, "opphold", self.places.place(self.rng, kommune))
            addresses.append(dated(opphold, False, s.dnr_from, s.fnr_from, clock))
        since = max(start, p_date) if protection == "strengtFortrolig" else max(start, moved)
        if prev_base is not None and max(start, prev_from) < moved:
            addresses.append(dated(prev_base, False, max(start, prev_from), moved, clock))
        addresses.append(dated(base, True, since, None, clock))
        if protection != "ugradert" and p_date > s.birth:
            prot = [item({"level": "ugradert"}, False, s.birth, p_date, clock),
                    item({"level": protection}, True, p_date, None, clock)]
        else:
            prot = [item({"level": protection}, True, s.birth, None, clock)]
        names = [name(s.given, s.middle, s.family, True, s.birth, None, clock)]
        if s.maiden is not None:
            wed = date.fromisoformat(s.marital[-1]["date"]).toordinal()
            names = [name(s.given, s.middle, s.maiden, False, s.birth, wed, clock),
                     name(s.given, s.middle, s.family, True, wed, None, clock)]
        foreign = s.foreign.country if s.foreign else None
        birth_kommune = None if foreign else (kommune if self.rng.random() < 0.6 or s.role == "child"
                                              else self.places.pick_kommune(self.rng))
        citizenship = [item({"country": foreign or "NOR", "acquired": None}, True, s.birth, None, clock)]
        return person_doc(s.pid, identifiers, names, s.birth, birth_kommune, foreign or "NOR", s.female,
                          status, [], addresses, prot, s.marital, citizenship, s.relations, clock)

    def _special(self, kind: str) -> Household:
        rng, names, snap = self.rng, self.names, self.snap
        pid = self._new_pid()
        clock = clock_of(pid)
        female = rng.random() < 0.5
        source = NHN if kind == "fh" else SKATT
        foreign = names.foreign() if kind in ("dnr", "fh") and (kind == "dnr" or rng.random() < 0.5) else None
        died = self.between(snap - int(10 * Y), snap - 1)
        if kind == "doed":
            lo, hi = (55, 101) if rng.random() < 0.9 else (18, 54)
        else:
            lo, hi = (18, 70) if kind != "utflyttet" else (20, 80)
        birth = self.birth_for_age(self.adult_age(lo, hi), died if kind == "doed" else None)
        if foreign is not None:
            given, family = names.foreign_person(foreign, female)
        else:
            given, family = names.given(female, int(iso(birth)[:4])), names.family()
        kommune = self.places.pick_kommune(rng)
        place = self.places.place(rng, kommune)

        def here(type_: str) -> Doc:
            return self.places.street_address(rng, type_, place)

        marriage = [marital("ugift", None, birth, True, None, clock)]
        status: list[Doc]
        death: list[Doc] = []
        addresses: list[Doc] = []
        citizenship = [item({"country": foreign.country if foreign else "NOR", "acquired": None}, True, birth,
                            None, clock)]
        if kind == "dnr":
            number = self.number(IdKind.DNR, birth, female)
            issued = self.between(max(birth + int(18 * Y), date(2008, 1, 1).toordinal()), snap - 20)
            ident = identifier(number, "dnr", True, issued, None, clock)
            marriage = [marital("uoppgitt", None, issued, True, None, clock)]
            if snap - issued > int(5 * Y) and rng.random() < 0.6:  # a D-nummer lapses after five years
                lapsed = issued + int(5 * Y)
                status = [item({"value": "midlertidig"}, False, issued, lapsed, clock),
                          item({"value": "inaktiv"}, True, lapsed, None, clock)]
                addresses.append(dated(here("post"), True, issued, None, clock))
            else:
                status = [item({"value": "midlertidig"}, True, issued, None, clock)]
                type_ = "opphold" if rng.random() < 0.7 else "post"
                addresses.append(dated(here(type_), True, issued, None, clock))
        elif kind == "fh":
            number = self.number(IdKind.FH, None)
            issued = self.between(date(2019, 1, 1).toordinal(), snap - 1)
            ident = identifier(number, "fh", True, issued, None, clock, NHN)
            status = [item({"value": "aktiv"}, True, issued, None, clock, NHN)]
            addresses.append(item(here("opphold"), True, issued, None, clock, NHN))
            marriage, citizenship = [], []
        else:
            number = self.number(IdKind.FNR, birth, female)
            ident = identifier(number, "fnr", True, birth, None, clock)
            end = died if kind == "doed" else self.between(birth + int(19 * Y), snap - 1)
            moved = min(self.between(birth + int(18 * Y), end - 30), end - 1)
            addresses.append(dated(here("bosted"), False, moved, end, clock))
            status = [item({"value": "bosatt"}, False, birth, end, clock),
                      item({"value": "doed" if kind == "doed" else "utflyttet"}, True, end, None, clock)]
            if kind == "doed":
                death = [item({"date": iso(died)}, True, died, None, clock)]
                if (died - birth) / Y > 60 and rng.random() < 0.6:
                    widowed = died - 400
                    marriage = [marital("ugift", None, birth, False, widowed, clock),
                                marital("enkeEllerEnkemann", None, widowed, True, None, clock)]
            else:
                abroad = foreign_address(rng)
                addresses.append(item(address("postUtland", "utenlandsk", lines=list(abroad.lines),
                                              country=abroad.country), True, end, None, clock))
        prot = [item({"level": "ugradert"}, True, birth, None, clock, source)]
        doc = person_doc(pid, [ident], [name(given, None, family, True, birth, None, clock, source)], birth,
                         None if foreign else kommune, foreign.country if foreign else "NOR", female, status,
                         death, addresses, prot, marriage, citizenship, [], clock, source)
        return Household(kind, None, "ugradert", [doc], ["other"])


def identifier(number: str, kind: str, current: bool, valid_from: int, valid_to: int | None, clock: str,
               source: str = SKATT) -> Doc:
    """An identifiers item: in use while current, ``opphoert`` once replaced."""
    return item({"number": number, "kind": kind, "status": "iBruk" if current else "opphoert"}, current,
                valid_from, valid_to, clock, source)


def name(given: str, middle: str | None, family: str, current: bool, valid_from: int, valid_to: int | None,
         clock: str, source: str = SKATT) -> Doc:
    fields = {"given": given, "middle": middle, "family": family}
    return item(fields, current, valid_from, valid_to, clock, source)


def relation(number: str, related_role: str, my_role: str, valid_from: int, clock: str) -> Doc:
    return item({"relatedNumber": number, "relatedRole": related_role, "myRole": my_role}, True, valid_from,
                None, clock)


def person_doc(pid: int, identifiers: list[Doc], names: list[Doc], birth: int, birth_kommune: str | None,
               birth_country: str, female: bool, status: list[Doc], death: list[Doc], addresses: list[Doc],
               protection: list[Doc], marital: list[Doc], citizenship: list[Doc], relations: list[Doc],
               clock: str, source: str = SKATT) -> Doc:
    b = iso(birth)
    return {
        "personId": f"p{pid:09d}",
        "identifiers": identifiers,
        "names": names,
        "birth": [item({"date": b, "year": int(b[:4]), "place": None, "kommune": birth_kommune,
                        "country": birth_country}, True, birth, None, clock, source)],
        "gender": [item({"value": "kvinne" if female else "mann"}, True, birth, None, clock, source)],
        "status": status,
        "death": death,
        "addresses": addresses,
        "protection": protection,
        "maritalStatus": marital,
        "citizenship": citizenship,
        "relations": relations,
    }
