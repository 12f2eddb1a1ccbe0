"""Names for the synthetic population: Norwegian given and family names, and a few foreign ones.

No register extract was used and no real person's full name is listed. The model (docs/registers.md,
"Names"):

- **Family names**: a universe of ``FAMILY_NAMES`` (60,000) names ranked by frequency. The first ranks are
  the common names below, written from general knowledge in rough order of frequency (patronymic ``-sen``
  names and farm names, as in the real top 100); the rest are generated from name parts: farm and place
  names (a first element, an optional linking syllable and a last element: Berg + e + vik) and patronymics
  (a given name + ``sen``), put in a fixed pseudo-random order. A name of rank r has weight
  ``1 / (r + 3) ** 0.85`` (a Zipf–Mandelbrot law), which gives the commonest name ~1.1 % of persons, the
  20 commonest ~10 %, and a tail of names held by a few dozen persons in 5.6 million.
- **Given names** come in two cohorts, because a 1950s Kari and a 2015 Nora are both typical: ``*_OLDER``
  for people born before 1980, ``*_NEWER`` for later births. Each cohort and gender ranks its own list
  first, then the other cohort's, then names generated from Old Norse name elements (Tor + hild, Arn +
  stein); weight ``1 / (r + 6)`` for a listed name and 0.12 of that for a generated one, so the commonest
  name of a cohort and gender is given to ~4 % and generated ones to ~5 % in all. About 15 % of persons
  have a double given name (two draws, joined by a space or, for one in four, a hyphen).

``FOREIGN`` holds names for D-nummer holders and for persons who later got a fødselsnummer, by the
country (ISO 3166-1 alpha-3) of their citizenship.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FAMILY_NAMES", "FOREIGN", "ForeignNames", "NamePicker", "family_names", "given_names"]

FAMILY_NAMES = 60_000
_FAMILY_ZIPF = (3.0, 0.85)  # (q, s): weight of rank r (from 1) is 1 / (r + q) ** s
_GIVEN_ZIPF = (6.0, 1.0)
_GIVEN_GENERATED = 0.12  # a generated given name weighs this much of a listed one of the same rank
_P_DOUBLE_GIVEN = 0.15
_P_HYPHEN = 0.25

FEMALE_OLDER = (
    "Anne Inger Kari Marit Ingrid Liv Eva Berit Astrid Bjørg Hilde Anna Solveig Marianne Randi Nina "
    "Elisabeth Kristin Bente Heidi Hanne Gerd Linda Tone Tove Elin Anita Wenche Ragnhild Grete Turid "
    "Mona Sissel Ellen Monica Gunn Kirsten Unni Karin Trine Laila Britt Aud Lene Reidun Torill Gro Mette "
    "Lise Else Siri Jorunn Åse Ann Sigrid Margrethe Hege Synnøve Vigdis Eli Bodil Grethe Janne Kjersti "
    "Merete Rita Elsa Oddny Signe Borghild Torunn Gunhild Magnhild Dagny Gunvor Ingeborg Ruth"
).split()
FEMALE_NEWER = (
    "Emma Nora Sara Sofie Olivia Emilie Leah Ella Maja Frida Thea Ida Julie Hanna Amalie Tiril Mathilde "
    "Vilde Selma Aurora Sofia Iben Marie Mia Linnea Tuva Oda Hedda Martine Malin Andrea Jenny Karoline "
    "Maria Ane Kaja Sunniva Eline Synne Victoria Helene Silje Ingvild Madeleine Live Alma Hedvig Ronja "
    "Iselin Mari Stine Marte Kristine Guro Tonje Kamilla Camilla Emilia Agnes Nathalie Josefine Eira "
    "Elise Celine Marthe Ylva Mille Lea Isabella Signe Tea"
).split()
MALE_OLDER = (
    "Jan Per Bjørn Ole Lars Kjell Knut Svein Hans Arne Geir Terje Odd Morten Tor Rune Trond Erik Harald "
    "Jon Olav Gunnar Tore Rolf Helge Einar Leif Stein Johan Kristian Nils Frode Espen Øyvind Anders Roar "
    "Egil Vidar Atle Magne Kåre Øystein Sverre Torbjørn Reidar Asbjørn Ragnar Dag Tormod Arild Steinar "
    "Sigurd Ivar Ketil Finn Gudmund Halvor Ingvar Jostein Alf Bjarne Petter Pål Kenneth Roger Tom Glenn "
    "Ronny Frank Bård Thomas Eivind Jarle Svein-Erik Kai Audun"
).split()
MALE_NEWER = (
    "Jakob Emil Noah Oliver Filip William Lucas Liam Henrik Oskar Aksel Theodor Elias Kasper Magnus "
    "Johannes Isak Mathias Tobias Sander Jonas Adrian Markus Alexander Kristoffer Martin Andreas Daniel "
    "Sebastian Fredrik Eirik Sindre Even Vetle Mats Torstein Sivert Ulrik Herman Benjamin Leon Ludvig "
    "Mikkel Edvard Gustav Iver Håvard Vegard Joakim Stian Ola Erlend Brage Storm Odin Peder Jørgen Simen "
    "Ruben Marius Lukas Hugo Ask Birk Bjørnar Håkon Olai Casper Tiago Johan Syver Trygve Matheo"
).split()
FAMILY = (
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen Johnsen Pettersen "
    "Eriksen Berg Haugen Hagen Johannessen Andreassen Jacobsen Dahl Jørgensen Halvorsen Henriksen Lund "
    "Sørensen Jakobsen Moen Gundersen Iversen Strand Solberg Svendsen Eide Knutsen Martinsen Paulsen "
    "Bakken Kristoffersen Mathisen Lie Amundsen Nguyen Rasmussen Ali Lunde Solheim Berge Moe Nygård Bakke "
    "Kristensen Fredriksen Holm Lien Hauge Christensen Andresen Nielsen Knudsen Evensen Sæther Aas Myhre "
    "Hanssen Ahmed Haugland Thomassen Sivertsen Simonsen Danielsen Berntsen Sandvik Rønning Arnesen "
    "Antonsen Næss Vik Haug Ellingsen Thorsen Edvardsen Birkeland Isaksen Gulbrandsen Ruud Aasen Strøm "
    "Myklebust Tangen Ødegård Eliassen Helland Bøe Jenssen Aune Mikkelsen Tveit Brekke Abrahamsen Madsen "
    "Christiansen Mikalsen Engen Wold Bjørnstad Grønli Åsheim Fossum Bråten Sletten Dale Vold Rød Holmen "
    "Aasland Løken Hovland Sunde Stene Hope Nilssen Ottesen Tollefsen Hovde Torgersen Skog Øien Mo Bø "
    "Lorentzen Lindberg Lindstad Fjeld Rustad Stokke Sandberg Granli Kvam Midtbø Nordby Østby Skaar "
    "Haaland Tveiten Vatne Sørli Dalen Flaten Grønvold Haugan Høiland Kleven Kolstad Langeland Lyngstad "
    "Løvås Mork Nesse Opsahl Rønningen Skjelbred Stavik Storli Sund Sundt Tvedt Ulvestad Valen Vestby "
    "Wiik Øverland Ås Aarnes Bjerke Bergstrøm Brenna Dahle Egeland Enger Finstad Fjellstad Foss Gjerde "
    "Grande Gravdal Hammer Heggelund Hegge Hellesøy Hoel Holen Husby Hval Jahren Kvalheim Lia Lillebø "
    "Melby Myrvold Nakken Nordli Nyhus Olsrud Orheim Ramberg Reitan Rognstad Sagen Selnes Sikkeland "
    "Skaug Skjeggestad Steen Stray Syversen Teigen Thoresen Tjelle Tonning Ulriksen Vestre Viken Aalberg "
    "Aamodt Andersson Asheim Austad Barstad Bekkevold Berget Bergan Bjørklund Bolstad Borge Bratli "
    "Brattli Breivik Bryn Bugge Dybdahl Eikeland Ekeberg Elvestad Engebretsen Evjen Fagerli Fjellheim "
    "Fladmark Flatebø Frantzen Furu Garberg Gjertsen Grimstad Gran Gulliksen Hallingstad Hamre Hatlevik "
    "Haukeland Heggheim Hellevik Hermansen Hjelle Holter Hustad Jensvoll Jonassen Kjos Klausen Kleiven "
    "Knutsen-Berg Kvalvik Langseth Larssen Lindahl Lindgren Lothe Lyngås Mathiassen Melhus Moland "
    "Mørk Nesheim Nordahl Nordhagen Nyberg Næsheim Olaussen Oppedal Ramstad Ringstad Rolland Rosseland "
    "Rygg Sandve Sekse Skarstein Skjærvik Slettebø Solli Sollie Stavrum Steinsland Stenberg Strømme "
    "Sunde-Olsen Svela Sveen Tennfjord Thorvaldsen Tjøstheim Tofte Torkildsen Tufte Underhaug Utne "
    "Vassbotn Vestvik Vågen Waage Aakre Aarseth Øvrebø Østli Åsland Ødegaard"
).split()


@dataclass(frozen=True, slots=True)
class ForeignNames:
    country: str  # ISO 3166-1 alpha-3 of the citizenship
    weight: int
    female: tuple[str, ...]
    male: tuple[str, ...]
    family: tuple[str, ...]


def _f(country: str, weight: int, female: str, male: str, family: str) -> ForeignNames:
    return ForeignNames(country, weight, tuple(female.split(",")), tuple(male.split(",")),
                        tuple(family.split(",")))


FOREIGN = (
    _f("POL", 30, "Anna,Katarzyna,Magdalena,Agnieszka,Joanna,Monika,Ewa",
       "Piotr,Tomasz,Paweł,Krzysztof,Marcin,Michał,Łukasz,Grzegorz",
       "Nowak,Kowalski,Wiśniewski,Wójcik,Kowalczyk,Kamiński,Lewandowski,Zieliński,Szymański"),
    _f("LTU", 14, "Rūta,Jurgita,Laura,Greta,Aistė", "Tomas,Mantas,Darius,Andrius,Jonas,Giedrius",
       "Kazlauskas,Petrauskas,Jankauskas,Stankevičius,Vasiliauskas,Žukauskas"),
    _f("SWE", 12, "Karin,Maria,Elin,Sofia,Linnéa", "Erik,Johan,Anders,Lars,Oscar",
       "Andersson,Johansson,Karlsson,Nilsson,Eriksson,Larsson,Svensson,Lindqvist"),
    _f("UKR", 12, "Olena,Iryna,Oksana,Nataliia,Yuliia", "Oleksandr,Andrii,Serhii,Dmytro,Volodymyr",
       "Shevchenko,Bondarenko,Kovalenko,Tkachenko,Melnyk,Kravchenko"),
    _f("PHL", 8, "Maria,Jocelyn,Rowena,Marites,Cristina", "Jose,Mark,Rodel,Jayson,Ramon",
       "Santos,Reyes,Cruz,Bautista,Ocampo,Garcia,Mendoza,Dela Cruz"),
    _f("SOM", 6, "Fadumo,Hodan,Amina,Sahra,Hawa", "Abdi,Mohamed,Abdirahman,Ahmed,Farah",
       "Mohamed,Ali,Hassan,Abdi,Warsame,Farah,Jama,Yusuf"),
    _f("DEU", 6, "Julia,Katharina,Laura,Sabine", "Lukas,Jonas,Felix,Stefan",
       "Müller,Schmidt,Schneider,Fischer,Weber,Meyer,Wagner,Becker"),
    _f("ROU", 6, "Ioana,Elena,Andreea,Mihaela", "Andrei,Ionuț,Mihai,Alexandru",
       "Popescu,Ionescu,Popa,Dumitru,Stan,Stoica"),
    _f("ESP", 3, "Lucía,Carmen,Marta", "Javier,Pablo,Sergio", "García,Fernández,López,Martínez,Sánchez"),
    _f("ERI", 3, "Senait,Helen,Yohanna", "Yonas,Samuel,Tesfay", "Tesfaye,Gebremariam,Haile,Berhane,Kidane"),
)


# Name parts for the generated tail. Farm and place names: first element, linking syllable, last element.
_FARM_FIRST = (
    "Aa Aas Al Ask Aust Bak Berg Birk Bjør Bjørk Blom Bratt Bre Bred Brei Bro Bru Bryn Bø Dal Dyr Eid Eik "
    "Eng Fager Fals Fjeld Fjell Flat Fle Foss Fri Fur Gjer Gran Grind Grøn Gul Ha Hag Hall Ham Hau Hed Heg "
    "Hel Her Hjel Hof Hol Hov Hus Hval Hæ Høg Is Kal Kirke Kjel Kleiv Kval Kvam Kvern Lang Lauv Lid Lin "
    "Ljos Lo Lun Lyng Løv Mal Mel Mid Mjøs Mo Mos Myr Mæl Nes Nord Ny Od Opp Os Rabb Rak Ram Rei Ring "
    "Rog Ros Rud Rø Rød Sag Sand Sel Sjø Skar Skei Skjel Skog Skrede Sla Sol Stav Stein Stok Stor Strand "
    "Straum Sund Svart Sæ Sør Tang Teig Tjern Tor Tro Tve Ul Ulv Ut Vang Vass Ve Vest Vet Vik Vin Vold "
    "Væ Øde Øs Øst Øv Ås"
).split()
_FARM_LINK = ("", "e", "s", "a", "er", "es", "ar", "ings", "en")
_FARM_LAST = (
    "aas bakk bakken berg berget bø by bye dahl dal dalen eid fjell gard gaard gård haug haugen heim hol "
    "holm holmen hus land lid lie lien li lund mark mo moen myr myra nes rud rød set seth stad strand "
    "sæter tveit tveiten vang vik viken voll vold øy åsen tun gjerde hammer hovde kleiv lia løkken"
).split()
_NORSE_FIRST = (
    "Al Arn As Aud Berg Bjør Dag Ei Frid Geir Grim Gud Gunn Hall Hel Her Hild Ing Jo Kol Leid Mar Odd Ol "
    "Rag Ragn Rand Reid Rolv Sig Sol Stein Svan Tjod Tor Trond Ulv Val Vig Øy Ås Frøy Hall Ket Lid Ros"
).split()
_NORSE_FEMALE = ("borg", "dis", "frid", "hild", "laug", "ny", "run", "unn", "veig", "vor", "bjørg", "gerd",
                 "ril", "lin", "a")
_NORSE_MALE = ("ar", "bjørn", "geir", "leif", "mund", "stein", "ulf", "vald", "var", "vard", "vin", "mod",
               "finn", "e", "grim")


def _shuffled(names: list[str], seed: int) -> list[str]:
    random.Random(seed).shuffle(names)  # a fixed order, the same for every population seed
    return names


def _dedup(*groups: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(n for group in groups for n in group))


def _glue(first: str, rest: str) -> str:
    if first[-1] == rest[0] and first[-1] not in "aeiouyæøå":  # Berg + gard, not Bergggard
        rest = rest[1:]
    return first + rest


@functools.cache
def family_names() -> tuple[str, ...]:
    """The ranked universe of Norwegian family names (``FAMILY_NAMES`` of them, commonest first)."""
    farms = [_glue(_glue(a, b) if b else a, c) for a in _FARM_FIRST for b in _FARM_LINK for c in _FARM_LAST]
    men = _dedup(MALE_OLDER, MALE_NEWER)
    patronymics = [m.replace("-", "") + ("sen" if not m.endswith("s") else "en") for m in men]
    patronymics += [p[:-3] + "ssen" for p in patronymics if not p[:-3].endswith("s")]
    tail = [n.capitalize() for n in _shuffled(_dedup(patronymics, farms), 19)]
    ranked = _dedup(FAMILY, tail)
    if len(ranked) < FAMILY_NAMES:
        raise AssertionError(f"only {len(ranked)} family names can be made")
    return tuple(ranked[:FAMILY_NAMES])


@functools.cache
def given_names(female: bool, older: bool) -> tuple[tuple[str, ...], int]:
    """The ranked given names of one gender and cohort (born before 1980 or later), commonest first, and how
    many of them are listed names (the rest are generated)."""
    own, other = ((FEMALE_OLDER, FEMALE_NEWER) if female else (MALE_OLDER, MALE_NEWER))[:: 1 if older else -1]
    listed = _dedup(own, other)
    endings = _NORSE_FEMALE if female else _NORSE_MALE
    norse = _shuffled([_glue(a, b).capitalize() for a in _NORSE_FIRST for b in endings], 23 + female)
    return tuple(_dedup(listed, norse)), len(listed)


def _weights(n: int, zipf: tuple[float, float], listed: int | None = None, generated: float = 1.0) -> list[float]:
    """Cumulative Zipf–Mandelbrot weights of ranks 1..n; ranks past ``listed`` weigh ``generated`` times more."""
    q, s = zipf
    cut = n if listed is None else listed
    return list(itertools.accumulate((1.0 if rank <= cut else generated) / (rank + q) ** s
                                     for rank in range(1, n + 1)))


class NamePicker:
    """Weighted choices from the ranked names above; one instance per RNG, no state beyond the weights."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lists: dict[str, tuple[Sequence[str], list[float]]] = {
            "family": (family_names(), _weights(FAMILY_NAMES, _FAMILY_ZIPF)),
        }
        for key, female, older in (("fo", True, True), ("fn", True, False), ("mo", False, True),
                                   ("mn", False, False)):
            names, listed = given_names(female, older)
            self._lists[key] = (names, _weights(len(names), _GIVEN_ZIPF, listed, _GIVEN_GENERATED))
        self._foreign_cum = list(itertools.accumulate(f.weight for f in FOREIGN))

    def _pick(self, key: str) -> str:
        names, cum = self._lists[key]
        return self._rng.choices(names, cum_weights=cum)[0]

    def given(self, female: bool, birth_year: int) -> str:
        key = ("f" if female else "m") + ("o" if birth_year < 1980 else "n")
        first = self._pick(key)
        if self._rng.random() >= _P_DOUBLE_GIVEN:
            return first
        second = self._pick(key)
        if second == first or "-" in first or "-" in second:
            return first
        return f"{first}{'-' if self._rng.random() < _P_HYPHEN else ' '}{second}"

    def family(self) -> str:
        return self._pick("family")

    def foreign(self) -> ForeignNames:
        return self._rng.choices(FOREIGN, cum_weights=self._foreign_cum)[0]

    def foreign_person(self, names: ForeignNames, female: bool) -> tuple[str, str]:
        """(given, family) from one foreign name set."""
        choice = self._rng.choice
        return choice(names.female if female else names.male), choice(names.family)
