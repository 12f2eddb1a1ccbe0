"""HPR, AR and FLR records for the synthetic population (formats in docs/registers.md).

Input is what the population pass kept: the bosatt residents of each kommune (identity number and the
date they moved to their current address) and, per kommune, a sample of bosatt adults aged 30–66 who
can be made health personnel. Every kommune with residents gets one GP office (legekontor) per ~2,000
residents, at least one, and about one GP per 1,100 residents, at least one per office; each GP has one
FLR contract whose patient list holds every resident of the kommune exactly once across its contracts.
A GP need not live in the kommune of the contract: kommuner without candidates borrow from others, and
only when the population is too small to give every contract its own GP does one GP take a second one
(and a population without a single candidate gets no GP at all).
"""

from __future__ import annotations

import json
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from store import geo
from store.synthetic.places import Places
from store.synthetic.population import Candidate, Y, iso

__all__ = ["RegisterCounts", "Residents", "code", "org_number_valid", "write_registers"]

Rec = dict[str, Any]
_FLR_START = date(2001, 6, 1).toordinal()  # fastlegeordningen
_OPEN_END = "9999-12-31"
_OTHER_PERSONNEL = (("SP", "Sykepleier", 50), ("HF", "Helsefagarbeider", 20), ("FT", "Fysioterapeut", 8),
                    ("LE", "Lege", 8), ("PS", "Psykolog", 5), ("TL", "Tannlege", 5), ("JO", "Jordmor", 4))
_ORG_WEIGHTS = (3, 2, 7, 6, 5, 4, 3, 2)


def code(oid: int, value: str, text: str) -> Rec:
    return {"oid": oid, "value": value, "text": text}


_BUSINESS_TYPE = code(9040, "103", "Privatpraktiserende autorisert helsepersonell")
_INDUSTRY = code(0, "86.211", "Allmenn legetjeneste")
_SERVICE = code(8666, "FL", "Fastlegetjeneste")  # value is a placeholder, see docs/registers.md
_LEGE = code(9060, "LE", "Lege")
_AUTORISASJON = code(7704, "1", "Autorisasjon")
_FULL_REKVISISJON = code(7701, "1", "Full rekvisisjonsrett")
_ALLMENNMEDISIN = code(7426, "1", "Allmennmedisin")
_RES = code(3401, "RES", "Besøksadresse")
_PST = code(3401, "PST", "Postadresse")
_E = {k: code(9044, k, t) for k, t in (("E_EDI", "EDI (Standardisert elektronisk melding)"),
                                       ("E_DS", "Digital sertifikat"), ("E_TLF", "Telefonnummer"),
                                       ("E_EPO", "Epost-adresse"))}


class Residents:
    """The bosatt residents of one kommune, 12 bytes each (a national population's would not fit in memory
    as strings): identity numbers as integers and the date each moved in as an ordinal."""

    __slots__ = ("numbers", "since")

    def __init__(self) -> None:
        self.numbers = array("q")
        self.since = array("i")

    def add(self, number: str, since: str) -> None:
        self.numbers.append(int(number))
        self.since.append(date.fromisoformat(since).toordinal())

    def __len__(self) -> int:
        return len(self.numbers)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return ((f"{n:011d}", iso(o)) for n, o in zip(self.numbers, self.since, strict=True))


def _sex(female: bool) -> Rec:
    return code(3101, "2", "Kvinne") if female else code(3101, "1", "Mann")


def org_number_valid(number: int | str) -> bool:
    s = str(number)
    if len(s) != 9 or not s.isdigit():
        return False
    k = 11 - sum(int(d) * w for d, w in zip(s, _ORG_WEIGHTS, strict=False)) % 11
    return (0 if k == 11 else k) == int(s[8])


@dataclass(frozen=True, slots=True)
class RegisterCounts:
    hpr: int
    offices: int
    gps: int
    contracts: int
    patients: int


class _Ids:
    """Unique, increasing numbers: HER-ids, HPR numbers, contract ids."""

    def __init__(self, rng: random.Random, start: int, step: int) -> None:
        self.rng, self.value, self.step = rng, start, step

    def next(self) -> int:
        self.value += self.rng.randint(1, self.step)
        return self.value


def _dump(out: TextIO, rec: Rec) -> None:
    out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")


