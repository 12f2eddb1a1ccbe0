"""HPR records → the wire types of NHN's IHPR2Service (HPR v2): pure, no I/O.

Input is ``hpr_person`` documents (docs/registers.md, ``hpr.jsonl``), already cut to a point in time by
store/hpr.py when the call asked for one; output is lxml elements of the real contract
(wsdl/helsepersonellregisteret.wsdl), written as WCF's DataContractSerializer writes them (adapters/wcf.py):

* ``Person``, ``Godkjenning``, ``Spesialitet``, ``Rekvisisjonsrett``, ``Suspensjonsperiode``, the result
  types and their members are in ``http://schemas.nhn.no/reg/HPRv2``; ``Kode``, ``Periode`` and
  ``FysiskAdresse`` in ``http://schemas.nhn.no/reg/Common/no``; members in ordinal order, which puts
  ``FysiskeAdresser`` before ``Fødselsdato`` and ``Vilkår`` last — the names are the contract's own,
  non-ASCII letters included;
* a code ``{oid, value, text}`` is ``Kode{Aktiv true, Beskrivelse text, Kodegruppenavn nil, OID, Verdi}``;
* a period ``{from, to}`` is ``Periode{Fra, Til}`` with ``Til`` nil while open (``Til`` is nillable in HPR,
  unlike AR's ``Period.To``); dates go out at midnight (``1992-10-27T00:00:00``);
* what the store does not hold goes out as WCF sends an empty value: nil (``Dødsdato``, ``ETag``,
  ``Statsborgerskap``, ``AvsluttetStatus`` …) or an empty ``ArrayOfX`` (administrative reactions,
  alternative ids, addresses, educations, additional competences, conditions);
* ``KunBasisData`` (a search asking for base data only) keeps each approval's own members and leaves its
  lists (specialities, requisition rights, suspensions) empty.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from lxml import etree

from adapters.wcf import ARRAYS, NIL, XSI, child_text, datetime_text, members, nil, sub
from store.errors import InvalidInput
from store.hpr import HprQuery

__all__ = ["HPR", "NO", "NSMAP", "SEARCH_FILTERS", "HprEncoder", "action", "request_datetime", "search_query"]

HPR: Final = "http://schemas.nhn.no/reg/HPRv2"
NO: Final = "http://schemas.nhn.no/reg/Common/no"
NSMAP: Final = {None: HPR, "i": XSI, "b": NO}
CONTRACT: Final = "IHPR2Service"

Build = Callable[[etree._Element], None]
_OFFSET: Final = re.compile(r"(Z|[+-]\d\d:\d\d)$")


def action(operation: str, suffix: str = "Response") -> str:
    return f"{HPR}/{CONTRACT}/{operation}{suffix}"


# the Søkeparametre members pregbridge answers; any other one given is refused (docs/hpr.md)
SEARCH_FILTERS: Final = ("HprNummer", "NIN", "Fornavn", "Etternavn", "Navn", "FullTekst", "Fødselsdato", "Kjønn",
                         "Helsepersonellkategorier", "SistEndretPeriode", "KunBasisData", "Side", "ResultaterPerSide")


def _datetime(text: str) -> dt.datetime:
    """An ``xs:dateTime`` as a naive date-time: its own wall time (a ``Z`` or offset is dropped, since validity
    is by day; fractions too)."""
    value = _OFFSET.sub("", text.strip()).split(".")[0]
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput("a date-time the register cannot use (years 1-9999 only)") from None


def request_datetime(body: etree._Element, name: str) -> dt.datetime | None:
    """An ``xs:dateTime`` child (:func:`_datetime`), None when absent or nil."""
    value = child_text(body, HPR, name)
    return _datetime(value) if value else None


def _given(el: etree._Element) -> bool:
    """Whether a Søkeparametre member asks for something: present, not nil, not empty."""
    if el.get(NIL) == "true":
        return False
    return bool(len(el)) or bool((el.text or "").strip())


def search_query(body: etree._Element) -> tuple[HprQuery, bool, list[str]]:
    """``(query, KunBasisData, members given that pregbridge does not answer)`` of a Søk/Søk2 request."""
    search = body.find(f"{{{HPR}}}search")
    if search is None or search.get(NIL) == "true":
        return HprQuery(), False, []
    given = {etree.QName(el).localname: el for el in search if _given(el)}
    unsupported = sorted(set(given) - set(SEARCH_FILTERS))

    def value(name: str) -> str | None:
        el = given.get(name)
        return (el.text or "").strip() if el is not None else None

    period = given.get("SistEndretPeriode")
    born = request_datetime(search, "Fødselsdato") if "Fødselsdato" in given else None
    categories = given.get("Helsepersonellkategorier")
    name_words = " ".join(v for v in (value("Navn"), value("FullTekst")) if v)
    query = HprQuery(
        hpr_number=int(value("HprNummer") or 0) or None, nin=value("NIN"), given=value("Fornavn"),
        family=value("Etternavn"), name=name_words or None, birth_date=born.date() if born else None,
        gender=value("Kjønn"),
        categories=tuple((i.text or "").strip() for i in categories.iterfind(f"{{{ARRAYS}}}string")
                         if (i.text or "").strip()) if categories is not None else (),
        changed_from=_period_end(period, "Fra"), changed_to=_period_end(period, "Til"),
        page=int(value("Side") or 0), page_size=int(value("ResultaterPerSide") or 0))
    return query, value("KunBasisData") in ("true", "1"), unsupported


def _period_end(period: etree._Element | None, name: str) -> dt.datetime | None:
    el = period.find(f"{{{NO}}}{name}") if period is not None else None
    if el is None or el.get(NIL) == "true" or not (el.text or "").strip():
        return None
    return _datetime(el.text or "")


def _date(value: Any) -> str | None:
    return None if value is None else datetime_text(value)


def _kode(code: Mapping[str, Any] | None) -> Build | None:
    if not code:
        return None

    def build(el: etree._Element) -> None:
        members(el, NO, {"Aktiv": True, "Beskrivelse": code.get("text"), "Kodegruppenavn": None,
                         "OID": int(code.get("oid") or 0), "Verdi": code.get("value")})
    return build


def _periode(period: Mapping[str, Any] | None) -> Build | None:
    if not period or period.get("from") is None:
        return None

    def build(el: etree._Element) -> None:
        members(el, NO, {"Fra": datetime_text(period["from"]), "Til": _date(period.get("to"))})
    return build


def _array(item: str, items: Sequence[Mapping[str, Any]] = (),
           each: Callable[[etree._Element, Mapping[str, Any]], None] | None = None, ns: str = HPR) -> Build:
    """An ``ArrayOf<item>`` member: one ``<item>`` per entry, built by ``each`` (empty when no entries)."""
    def build(el: etree._Element) -> None:
        for entry in items:
            assert each is not None
            each(sub(el, ns, item), entry)
    return build


def _suspension(el: etree._Element, s: Mapping[str, Any]) -> None:
    members(el, HPR, {"ETag": None, "Id": int(s.get("id") or 0), "Periode": _periode(s.get("period"))})


def _speciality(el: etree._Element, s: Mapping[str, Any]) -> None:
    members(el, HPR, {
        "AdministrativeReaksjoner": _array("AdministrativReaksjon"), "AvsluttetStatus": None, "ETag": None,
        "Gyldig": _periode(s.get("valid")), "Id": int(s.get("id") or 0), "KonvertertFraLand": None,
        "Suspensjonsperioder": _array("Suspensjonsperiode", s.get("suspensions") or (), _suspension),
        "Type": _kode(s.get("type")),
    })


def _requisition(el: etree._Element, r: Mapping[str, Any]) -> None:
    members(el, HPR, {
        "AdministrativeReaksjoner": _array("AdministrativReaksjon"), "AvsluttetStatus": None, "ETag": None,
        "Gyldig": _periode(r.get("valid")), "Id": int(r.get("id") or 0),
        "Suspensjonsperioder": _array("Suspensjonsperiode", r.get("suspensions") or (), _suspension),
        "Type": _kode(r.get("type")),
    })


def godkjenning(el: etree._Element, a: Mapping[str, Any], *, basic: bool = False) -> None:
    """The members of a ``Godkjenning`` (an approval) into ``el``."""
    members(el, HPR, {
        "AdministrativeReaksjoner": _array("AdministrativReaksjon"),
        "Autorisasjon": _kode(a.get("authorization")), "AvsluttetStatus": None, "ETag": None,
        "GodkjentTurnus": None, "Gyldig": _periode(a.get("valid")),
        "Helsepersonellkategori": _kode(a.get("category")), "Id": int(a.get("id") or 0),
        "KonvertertFraLand": None,
        "Rekvisisjonsretter": _array("Rekvisisjonsrett", () if basic else a.get("requisitionRights") or (),
                                     _requisition),
        "Spesialiteter": _array("Spesialitet", () if basic else a.get("specialities") or (), _speciality),
        "Suspensjonsperioder": _array("Suspensjonsperiode", () if basic else a.get("suspensions") or (),
                                      _suspension),
        "Tilleggskompetanser": _array("Tilleggskompetanse"), "Utdannelser": _array("Utdannelse"),
        "Vilkår": _array("Vilkår"),
    })


def person(el: etree._Element, doc: Mapping[str, Any], *, basic: bool = False) -> None:
    """The members of a ``Person`` into ``el``."""
    nin = doc.get("nin")
    members(el, HPR, {
        "AdministrativeReaksjoner": _array("AdministrativReaksjon"), "AlternativeIder": _array("AlternativId"),
        "Dødsdato": _date(doc.get("deathDate")), "ETag": None, "ErstattetAvHprNummer": doc.get("replacedBy"),
        "Etternavn": doc.get("familyName"), "Fornavn": doc.get("givenName"),
        "FysiskeAdresser": _array("FysiskAdresse", ns=NO), "Fødselsdato": _date(doc.get("birthDate")),
        "Godkjenninger": _array("Godkjenning", doc.get("approvals") or (),
                                lambda e, a: godkjenning(e, a, basic=basic)),
        "HPRNummer": int(doc["hprNumber"]), "Kjønn": _kode(doc.get("gender")), "ManglerNIN": not nin,
        "Mellomnavn": doc.get("middleName"), "NIN": nin or None,
        "SistOppdatert": datetime_text(doc.get("lastUpdated") or "0001-01-01T00:00:00"),
        "Statsborgerskap": None, "Utdannelser": _array("Utdannelse"),
    })


class HprEncoder:
    """Whole ``<Op>Response`` elements of the HPR contract."""

    @staticmethod
    def response(operation: str) -> etree._Element:
        return etree.Element(f"{{{HPR}}}{operation}Response", nsmap=NSMAP)  # type: ignore[dict-item]

    @classmethod
    def person(cls, operation: str, doc: Mapping[str, Any]) -> etree._Element:
        r = cls.response(operation)
        person(sub(r, HPR, f"{operation}Result"), doc)
        return r

    @classmethod
    def persons(cls, operation: str, docs: Iterable[Mapping[str, Any]], *, basic: bool = False) -> etree._Element:
        r = cls.response(operation)
        result = sub(r, HPR, f"{operation}Result")
        for doc in docs:
            person(sub(result, HPR, "Person"), doc, basic=basic)
        return r

    @classmethod
    def page(cls, operation: str, docs: Sequence[Mapping[str, Any]], page: int, page_size: int, total: int,
             *, basic: bool = False) -> etree._Element:
        """A ``PaginertResultatsett{Personer, ResultaterPerSide, ResultaterTotalt, Side}`` result."""
        r = cls.response(operation)

        def people(el: etree._Element) -> None:
            for doc in docs:
                person(sub(el, HPR, "Person"), doc, basic=basic)

        members(sub(r, HPR, f"{operation}Result"), HPR, {
            "Personer": people, "ResultaterPerSide": page_size, "ResultaterTotalt": total, "Side": page})
        return r

    @classmethod
    def approval(cls, operation: str, approval: Mapping[str, Any]) -> etree._Element:
        r = cls.response(operation)
        godkjenning(sub(r, HPR, f"{operation}Result"), approval)
        return r

    @classmethod
    def changes(cls, operation: str, entries: Iterable[tuple[int, int, dt.datetime | str]]) -> etree._Element:
        """``ArrayOfEndringslogginnslag``: one entry ``(id, HPR number, time)`` per change, each naming the
        changed Person."""
        r = cls.response(operation)
        result = sub(r, HPR, f"{operation}Result")
        for entry_id, number, when in entries:
            def changed(el: etree._Element, number: int = number, entry_id: int = entry_id) -> None:
                item = sub(el, HPR, "EndretEntitet")

                def ids(ids_el: etree._Element) -> None:
                    sub(ids_el, ARRAYS, "string", str(number))

                members(item, HPR, {"EndredeVerdier": _array("EndretVerdi"), "EndringsType": "Endret",
                                    "EntitetsIder": ids, "EntitetsType": "Person", "Id": entry_id})

            members(sub(result, HPR, "Endringslogginnslag"), HPR, {
                "BrukersVirksomhet": None, "EndredeEntiteter": changed, "FaktiskBruker": None, "Id": entry_id,
                "Sporingsgruppe": None, "Sporingsveri": None, "Tidspunkt": datetime_text(when),
                "Tjenestebruker": None})
        return r

    @classmethod
    def text(cls, operation: str, value: str | None) -> etree._Element:
        r = cls.response(operation)
        if value is None:
            nil(r, HPR, f"{operation}Result")
        else:
            sub(r, HPR, f"{operation}Result", value)
        return r
