"""Norwegian geography: kommune → fylke (2024 reform), and the bydeler of the four divided cities.

The kommune list is Statistics Norway's classification 131/104 as of 2024-01-01, shipped as
``store/data/kommuner-2024.csv`` (source note beside it). Bydeler (SSB classification 103) are used only
in Oslo, Bergen, Trondheim and Stavanger; a bydelsnummer is the kommunenummer plus two digits.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "Bydel",
    "Kommune",
    "bydel",
    "bydeler",
    "fylke_name",
    "kommune",
    "kommuner",
]


@dataclass(frozen=True, slots=True)
class Kommune:
    nummer: str
    navn: str
    fylkesnummer: str
    fylkesnavn: str


@dataclass(frozen=True, slots=True)
class Bydel:
    nummer: str
    navn: str

    @property
    def kommunenummer(self) -> str:
        return self.nummer[:4]


_BYDELER: dict[str, tuple[str, ...]] = {
    "0301": (
        "Gamle Oslo", "Grünerløkka", "Sagene", "St. Hanshaugen", "Frogner", "Ullern",
        "Vestre Aker", "Nordre Aker", "Bjerke", "Grorud", "Stovner", "Alna", "Østensjø",
        "Nordstrand", "Søndre Nordstrand", "Sentrum", "Marka",
    ),
    "4601": ("Arna", "Bergenhus", "Fana", "Fyllingsdalen", "Laksevåg", "Ytrebygda", "Årstad", "Åsane"),
    "5001": ("Midtbyen", "Østbyen", "Lerkendal", "Heimdal"),
    # Stavanger 08 and 09 exist since 2020; their names are not confirmed in our sources, so they are
    # left out rather than invented.
    "1103": ("Hundvåg", "Tasta", "Eiganes og Våland", "Madla", "Storhaug", "Hillevåg", "Hinna"),
}


@functools.cache
def _kommuner() -> dict[str, Kommune]:
    text = resources.files("store").joinpath("data/kommuner-2024.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines(), delimiter=";")
    return {
        r["kommunenummer"]: Kommune(r["kommunenummer"], r["kommunenavn"], r["fylkesnummer"], r["fylkesnavn"])
        for r in rows
    }


def kommuner() -> list[Kommune]:
    """Every kommune valid from 2024-01-01, ordered by number."""
    return sorted(_kommuner().values(), key=lambda k: k.nummer)


def kommune(nummer: str) -> Kommune | None:
    """The kommune with this 4-digit number, or None when it is not a 2024 kommune."""
    return _kommuner().get(nummer)


def fylke_name(fylkesnummer: str) -> str | None:
    for k in _kommuner().values():
        if k.fylkesnummer == fylkesnummer:
            return k.fylkesnavn
    return None


def bydeler(kommunenummer: str) -> list[Bydel]:
    """The bydeler of a divided city (empty for every other kommune)."""
    names = _BYDELER.get(kommunenummer, ())
    return [Bydel(f"{kommunenummer}{i:02d}", name) for i, name in enumerate(names, start=1)]


def bydel(nummer: str) -> Bydel | None:
    """The bydel with this 6-digit number, or None."""
    for b in bydeler(nummer[:4]):
        if b.nummer == nummer:
            return b
    return None
