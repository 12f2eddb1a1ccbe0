"""Synthetic places and addresses: street names, postnummer/poststed, house numbers, bruksenheter,
kommune weights, and the address dictionaries of person documents.

We ship no licensed postnummer register, so postnummer and poststed in demo data are **synthetic**
(docs/registers.md): every fylke gets a 4-digit range shaped like the real one (Oslo 0150–1299, Akershus
1300–1499, …, Finnmark 9500–9999), the range is cut into equal blocks, one per kommune in number order,
and an address takes one of a handful of codes from its kommune's block (in Oslo, Bergen, Trondheim and
Stavanger the block is cut again per bydel). The poststed is the kommune name upper-cased, without the
"(Fylke)" suffix that tells Herøy from Herøy. Codes can therefore coincide with real postnummer that
belong to another place; they are plausible, not true.

Kommune weights are rough: approximate 2024 populations (general knowledge, rounded) for about seventy
larger kommuner, and a deterministic 1,500–11,500 for every other kommune. They only steer where
synthetic households live; they are not statistics.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

from store import geo

__all__ = ["ForeignAddress", "Place", "Places", "address", "foreign_address"]

# fylkesnummer -> (first, last) postnummer of the synthetic range
_FYLKE_POSTNUMMER = {
    "03": (150, 1299), "32": (1300, 1499), "31": (1500, 1899), "34": (2000, 2999), "39": (3100, 3299),
    "33": (3300, 3699), "40": (3700, 3999), "11": (4000, 4399), "42": (4400, 4999), "46": (5000, 5999),
    "15": (6000, 6699), "50": (7000, 7999), "18": (8000, 8999), "55": (9000, 9499), "56": (9500, 9999),
}
_POP = {
    "0301": 717_000, "4601": 291_000, "5001": 214_000, "1103": 149_000, "3201": 131_000, "4204": 116_000,
    "3301": 103_000, "3203": 97_000, "3205": 92_000, "3107": 85_000, "1108": 83_000, "5501": 78_000,
    "3907": 65_000, "3207": 62_000, "3105": 59_000, "3905": 58_000, "1508": 58_000, "4003": 56_000,
    "1804": 53_000, "3103": 51_000, "3909": 48_000, "3222": 48_000, "4203": 46_000, "3209": 42_000,
    "4626": 39_000, "1106": 38_000, "4001": 37_000, "3411": 35_000, "3403": 32_000, "1506": 32_000,
    "3407": 31_000, "3305": 31_000, "3101": 31_000, "4627": 30_000, "4631": 30_000, "3405": 29_000,
    "1124": 28_000, "3303": 28_000, "3911": 28_000, "3901": 28_000, "3240": 27_000, "1833": 26_000,
    "4624": 26_000, "5035": 25_000, "5503": 25_000, "3232": 25_000, "1505": 24_000, "5006": 24_000,
    "4205": 23_000, "5601": 21_000, "3420": 21_000, "3218": 21_000, "1120": 20_000, "3212": 20_000,
    "1119": 19_000, "3216": 19_000, "3224": 19_000, "3226": 18_000, "3401": 18_000, "5028": 17_000,
    "4602": 17_000, "3214": 16_000, "5031": 15_000, "3238": 15_000, "5007": 15_000, "5038": 15_000,
    "1127": 11_000, "5603": 11_000,
}
_CITY_THRESHOLD = 45_000  # kommuner above this get apartments (bruksenheter) more often

_PREFIXES = (
    "Kirke Skole Fjell Stor Lille Bjørke Furu Gran Løkke Sjø Strand Bakke Solbakke Eike Rogne Linde Hage "
    "Mølle Sag Stasjons Preste Kongs Dronning Havne Brygge Nord Sør Øst Vest Elve Bekke Skogs Myr Eng Åker "
    "Tun Løvås Bjørne Ulve Reve Hjorte Ørne Tårn Torg Park Slotts Meieri Post Smie Skipper Los Fyr Kløver "
    "Blåbær Tyttebær Multe Rose Syrin Hegg Ospe Selje Lyng Berg Dal Haug Nes Vik Holme Øy Fosse Kvern "
    "Tømmer Lin Humle Sol Måne Stjerne Lerke Trost Svale Skjære Rype Ekorn Hasle Alm Lønne Einer"
).split()
_SUFFIXES_BOKMAL = (("veien", 30), ("gata", 18), ("stien", 5), ("bakken", 5), ("lia", 4), ("svingen", 4),
                    ("tunet", 3), ("åsen", 3), ("haugen", 2), ("jordet", 2), ("kroken", 2), ("ringen", 2),
                    ("grenda", 2), ("toppen", 2), ("plassen", 1))
_SUFFIXES_NYNORSK = (("vegen", 30), ("gata", 10), ("stigen", 5), ("bakken", 5), ("lia", 4), ("svingen", 4),
                     ("tunet", 4), ("åsen", 3), ("haugen", 2), ("jordet", 2), ("kroken", 2), ("ringen", 2),
                     ("grenda", 2), ("toppen", 2), ("plassen", 1))
_NYNORSK_FYLKER = frozenset({"46", "15", "50"})
_LETTERS = "ABCDE"


_ADDRESS_KEYS = ("type", "form", "street", "houseNumber", "houseLetter", "unit", "co", "gardsnummer",
                 "bruksnummer", "festenummer", "lines", "country", "postnummer", "poststed", "kommune",
                 "bydel", "protection", "movedAt")


def address(type_: str, form: str, **fields: Any) -> dict[str, Any]:
    """An address without META, keys in the order of docs/data-formats.md; ``fields`` by document key."""
    d: dict[str, Any] = dict.fromkeys(_ADDRESS_KEYS)
    d["type"], d["form"], d["lines"], d["protection"] = type_, form, [], "ugradert"
    d.update(fields)
    return d


@dataclass(frozen=True, slots=True)
class Place:
    """Where a household lives: one kommune, optionally one bydel."""

    kommune: str
    fylke: str
    poststed: str
    bydel: str | None
    postnummer: tuple[str, ...]  # the codes addresses here draw from
    city: bool


@dataclass(frozen=True, slots=True)
class ForeignAddress:
    country: str
    lines: tuple[str, ...]


def _poststed(name: str) -> str:
    return name.split(" (")[0].upper()


def _weight(k: geo.Kommune) -> int:
    return _POP.get(k.nummer, 1_500 + (int(k.nummer) * 7919 % 11) * 1_000)


def _codes(first: int, last: int, want: int) -> tuple[str, ...]:
    """Up to ``want`` evenly spaced 4-digit codes in [first, last]."""
    n = max(1, min(want, last - first + 1))
    step = (last - first + 1) / n
    return tuple(f"{first + int(i * step):04d}" for i in range(n))


class Places:
    """All kommuner with their weights and synthetic postnummer; picks places and street addresses."""

    def __init__(self) -> None:
        kommuner = geo.kommuner()
        by_fylke: dict[str, list[geo.Kommune]] = {}
        for k in kommuner:
            by_fylke.setdefault(k.fylkesnummer, []).append(k)
        blocks: dict[str, tuple[int, int]] = {}
        for fylke, ks in by_fylke.items():
            first, last = _FYLKE_POSTNUMMER[fylke]
            size = (last - first + 1) // len(ks)
            for i, k in enumerate(ks):
                blocks[k.nummer] = (first + i * size, first + (i + 1) * size - 1)
        self.kommuner = kommuner
        self.weights = [_weight(k) for k in kommuner]
        self._cum = list(itertools.accumulate(self.weights))
        self._places: dict[str, list[Place]] = {}
        for k in kommuner:
            first, last = blocks[k.nummer]
            name, city = _poststed(k.navn), _weight(k) >= _CITY_THRESHOLD
            bydeler = geo.bydeler(k.nummer)
            if bydeler:
                size = (last - first + 1) // len(bydeler)
                self._places[k.nummer] = [
                    Place(k.nummer, k.fylkesnummer, name, b.nummer,
                          _codes(first + i * size, first + (i + 1) * size - 1, 6), True)
                    for i, b in enumerate(bydeler)
                ]
            else:
                want = 2 + min(10, _weight(k) // 10_000)
                self._places[k.nummer] = [Place(k.nummer, k.fylkesnummer, name, None,
                                                _codes(first, last, want), city)]

    def pick_kommune(self, rng: random.Random) -> str:
        return rng.choices(self.kommuner, cum_weights=self._cum)[0].nummer

    def place(self, rng: random.Random, kommune: str) -> Place:
        places = self._places[kommune]
        return places[0] if len(places) == 1 else rng.choice(places)

    def poststed(self, kommune: str) -> str:
        return self._places[kommune][0].poststed

    def postnummer(self, kommune: str) -> str:
        """The first synthetic code of the kommune (used for postboks addresses)."""
        return self._places[kommune][0].postnummer[0]

    def street_address(self, rng: random.Random, type_: str, place: Place,
                       protection: str = "ugradert") -> dict[str, Any]:
        """An address of ``type_`` at ``place``: a vegadresse (bosted: 3 % matrikkeladresse)."""
        common = {"postnummer": rng.choice(place.postnummer), "poststed": place.poststed,
                  "kommune": place.kommune, "bydel": place.bydel, "protection": protection}
        if type_ == "bosted" and rng.random() < 0.03:
            return address(type_, "matrikkeladresse", gardsnummer=rng.randint(1, 220),
                           bruksnummer=rng.randint(1, 300),
                           festenummer=rng.randint(1, 9) if rng.random() < 0.05 else None, **common)
        number, letter = self.house_number(rng)
        return address(type_, "vegadresse", street=self.street(rng, place.fylke), houseNumber=number,
                       houseLetter=letter, unit=self.unit(rng, place.city), **common)

    def postbox(self, rng: random.Random, protection: str) -> dict[str, Any]:
        """The postal address of a strengt fortrolig person: a box in Tromsø, no kommune of residence."""
        return address("post", "postboks", lines=[f"Postboks {rng.randint(1000, 9999)}"],
                       postnummer=self.postnummer("5501"), poststed=self.poststed("5501"),
                       protection=protection)

    @staticmethod
    def street(rng: random.Random, fylke: str) -> str:
        suffixes = _SUFFIXES_NYNORSK if fylke in _NYNORSK_FYLKER else _SUFFIXES_BOKMAL
        suffix = rng.choices([s for s, _ in suffixes], weights=[w for _, w in suffixes])[0]
        prefix = rng.choice(_PREFIXES)
        if prefix.endswith(suffix[0]) and suffix[0] in "aeiouyæøå":
            prefix = prefix[:-1]
        return prefix + suffix

    @staticmethod
    def house_number(rng: random.Random) -> tuple[int, str | None]:
        number = 1 + int(rng.random() ** 2 * 140)
        letter = rng.choice(_LETTERS) if rng.random() < 0.08 else None
        return number, letter

    @staticmethod
    def unit(rng: random.Random, city: bool) -> str | None:
        """A bruksenhetsnummer (H + floor + flat, e.g. H0203) for flats, else None."""
        if rng.random() >= (0.55 if city else 0.12):
            return None
        return f"H{rng.randint(1, 7):02d}{rng.randint(1, 6):02d}"


# Foreign postal addresses for emigrants: (country, street, postcode + city samples)
_FOREIGN = (
    ("SWE", ("Storgatan", "Kungsgatan", "Drottninggatan", "Vasagatan"),
     ("111 52 Stockholm", "411 38 Göteborg", "211 22 Malmö", "753 20 Uppsala")),
    ("DNK", ("Vestergade", "Nørregade", "Østergade"), ("1456 København K", "8000 Aarhus C", "5000 Odense C")),
    ("GBR", ("High Street", "Station Road", "Church Lane"), ("London SE1 7PB", "Aberdeen AB10 1AB")),
    ("ESP", ("Calle Mayor", "Avenida del Mar", "Calle Real"), ("03001 Alicante", "29001 Málaga")),
    ("USA", ("Main Street", "Lake Avenue", "Oak Street"), ("Minneapolis, MN 55401", "Seattle, WA 98101")),
    ("DEU", ("Hauptstraße", "Bahnhofstraße", "Gartenstraße"), ("10115 Berlin", "20095 Hamburg")),
    ("POL", ("ul. Długa", "ul. Polna", "ul. Leśna"), ("80-831 Gdańsk", "00-001 Warszawa")),
    ("LTU", ("Gedimino pr.", "Vilniaus g."), ("01103 Vilnius", "44280 Kaunas")),
)


def foreign_address(rng: random.Random, country: str | None = None) -> ForeignAddress:
    """A made-up postal address abroad; ``country`` picks the country when we have samples for it."""
    options = [f for f in _FOREIGN if f[0] == country] or list(_FOREIGN)
    code, streets, cities = rng.choice(options)
    return ForeignAddress(code, (f"{rng.choice(streets)} {rng.randint(1, 90)}", rng.choice(cities)))
