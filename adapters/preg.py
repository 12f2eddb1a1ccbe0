"""PREG XML (xsd/preg.xsd) ⇄ store types: pure functions, no I/O.

Decoding turns a request element (already schema-valid) into plain request values; encoding turns a
person *view* into response elements. A view is what the caller's access profile lets it see
(``server.access.MaskedPerson`` has this shape): an element it may not see is an empty tuple, which is
encoded as a present, empty element (strings empty, dates ``xsi:nil``, lists without items), so the
structure stays as the old service promised. A masked address carries ``masked``, ``dsf_code`` and
``placeholder``; it is encoded with the placeholder as ``adressetekst`` and every content element empty.

The target namespace is a parameter: a site configures its own (docs/preg.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from lxml import etree

from adapters.policy import DSF_CODES
from adapters.views import PersonView
from store import geo
from store.errors import InvalidInput
from store.hjelpenummer import HjelpenummerRequest
from store.model import Identifier, Meta
from store.search import SearchCriteria

__all__ = [
    "DEFAULT_NAMESPACE",
    "PersonView",
    "Preg",
]

DEFAULT_NAMESPACE = "urn:no:pregbridge:personregister:v1"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_KIND = {"fnr": "FNR", "dnr": "DNR", "fh": "FHN", "hnr": "HNR"}
_GENDER_OUT = {"kvinne": "K", "mann": "M"}
_GENDER_IN = {"K": "kvinne", "M": "mann"}


def _current(items: Iterable[Any]) -> Any:
    for item in items:
        if item.meta.current:
            return item
    return None


def _text(v: object) -> str:
    return "" if v is None else str(v)


class Preg:
    """Encoder/decoder bound to one target namespace."""

    def __init__(self, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.ns = namespace
        self._q = f"{{{namespace}}}"

    # -- building blocks ------------------------------------------------------------------------

    def element(self, name: str, *, nsmap: bool = False) -> etree._Element:
        return etree.Element(self._q + name, nsmap={"p": self.ns} if nsmap else None)

    def sub(self, parent: etree._Element, name: str, value: object = None) -> etree._Element:
        el = etree.SubElement(parent, self._q + name)
        if value is not None:
            el.text = value if isinstance(value, str) else str(value)
        return el

    def _date(self, parent: etree._Element, name: str, value: dt.date | None) -> None:
        el = etree.SubElement(parent, self._q + name)
        if value is None:
            el.set(XSI_NIL, "true")
        else:
            el.text = value.isoformat()

    def _history(self, parent: etree._Element, meta: Meta) -> None:
        h = self.sub(parent, "historikk")
        self.sub(h, "gjeldende", "true" if meta.current else "false")
        self._date(h, "gyldigFra", meta.valid_from)
        self._date(h, "gyldigTil", meta.valid_to)
        reg = self.sub(h, "registrert")
        if meta.registered_at is None:
            reg.set(XSI_NIL, "true")
        else:
            reg.text = meta.registered_at.isoformat(timespec="seconds") + "Z"
        self.sub(h, "kilde", _text(meta.source))

    def identifier(self, parent: etree._Element, i: Identifier, *, history: bool) -> None:
        el = self.sub(parent, "identifikator")
        self.sub(el, "nummer", i.number)
        self.sub(el, "type", _KIND.get(i.kind, ""))
        self.sub(el, "status", "I_BRUK" if i.status == "iBruk" else "OPPHORT")
        if history:
            self._history(el, i.meta)

    def name(self, parent: etree._Element, n: Any, *, history: bool) -> None:
        el = self.sub(parent, "navn")
        self.sub(el, "fornavn", _text(n.given if n else None))
        self.sub(el, "mellomnavn", _text(n.middle if n else None))
        self.sub(el, "etternavn", _text(n.family if n else None))
        if history and n is not None:
            self._history(el, n.meta)

    def address(self, parent: etree._Element, a: Any, *, history: bool) -> None:
        masked = bool(getattr(a, "masked", False))
        el = self.sub(parent, "adresse")
        self.sub(el, "adressetype", a.type)
        self.sub(el, "adresseform", _text(a.form))
        self.sub(el, "spesregKode", getattr(a, "dsf_code", None) or DSF_CODES.get(a.protection, "0"))
        if masked:
            text = _text(getattr(a, "placeholder", None))
        else:
            street = " ".join(p for p in (a.street, _text(a.house_number) + _text(a.house_letter)) if p)
            text = street or " ".join(a.lines)
        self.sub(el, "adressetekst", text)
        self.sub(el, "coNavn", _text(a.co))
        self.sub(el, "gatenavn", _text(a.street))
        self.sub(el, "husnummer", _text(a.house_number))
        self.sub(el, "husbokstav", _text(a.house_letter))
        self.sub(el, "bruksenhet", _text(a.unit))
        self.sub(el, "gardsnummer", _text(a.gardsnummer))
        self.sub(el, "bruksnummer", _text(a.bruksnummer))
        for line in a.lines:
            self.sub(el, "adresselinje", line)
        self.sub(el, "postnummer", _text(a.postnummer))
        self.sub(el, "poststed", _text(a.poststed))
        kommune = geo.kommune(a.kommune) if a.kommune else None
        bydel = geo.bydel(a.bydel) if a.bydel else None
        self.sub(el, "kommunenummer", _text(a.kommune))
        self.sub(el, "kommunenavn", kommune.navn if kommune else "")
        self.sub(el, "fylkesnummer", kommune.fylkesnummer if kommune else "")
        self.sub(el, "fylkesnavn", kommune.fylkesnavn if kommune else "")
        self.sub(el, "bydelsnummer", _text(a.bydel))
        self.sub(el, "bydelsnavn", bydel.navn if bydel else "")
        self.sub(el, "land", _text(a.country))
        self._date(el, "flyttedato", a.moved_at)
        # shown only where registered (optional elements added to the contract after its first version)
        if a.contract_from is not None or a.contract_to is not None:
            self._date(el, "kontraktGyldigFra", a.contract_from)
            self._date(el, "kontraktGyldigTil", a.contract_to)
        if a.stay_elsewhere is not None:
            self.sub(el, "oppholdAnnetSted", a.stay_elsewhere)
        if history:
            self._history(el, a.meta)

    # -- persons --------------------------------------------------------------------------------

    def person(self, parent: etree._Element, p: PersonView, name: str = "person") -> etree._Element:
        el = self.sub(parent, name)
        cur = p.current_identifier
        self.sub(el, "personnummer", cur.number if cur else "")
        self.sub(el, "personnummerType", _KIND.get(cur.kind, "") if cur else "")
        ids = self.sub(el, "identifikatorer")
        for i in p.identifiers:
            self.identifier(ids, i, history=False)
        self.name(el, _current(p.names), history=False)
        birth = _current(p.birth)
        self._date(el, "fodselsdato", birth.date if birth else None)
        year = self.sub(el, "fodselsaar")
        if birth is not None and birth.year is not None:
            year.text = str(birth.year)
        else:
            year.set(XSI_NIL, "true")
        gender = _current(p.gender)
        self.sub(el, "kjonn", _GENDER_OUT.get(gender.value, "") if gender else "")
        status = _current(p.status)
        self.sub(el, "personstatus", status.value if status else "")
        death = _current(p.death)
        self._date(el, "dodsdato", death.date if death else None)
        marital = _current(p.marital_status)
        self.sub(el, "sivilstand", marital.value if marital else "")
        for c in p.citizenship:
            if c.meta.current:
                self.sub(el, "statsborgerskap", c.country)
        protection = _current(p.protection)
        self.sub(el, "spesregKode", DSF_CODES.get(protection.level, "") if protection else "")
        addresses = self.sub(el, "adresser")
        for a in p.addresses:
            if a.meta.current:
                self.address(addresses, a, history=False)
        relations = self.sub(el, "relasjoner")
        for r in p.relations:
            if r.meta.current:
                rel = self.sub(relations, "relasjon")
                self.sub(rel, "personnummer", _text(r.related_number))
                self.sub(rel, "rolle", r.related_role)
                self.sub(rel, "minRolle", _text(r.my_role))
        return el

    def history(self, parent: etree._Element, p: PersonView) -> etree._Element:
        el = self.sub(parent, "historikk")
        cur = p.current_identifier
        self.sub(el, "personnummer", cur.number if cur else "")
        ids = self.sub(el, "identifikatorer")
        for i in p.identifiers:
            self.identifier(ids, i, history=True)
        names = self.sub(el, "navneHistorikk")
        for n in p.names:
            self.name(names, n, history=True)
        addresses = self.sub(el, "adresseHistorikk")
        for a in p.addresses:
            self.address(addresses, a, history=True)
        for section, item, items in (("statusHistorikk", "status", p.status),
                                     ("sivilstandHistorikk", "sivilstand", p.marital_status)):
            sec = self.sub(el, section)
            for v in items:
                entry = self.sub(sec, item)
                self.sub(entry, "verdi", v.value)
                self._history(entry, v.meta)
        return el

    def person_dsf_code(self, p: PersonView) -> str:
        protection = _current(p.protection)
        return DSF_CODES.get(protection.level, "") if protection else ""

    # -- decoding -------------------------------------------------------------------------------

    def child_text(self, el: etree._Element, name: str) -> str | None:
        child = el.find(self._q + name)
        if child is None or child.text is None:
            return None
        return child.text.strip() or None

    def children_text(self, el: etree._Element, name: str) -> list[str]:
        return [(c.text or "").strip() for c in el.findall(self._q + name)]

    def _int(self, el: etree._Element, name: str) -> int | None:
        v = self.child_text(el, name)
        return None if v is None else int(v)  # schema-valid: xs:int

    def _date_in(self, el: etree._Element, name: str) -> dt.date | None:
        v = self.child_text(el, name)
        if v is None:
            return None
        try:
            return dt.date.fromisoformat(v[:10])
        except ValueError:
            raise InvalidInput(f"{name} is not a date") from None

    def search_criteria(self, el: etree._Element) -> tuple[SearchCriteria, int | None]:
        gender = self.child_text(el, "kjonn")
        return SearchCriteria(
            given=self.child_text(el, "fornavn"),
            family=self.child_text(el, "etternavn"),
            full_name=self.child_text(el, "navn"),
            birth_date=self._date_in(el, "fodselsdato"),
            birth_year=self._int(el, "fodselsaar"),
            gender=_GENDER_IN.get(gender) if gender else None,
            kommune=self.child_text(el, "kommunenummer"),
            postnummer=self.child_text(el, "postnummer"),
            street=self.child_text(el, "gatenavn"),
        ), self._int(el, "maksAntall")

    def hjelpenummer_request(self, el: etree._Element) -> HjelpenummerRequest:
        gender = self.child_text(el, "kjonn")
        if gender not in _GENDER_IN:
            raise InvalidInput("kjonn must be K or M")
        born = self._date_in(el, "fodselsdato")
        given, family = self.child_text(el, "fornavn"), self.child_text(el, "etternavn")
        if born is None or not given or not family:
            raise InvalidInput("fornavn, etternavn and fodselsdato are required")
        adr = el.find(self._q + "adresse")
        a: dict[str, str | None] = {}
        if adr is not None:
            a = {k: self.child_text(adr, k) for k in ("gatenavn", "husnummer", "postnummer", "poststed",
                                                      "kommunenummer", "land")}
        return HjelpenummerRequest(given, self.child_text(el, "mellomnavn"), family, _GENDER_IN[gender], born,
                                   a.get("gatenavn"), a.get("husnummer"), a.get("postnummer"), a.get("poststed"),
                                   a.get("kommunenummer"), a.get("land"))

    def numbers(self, el: etree._Element, name: str = "personnummer") -> Sequence[str]:
        return self.children_text(el, name)