class _Registers:
    def __init__(self, rng: random.Random, snapshot: date, places: Places) -> None:
        self.rng, self.places = rng, places
        self.snap = snapshot.toordinal()
        self.her = _Ids(rng, rng.randint(80_000, 150_000), 30)
        self.hpr = _Ids(rng, rng.randint(1_000_000, 1_200_000), 200)
        self.contract = _Ids(rng, rng.randint(1_000_000, 2_000_000), 50)
        self.orgs: set[int] = set()
        self.changed = iso(self.snap - 3) + "T06:00:00Z"

    def org_number(self) -> int:
        while True:
            head = [9] + [self.rng.randrange(10) for _ in range(7)]
            k = 11 - sum(d * w for d, w in zip(head, _ORG_WEIGHTS, strict=False)) % 11
            if k == 10:
                continue
            n = int("".join(map(str, head)) + str(0 if k == 11 else k))
            if n not in self.orgs:
                self.orgs.add(n)
                return n

    def period(self, start: int, end: str | None = None) -> Rec:
        return {"from": iso(start), "to": end}

    def hpr_record(self, c: Candidate, hpr: int, category: Rec, gp: bool) -> Rec:
        rng = self.rng
        auth_from = min(self.snap - 30, c.birth + int(rng.uniform(25, 30) * Y))
        specialities = []
        if gp and rng.random() < 0.8 and auth_from + int(6 * Y) < self.snap:
            spec_from = auth_from + int(rng.uniform(5, 8) * Y)
            specialities.append({"id": hpr * 10 + 2, "type": _ALLMENNMEDISIN,
                                 "valid": self.period(min(spec_from, self.snap - 1))})
        requisition = ([{"id": hpr * 10 + 3, "type": _FULL_REKVISISJON, "valid": self.period(auth_from)}]
                       if category["value"] in ("LE", "TL", "JO") else [])
        return {
            "hprNumber": hpr, "personId": c.person_id, "nin": c.number, "givenName": c.given,
            "middleName": c.middle, "familyName": c.family, "birthDate": iso(c.birth),
            "gender": _sex(c.female),
            "lastUpdated": self.changed,
            "approvals": [{"id": hpr * 10 + 1, "category": category, "authorization": _AUTORISASJON,
                           "valid": self.period(auth_from), "specialities": specialities,
                           "requisitionRights": requisition, "suspensions": []}],
        }

    def office_address(self, kommune: str) -> tuple[Rec, Rec]:
        place = self.places.place(self.rng, kommune)
        number, letter = self.places.house_number(self.rng)
        street = f"{self.places.street(self.rng, place.fylke)} {number}{letter or ''}"
        postnummer = self.rng.choice(place.postnummer)
        res = {"type": _RES, "streetAddress": street, "postbox": None, "postalCode": postnummer,
               "city": place.poststed, "country": "NOR", "lastChanged": self.changed}
        pst = dict(res, type=_PST)
        return res, pst


def _office_names(rng: random.Random, kommune: geo.Kommune, count: int, places: Places) -> list[str]:
    name = kommune.navn.split(" (")[0]
    bydeler = [b.navn for b in geo.bydeler(kommune.nummer)]
    out: list[str] = []
    patterns = ("{} legesenter", "{} legekontor", "Legene i {}", "{} helsehus", "{} legegruppe")
    while len(out) < count:
        if not out and rng.random() < 0.8:
            candidate = f"{name} legesenter"
        else:
            where = rng.choice(bydeler) if bydeler and rng.random() < 0.7 else (
                places.street(rng, kommune.fylkesnummer) if rng.random() < 0.6 else name)
            candidate = rng.choice(patterns).format(where)
        if candidate in out:
            candidate = f"{candidate} {len(out) + 1}"
        out.append(candidate)
    return out


def _certificates(rng: random.Random, subject: str, org: int, start: int) -> list[Rec]:
    certs = []
    for usage in ("encryption", "signing"):
        serial = f"{rng.getrandbits(80):020X}"
        certs.append({
            "usage": usage, "serialNumber": serial, "thumbprint": f"{rng.getrandbits(160):040X}",
            "subject": f"CN={subject}, O={subject}, SERIALNUMBER={org}, C=NO",
            "issuer": "CN=pregbridge synthetic CA - NOT A REAL CERTIFICATE, O=pregbridge demo, C=NO",
            "notBefore": iso(start), "notAfter": iso(start + 3 * 365),
            "ldapUrl": f"ldap://ldap.pregbridge.invalid/dc=pregbridge,dc=invalid?usercertificate;binary?sub?"
                       f"(certificateSerialNumber={serial})",
        })
    return certs


