"""Name lists for the synthetic population: Norwegian given and family names, and a few foreign ones.

Written from general knowledge of which names are common in Norway; no register extract was used and no
real person's full name is listed. Each list is in rough order of frequency, most common first, and the
weight of a name is derived from its rank (``1 / (rank + 8)``), a Zipf-like curve that is close enough
for demo data. Given names come in two cohorts, because a 1950s Kari and a 2015 Nora are both typical:
``*_OLDER`` for people born before 1980, ``*_NEWER`` for later births.

``FOREIGN`` holds names for D-nummer holders and for persons who later got a fødselsnummer, by the
country (ISO 3166-1 alpha-3) of their citizenship.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FOREIGN", "ForeignNames", "NamePicker"]

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


def _weights(n: int) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank + 8) for rank in range(n)))


class NamePicker:
    """Weighted choices from the lists above; one instance per RNG, no state beyond cumulative weights."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lists: dict[str, tuple[Sequence[str], list[float]]] = {
            key: (names, _weights(len(names)))
            for key, names in (("fo", FEMALE_OLDER), ("fn", FEMALE_NEWER), ("mo", MALE_OLDER),
                               ("mn", MALE_NEWER), ("family", FAMILY))
        }
        self._foreign_cum = list(itertools.accumulate(f.weight for f in FOREIGN))

    def _pick(self, key: str) -> str:
        names, cum = self._lists[key]
        return self._rng.choices(names, cum_weights=cum)[0]

    def given(self, female: bool, birth_year: int) -> str:
        return self._pick(("f" if female else "m") + ("o" if birth_year < 1980 else "n"))

    def family(self) -> str:
        return self._pick("family")

    def foreign(self) -> ForeignNames:
        return self._rng.choices(FOREIGN, cum_weights=self._foreign_cum)[0]

    def foreign_person(self, names: ForeignNames, female: bool) -> tuple[str, str]:
        """(given, family) from one foreign name set."""
        choice = self._rng.choice
        return choice(names.female if female else names.male), choice(names.family)