def write_registers(out_dir: Path, rng: random.Random, snapshot: date, places: Places,
                    residents: dict[str, Residents],
                    candidates: dict[str, list[Candidate]]) -> RegisterCounts:
    """Write hpr.jsonl, ar.jsonl and flr.jsonl into ``out_dir``."""
    reg = _Registers(rng, snapshot, places)
    kommuner = [k for k in geo.kommuner() if residents.get(k.nummer)]
    # choose GPs: own kommune first, then borrowed from the leftovers of others
    plan: dict[str, tuple[int, int]] = {}
    chosen: dict[str, list[Candidate]] = {}
    leftovers: list[Candidate] = []
    for k in kommuner:
        n = len(residents[k.nummer])
        offices = max(1, round(n / 2000))
        plan[k.nummer] = (offices, max(offices, round(n / 1100)))
        own = list(candidates.get(k.nummer, ()))
        rng.shuffle(own)
        chosen[k.nummer] = own[: plan[k.nummer][1]]
        leftovers.extend(own[plan[k.nummer][1]:])
    rng.shuffle(leftovers)
    assigned = [c for k in kommuner for c in chosen[k.nummer]]
    for k in kommuner:
        while len(chosen[k.nummer]) < plan[k.nummer][1]:
            if leftovers:
                c = leftovers.pop()
                assigned.append(c)
            elif assigned:  # too few adults in a tiny population: a GP takes a second contract
                c = assigned[len(chosen[k.nummer]) % len(assigned)]
            else:  # not one adult aged 30-66 in the whole population: no GP anywhere
                break
            chosen[k.nummer].append(c)
    kommuner = [k for k in kommuner if chosen[k.nummer]]
    hpr_of: dict[str, Rec] = {}
    contracts = patients = offices_total = 0
    with (open(out_dir / "ar.jsonl", "w", encoding="utf-8", newline="\n") as ar,
          open(out_dir / "flr.jsonl", "w", encoding="utf-8", newline="\n") as flr):
        for k in kommuner:
            gps = chosen[k.nummer]
            n_offices = min(plan[k.nummer][0], len(gps))
            municipality = code(3402, k.nummer, places.poststed(k.nummer))
            names = _office_names(rng, k, n_offices, places)
            office_recs: list[tuple[Rec, list[Candidate]]] = []
            for i, name in enumerate(names):
                office_recs.append((_office(reg, name, municipality, k.nummer), gps[i::n_offices]))
            offices_total += n_offices
            lists: list[tuple[Rec, str]] = []  # (contract, the GP's own number)
            for office, staff in office_recs:
                for rec in _office_records(reg, office, municipality):
                    _dump(ar, rec)
                for c in staff:
                    if c.number not in hpr_of:
                        hpr_of[c.number] = reg.hpr_record(c, reg.hpr.next(), _LEGE, gp=True)
                    hpr = hpr_of[c.number]["hprNumber"]
                    person = _gp_party(reg, office, municipality, c, hpr)
                    _dump(ar, person)
                    lo = max(c.birth + int(31 * Y), date.fromisoformat(office["valid"]["from"]).toordinal())
                    start = reg.rng.randint(min(lo, reg.snap - 30), reg.snap - 30)
                    lists.append(({"contractId": reg.contract.next(), "gpHprNumber": hpr,
                                   "gpPersonId": c.person_id, "gpHerId": person["herId"],
                                   "officeHerId": office["herId"],
                                   "officeOrganizationNumber": office["organizationNumber"],
                                   "kommune": k.nummer,
                                   "maxPatients": 0, "validFrom": iso(start), "validTo": None,
                                   "lastChanged": reg.changed, "patients": []}, c.number))
            patients += _fill_lists(rng, lists, residents[k.nummer], flr)
            contracts += len(lists)
    others = _others(reg, leftovers, sum(len(v) for v in residents.values()))
    with open(out_dir / "hpr.jsonl", "w", encoding="utf-8", newline="\n") as hpr_out:
        for rec in sorted([*hpr_of.values(), *others], key=lambda r: r["hprNumber"]):
            _dump(hpr_out, rec)
    return RegisterCounts(len(hpr_of) + len(others), offices_total, len(hpr_of), contracts, patients)


def _fill_lists(rng: random.Random, lists: list[tuple[Rec, str]], people: Residents, out: TextIO) -> int:
    """Put every resident on one contract's list (not their own) and write the contracts to ``out``.

    The lists are built as integer arrays and turned into JSON one contract at a time, so the largest
    kommune of a national population (Oslo, ~700,000 patients) costs megabytes, not hundreds of them.
    """
    randrange, n = rng.randrange, len(lists)
    own = [int(number) for _, number in lists]
    starts = [date.fromisoformat(contract["validFrom"]).toordinal() for contract, _ in lists]
    chosen = [(array("q"), array("i")) for _ in lists]
    for number, since in zip(people.numbers, people.since, strict=True):
        i = randrange(n)
        if own[i] == number and n > 1:  # not on one's own list
            i = (i + 1) % n
        numbers, valid_from = chosen[i]
        numbers.append(number)
        valid_from.append(max(since, starts[i]))
    for (contract, _), (numbers, valid_from) in zip(lists, chosen, strict=True):
        size = len(numbers)
        contract["maxPatients"] = max(-(-size // 100) * 100, rng.choice((800, 1000, 1200, 1500, 1800)))
        contract["patients"] = [{"personNumber": f"{p:011d}", "validFrom": iso(o)}
                                for p, o in zip(numbers, valid_from, strict=True)]
        _dump(out, contract)
        contract["patients"] = []
    return len(people)


def _office(reg: _Registers, name: str, municipality: Rec, kommune: str) -> Rec:
    rng = reg.rng
    her, org = reg.her.next(), reg.org_number()
    start = rng.randint(_FLR_START, reg.snap - 400)
    res, pst = reg.office_address(kommune)
    slug = f"{her}"
    return {
        "herId": her, "type": "Organization", "name": name, "displayName": name, "active": True,
        "isValidCommunicationParty": True, "municipality": municipality, "parentHerId": -1,
        "parentName": None,
        "parentOrganizationNumber": -1, "parentBusinessType": None, "organizationNumber": org,
        "businessType": _BUSINESS_TYPE, "industryCodes": [_INDUSTRY], "physicalAddresses": [res, pst],
        "electronicAddresses": [
            {"type": _E["E_EDI"], "address": f"legekontor-{slug}@edi.pregbridge.invalid", "inherited": False,
             "lastChanged": reg.changed},
            {"type": _E["E_DS"], "address": "", "inherited": False, "lastChanged": reg.changed},
            {"type": _E["E_TLF"], "address": f"0{rng.randrange(10_000_000):07d}", "inherited": False,
             "lastChanged": reg.changed},
            {"type": _E["E_EPO"], "address": f"post-{slug}@legekontor.pregbridge.invalid", "inherited": False,
             "lastChanged": reg.changed},
        ],
        "certificates": _certificates(rng, name, org, reg.snap - rng.randrange(700)),
        "valid": {"from": iso(start), "to": _OPEN_END}, "lastChanged": reg.changed,
    }


def _office_records(reg: _Registers, office: Rec, municipality: Rec) -> list[Rec]:
    office["electronicAddresses"][1]["address"] = office["certificates"][0]["ldapUrl"]
    inherited = [dict(e, inherited=True) for e in office["electronicAddresses"]]
    service = {
        "herId": reg.her.next(), "type": "Service", "name": "Fastlegetjeneste", "displayName": None,
        "active": True, "isValidCommunicationParty": True, "municipality": municipality,
        "parentHerId": office["herId"], "parentName": office["name"],
        "parentOrganizationNumber": office["organizationNumber"], "parentBusinessType": _BUSINESS_TYPE,
        "code": _SERVICE, "description": f"Fastlegetjeneste ved {office['name']}",
        "locationDescription": None,
        "coverageAreas": [], "physicalAddresses": [dict(a) for a in office["physicalAddresses"]],
        "electronicAddresses": inherited, "valid": dict(office["valid"]), "lastChanged": reg.changed,
    }
    return [office, service]


def _gp_party(reg: _Registers, office: Rec, municipality: Rec, c: Candidate, hpr: int) -> Rec:
    full = " ".join(x for x in (c.given, c.middle, c.family) if x)
    return {
        "herId": reg.her.next(), "type": "Person", "name": full, "displayName": full, "active": True,
        "isValidCommunicationParty": True, "municipality": municipality, "parentHerId": office["herId"],
        "parentName": office["name"], "parentOrganizationNumber": office["organizationNumber"],
        "parentBusinessType": _BUSINESS_TYPE, "title": "Fastlege", "hprNumber": hpr, "personId": c.person_id,
        "nin": c.number,
        "person": {"firstName": c.given, "middleName": c.middle, "lastName": c.family,
                   "birthDate": iso(c.birth), "sex": _sex(c.female)},
        "physicalAddresses": [], "electronicAddresses": [dict(e, inherited=True)
                                                         for e in office["electronicAddresses"][:2]],
        "valid": {"from": office["valid"]["from"], "to": _OPEN_END}, "lastChanged": reg.changed,
    }


def _others(reg: _Registers, leftovers: list[Candidate], resident_count: int) -> list[Rec]:
    """Nurses and other personnel: about 3 per 1,000 residents, from candidates not made GPs."""
    want = min(len(leftovers), max(1, round(resident_count * 0.003)))
    cats = [code(9060, v, t) for v, t, _ in _OTHER_PERSONNEL]
    weights = [w for _, _, w in _OTHER_PERSONNEL]
    out = []
    for c in sorted(leftovers[:want], key=lambda c: c.person_id):
        out.append(reg.hpr_record(c, reg.hpr.next(), reg.rng.choices(cats, weights=weights)[0], gp=False))
    return out
