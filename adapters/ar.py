"""AR (Adresseregisteret) documents → the wire types of NHN's ICommunicationPartyService: pure, no I/O.

The input is ``ar_party`` documents (docs/registers.md, ``ar.jsonl``) plus the related documents the face
fetched (HPR records of organisation persons, children of an organisation, the parent of a person); the
output is lxml elements that follow the real contract (wsdl/nhn-adresseregisteret-sok.wsdl) the way
WCF's DataContractSerializer writes them, so a client generated from that WSDL cannot tell:

* element order is the DataContract order: base-type members first (CommunicationParty), then the derived
  type's, each group alphabetical (ordinal);
* each type's members live in the type's own namespace: CommunicationParty types in
  ``http://register.nhn.no/CommunicationParty``, Code/addresses/Period/CitizenId/GenericFault in ``…/Common``,
  Person/HPRInformation in ``…/HPR``, CertificateDetails in ``…/CertificateDetails``, ``ArrayOfint`` in the
  serialisation Arrays namespace;
* a null reference is a present element with ``i:nil="true"``; an empty list is an empty ``ArrayOfX``
  element; list items are named after the item type;
* a derived type where the declared type is CommunicationParty carries ``i:type`` (``Organization``,
  ``Service``, ``OrganizationPerson``), resolved against the CommunicationParty default namespace;
* one deliberate addition: the items of ``ArrayOfOrganization``, ``ArrayOfService`` and
  ``ArrayOfOrganizationPerson`` also carry an ``i:type`` naming their own (declared) type, which WCF would
  leave out. zeep 4.3 resolves the recursive types Organization → People → OrganizationPerson →
  Organizations → Organization incompletely (the nested Organization loses its CommunicationParty base
  members) and then fails on the real AR's own answers; with ``i:type`` it looks the complete global type
  up. A redundant ``i:type`` naming the declared type is valid XML Schema and accepted by WCF's
  DataContractSerializer and JAXB;
* a root party has ``ParentHerId`` and ``ParentOrganizationNumber`` ``-1`` and nil ``ParentName`` and
  ``ParentBusinessType``; ``PostalCode`` is an int (``0574`` goes out as ``574``, as AR does);
* an open-ended ``Period.To`` (``9999-12-31`` in the store, ``null`` in HPR) is ``9999-12-31T23:59:59.997``.

Depth: a party asked for directly is encoded whole (an organisation with its ``Services`` and ``People``,
an organisation person with its ``Organizations``); parties nested in those, and parties in lists
(Search, SearchById, GetOrganizationsOwnedBy), are encoded *shallow*: the same elements with those three
lists empty, as the real AR's nested organisations show them. A person's fødselsnummer is masked to its
birth date (``DDMMYYXXXXX``), as the real AR does.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lxml import etree

from adapters.wcf import ARRAYS, COMMON, XSI, generic_fault
from adapters.wcf import datetime_text as _datetime
from adapters.wcf import nil as _nil
from adapters.wcf import sub as _sub
from adapters.wcf import text as _text

__all__ = [
    "ARRAYS",
    "CERT",
    "COMMON",
    "CP",
    "HPR",
    "NSMAP",
    "XSI",
    "ArEncoder",
    "Related",
    "generic_fault",
    "request_ints",
    "request_text",
    "search_pairs",
    "wire_type",
]

CP: Final = "http://register.nhn.no/CommunicationParty"
HPR: Final = "http://register.nhn.no/HPR"
CERT: Final = "http://register.nhn.no/CertificateDetails"
GENERIC: Final = "http://schemas.datacontract.org/2004/07/System.Collections.Generic"
NSMAP: Final = {None: CP, "i": XSI, "b": COMMON, "c": HPR}

_NIL: Final = f"{{{XSI}}}nil"
_TYPE: Final = f"{{{XSI}}}type"
# store type -> (CommunicationPartyType on the wire, the DataContract type name for i:type)
_WIRE: Final = {"Organization": ("Organization", "Organization"), "Service": ("Service", "Service"),
                "Person": ("Person", "OrganizationPerson")}
# code list OID -> AR SimpleType (as the real AR names them)
SIMPLE_TYPES: Final = {
    0: "naringskode", 3101: "kjonn", 3401: "adressetype", 3402: "kommunenummer",
    7426: "helsepersonellregisterets_hpr_klassifikasjon_av_spesialiteter",
    7701: "helsepersonellregisterets_hpr_klassifikasjon_av_rekvisisjonsrett",
    7702: "helsepersonellregisterets_hpr_klassifikasjon_av_spesialkompetanse",
    7704: "helsepersonellregisterets_hpr_klassifikasjon_av_autorisasjoner", 8666: "andre_helsetjenestetyper",
    9040: "helsevirksomhet_type", 9043: "landkoder", 9044: "type_adressekomponeneter",
    9060: "kategori_helsepersonell",
}
_COUNTRIES: Final = {"NOR": ("NO", "Norge"), "NO": ("NO", "Norge")}


def wire_type(doc: Mapping[str, Any]) -> str:
    """The DataContract type name of a party document (``Organization``, ``Service``, ``OrganizationPerson``)."""
    return _WIRE[str(doc.get("type"))][1]


# -- reading requests ------------------------------------------------------------------------------


def request_text(body: etree._Element, name: str) -> str | None:
    """The text of the request's child ``name`` (contract namespace); None if absent or nil."""
    el = body.find(f"{{{CP}}}{name}")
    if el is None or el.get(_NIL) == "true":
        return None
    return (el.text or "").strip()


def request_ints(body: etree._Element, name: str) -> list[int]:
    """The ``int`` items of an ``ArrayOfint`` child (``herIds``)."""
    el = body.find(f"{{{CP}}}{name}")
    if el is None:
        return []
    return [int((i.text or "").strip()) for i in el.findall(f"{{{ARRAYS}}}int")]


def search_pairs(body: etree._Element) -> tuple[int, int | None, list[tuple[str, str | None]]]:
    """``(Page, PageSize or None, [(key, value)])`` of a ``Search`` request."""
    search = body.find(f"{{{CP}}}search")
    if search is None or search.get(_NIL) == "true":
        return 1, None, []
    page = search.findtext(f"{{{CP}}}Page")
    size = search.findtext(f"{{{CP}}}PageSize")
    pairs: list[tuple[str, str | None]] = []
    constraints = search.find(f"{{{CP}}}SearchConstraints")
    if constraints is not None:
        for kv in constraints.findall(f"{{{GENERIC}}}KeyValuePairOfstringstring"):
            value = kv.find(f"{{{GENERIC}}}value")
            pairs.append((kv.findtext(f"{{{GENERIC}}}key") or "",
                          None if value is None or value.get(_NIL) == "true" else (value.text or "")))
    return (int(page) if page and page.strip() else 1, int(size) if size and size.strip() else None, pairs)


# -- small encoders ----------------------------------------------------------------------------------


def _code(parent: etree._Element, name: str, code: Mapping[str, Any] | None, ns: str = COMMON) -> None:
    """A ``Code`` member named ``name`` (in the owning type's namespace ``ns``), nil when absent."""
    if not code:
        _nil(parent, ns, name)
        return
    el = _sub(parent, ns, name)
    _code_members(el, code)


def _code_members(el: etree._Element, code: Mapping[str, Any]) -> None:
    oid = int(code.get("oid") or 0)
    _sub(el, COMMON, "Active", True)
    _text(el, COMMON, "CodeText", code.get("text"))
    _text(el, COMMON, "CodeValue", code.get("value"))
    _text(el, COMMON, "LongDescription", code.get("longDescription"))
    _sub(el, COMMON, "OID", oid)
    _text(el, COMMON, "SimpleType", code.get("simpleType") or SIMPLE_TYPES.get(oid))


def _codes(parent: etree._Element, name: str, codes: Iterable[Mapping[str, Any]] | None, ns: str = CP) -> None:
    el = _sub(parent, ns, name)
    for code in codes or ():
        _code_members(_sub(el, COMMON, "Code"), code)


def _period(parent: etree._Element, name: str, period: Mapping[str, Any] | None, ns: str) -> None:
    if not period:
        _nil(parent, ns, name)
        return
    el = _sub(parent, ns, name)
    _sub(el, COMMON, "From", _datetime(period.get("from") or "0001-01-01"))
    _sub(el, COMMON, "To", _datetime(period.get("to")))


def _electronic_addresses(parent: etree._Element, addresses: Iterable[Mapping[str, Any]] | None) -> None:
    el = _sub(parent, CP, "ElectronicAddresses")
    for a in addresses or ():
        item = _sub(el, COMMON, "ElectronicAddress")
        _text(item, COMMON, "Address", a.get("address"))
        _sub(item, COMMON, "Inherited", bool(a.get("inherited")))
        _sub(item, COMMON, "LastChanged", _datetime(a.get("lastChanged") or "0001-01-01"))
        code = a.get("type") or {}
        _code(item, "Type", code)
        _text(item, COMMON, "TypeCodeValue", code.get("value"))


def _postal_code(value: Any) -> int:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else 0


def _physical_addresses(parent: etree._Element, addresses: Iterable[Mapping[str, Any]] | None) -> None:
    el = _sub(parent, CP, "PhysicalAddresses")
    for a in addresses or ():
        item = _sub(el, COMMON, "PhysicalAddress")
        _text(item, COMMON, "City", a.get("city"))
        country = a.get("country")
        known = _COUNTRIES.get(str(country).upper()) if isinstance(country, str) else None
        if isinstance(country, Mapping):
            _code(item, "Country", country)
        elif known is not None:
            _code(item, "Country", {"oid": 9043, "value": known[0], "text": known[1]})
        else:
            _nil(item, COMMON, "Country")
        _sub(item, COMMON, "Description", a.get("description") or "")
        _sub(item, COMMON, "Inherited", bool(a.get("inherited")))
        _sub(item, COMMON, "LastChanged", _datetime(a.get("lastChanged") or "0001-01-01"))
        _sub(item, COMMON, "PostalCode", _postal_code(a.get("postalCode")))
        _sub(item, COMMON, "Postbox", a.get("postbox") or "")
        _sub(item, COMMON, "StreetAddress", a.get("streetAddress") or "")
        code = a.get("type") or {}
        _code(item, "Type", code)
        _text(item, COMMON, "TypeCodeValue", code.get("value"))


def _masked_nin(nin: str) -> str:
    return nin[:6] + "X" * (len(nin) - 6) if len(nin) == 11 else "X" * len(nin)


@dataclass(frozen=True)
class Related:
    """Documents related to the parties being encoded, fetched by the face in a few indexed queries."""

    hpr: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # HPR number -> hpr.jsonl record
    children: Mapping[int, Sequence[Mapping[str, Any]]] = field(default_factory=dict)  # parent HER-id -> parties
    parties: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # HER-id -> party (parents)


class ArEncoder:
    """Encodes one response; ``server_time`` is every party's ``ServerTime`` in it."""

    def __init__(self, server_time: dt.datetime, related: Related | None = None) -> None:
        self.server_time = server_time.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        self.related = related or Related()

    # -- envelopes of results ------------------------------------------------------------------------

    @staticmethod
    def response(operation: str) -> etree._Element:
        return etree.Element(f"{{{CP}}}{operation}Response", nsmap=NSMAP)

    @staticmethod
    def result(response: etree._Element, operation: str, value: object = None) -> etree._Element:
        return _sub(response, CP, f"{operation}Result", value)

    @staticmethod
    def nil_result(response: etree._Element, operation: str) -> etree._Element:
        return _nil(response, CP, f"{operation}Result")

    # -- parties -------------------------------------------------------------------------------------

    def party(self, parent: etree._Element, name: str, doc: Mapping[str, Any], *, typed: bool,
              shallow: bool = False) -> etree._Element:
        """Encode ``doc`` as element ``name`` (CommunicationParty namespace); ``typed`` adds ``i:type``."""
        el = _sub(parent, CP, name)
        if typed:
            el.set(_TYPE, wire_type(doc))
        self._base(el, doc)
        kind = doc.get("type")
        if kind == "Organization":
            self._organization(el, doc, shallow)
        elif kind == "Service":
            self._service(el, doc)
        else:
            self._organization_person(el, doc, shallow)
        return el

    def parties(self, parent: etree._Element, name: str, item: str, docs: Iterable[Mapping[str, Any]]
                ) -> etree._Element:
        """An ``ArrayOfX`` element ``name`` of shallow parties named ``item``, each with ``i:type``."""
        el = _sub(parent, CP, name)
        for doc in docs:
            self.party(el, item, doc, typed=True, shallow=True)
        return el

    def _base(self, el: etree._Element, doc: Mapping[str, Any]) -> None:
        parent_her_id = doc.get("parentHerId")
        root = not isinstance(parent_her_id, int) or parent_her_id <= 0
        _sub(el, CP, "Active", bool(doc.get("active", True)))
        _code(el, "CoverageAreaType", doc.get("coverageAreaType"), CP)
        _text(el, CP, "DisplayName", doc.get("displayName"))
        _electronic_addresses(el, doc.get("electronicAddresses"))
        _sub(el, CP, "FutureElectronicAddresses")
        _sub(el, CP, "HerId", int(doc["herId"]))
        _sub(el, CP, "IsValidCommunicationParty", bool(doc.get("isValidCommunicationParty", True)))
        _sub(el, CP, "LastChanged", _datetime(doc.get("lastChanged") or "0001-01-01"))
        _code(el, "Municipality", doc.get("municipality"), CP)
        _text(el, CP, "Name", doc.get("name"))
        _code(el, "ParentBusinessType", None if root else doc.get("parentBusinessType"), CP)
        _sub(el, CP, "ParentHerId", -1 if root else parent_her_id)
        _text(el, CP, "ParentName", None if root else doc.get("parentName"))
        parent_org = doc.get("parentOrganizationNumber")
        _sub(el, CP, "ParentOrganizationNumber",
             parent_org if not root and isinstance(parent_org, int) and parent_org > 0 else -1)
        _physical_addresses(el, doc.get("physicalAddresses"))
        _sub(el, CP, "ServerTime", self.server_time)
        _sub(el, CP, "Type", _WIRE[str(doc.get("type"))][0])
        _period(el, "Valid", doc.get("valid"), CP)

    def _organization(self, el: etree._Element, doc: Mapping[str, Any], shallow: bool) -> None:
        _code(el, "BusinessType", doc.get("businessType"), CP)
        _codes(el, "IndustryCodes", doc.get("industryCodes"))
        org = doc.get("organizationNumber")
        _sub(el, CP, "OrganizationNumber", org if isinstance(org, int) else -1)
        under = [] if shallow else list(self.related.children.get(int(doc["herId"]), ()))
        people = _sub(el, CP, "People")
        for child in under:
            if child.get("type") == "Person":
                self.party(people, "OrganizationPerson", child, typed=True, shallow=True)
        _codes(el, "Properties", doc.get("properties"))
        services = _sub(el, CP, "Services")
        for child in under:
            if child.get("type") == "Service":
                self.party(services, "Service", child, typed=True, shallow=True)

    def _service(self, el: etree._Element, doc: Mapping[str, Any]) -> None:
        _code(el, "Code", doc.get("code"), CP)
        areas = _sub(el, CP, "CoverageAreas")
        for area in doc.get("coverageAreas") or ():
            item = _sub(areas, CP, "CoverageInfo")
            _text(item, CP, "DisplayName", area.get("displayName"))
            _sub(item, CP, "HerId", int(area.get("herId") or 0))
            _text(item, CP, "Name", area.get("name"))
            _sub(item, CP, "OrganizationNumber", int(area.get("organizationNumber") or -1))
        _text(el, CP, "Description", doc.get("description"))
        _text(el, CP, "LocationDescription", doc.get("locationDescription"))
        _codes(el, "Properties", doc.get("properties"))

    def _organization_person(self, el: etree._Element, doc: Mapping[str, Any], shallow: bool) -> None:
        organizations = _sub(el, CP, "Organizations")
        parent = doc.get("parentHerId")
        if not shallow and isinstance(parent, int) and parent in self.related.parties:
            self.party(organizations, "Organization", self.related.parties[parent], typed=True, shallow=True)
        self._person(el, doc)
        _codes(el, "Properties", doc.get("properties"))
        _text(el, CP, "Title", doc.get("title"))

    # -- HPR person ----------------------------------------------------------------------------------

    def _person(self, parent: etree._Element, doc: Mapping[str, Any]) -> None:
        person = doc.get("person")
        if not isinstance(person, Mapping):
            _nil(parent, CP, "Person")
            return
        hpr = self.related.hpr.get(str(doc.get("hprNumber"))) if doc.get("hprNumber") is not None else None
        el = _sub(parent, CP, "Person")
        _sub(el, HPR, "BirthDate", _datetime(person.get("birthDate") or "0001-01-01"))
        nin = doc.get("nin")
        if isinstance(nin, str) and nin:
            citizen = _sub(el, HPR, "CitizenId")
            _sub(citizen, COMMON, "CitizenIdType", "DN" if nin[:1] in "4567" else "SSN")
            _sub(citizen, COMMON, "Id", _masked_nin(nin))
            _code(citizen, "Sex", person.get("sex"))
        else:
            _nil(el, HPR, "CitizenId")
        _text(el, HPR, "FirstName", person.get("firstName"))
        if doc.get("hprNumber") is None:
            _nil(el, HPR, "HPRInformation")
        else:
            self._hpr_information(el, int(doc["hprNumber"]), hpr)
        changed = (hpr or {}).get("lastUpdated") or doc.get("lastChanged") or "0001-01-01"
        _sub(el, HPR, "LastChanged", _datetime(changed))
        _text(el, HPR, "LastName", person.get("lastName"))
        _text(el, HPR, "MiddleName", person.get("middleName"))
        _code(el, "Sex", person.get("sex"), HPR)

    def _hpr_information(self, parent: etree._Element, number: int, hpr: Mapping[str, Any] | None) -> None:
        el = _sub(parent, HPR, "HPRInformation")
        authorizations = _sub(el, HPR, "Authorizations")
        changed = _datetime((hpr or {}).get("lastUpdated") or "0001-01-01")
        for approval in (hpr or {}).get("approvals") or ():
            a = _sub(authorizations, HPR, "Authorization")
            _sub(a, HPR, "LastChanged", changed)
            _code(a, "Profession", approval.get("category"), HPR)
            rights = approval.get("requisitionRights") or []
            if rights:
                r = _sub(a, HPR, "Requisition")
                _sub(r, HPR, "LastChanged", changed)
                _code(r, "Type", rights[0].get("type"), HPR)
                _period(r, "Valid", rights[0].get("valid"), HPR)
            else:
                _nil(a, HPR, "Requisition")
            specialities = _sub(a, HPR, "Specialities")
            for sp in approval.get("specialities") or ():
                item = _sub(specialities, HPR, "Speciality")
                _sub(item, HPR, "LastChanged", changed)
                _code(item, "Type", sp.get("type"), HPR)
                _period(item, "Valid", sp.get("valid"), HPR)
            _code(a, "Type", approval.get("authorization"), HPR)
            _period(a, "Valid", approval.get("valid"), HPR)
        _sub(el, HPR, "HPRNo", str(number))
        _sub(el, HPR, "HPRNumber", number)
        _sub(el, HPR, "LastChanged", changed)
        _sub(el, HPR, "SpecialCompetences")

    # -- other results -------------------------------------------------------------------------------

    @staticmethod
    def last_changed(parent: etree._Element, name: str, rows: Iterable[tuple[int, dt.datetime | None]]) -> None:
        el = _sub(parent, CP, name)
        for her_id, changed in rows:
            item = _sub(el, CP, "CommunicationPartyLastChangedInfo")
            _sub(item, CP, "HerId", her_id)
            _sub(item, CP, "LastUpdated", _datetime(changed or "0001-01-01"))

    @staticmethod
    def certificate_details(parent: etree._Element, name: str, der: bytes, ldap_url: str | None) -> None:
        el = _sub(parent, CP, name)
        _sub(el, CERT, "Certificate", base64.b64encode(der).decode("ascii"))
        _text(el, CERT, "LdapUrl", ldap_url)

    def search_result(self, parent: etree._Element, name: str, total: int, docs: Sequence[Mapping[str, Any]],
                      facets: Mapping[str, Sequence[tuple[str, int]]], texts: Mapping[tuple[str, str], str],
                      facet_names: Mapping[str, tuple[str, str]]) -> None:
        """``SearchResult{Facets, Results, ServerTime, TotalResults}``; ``facet_names`` maps a facet field
        to (its constraint key, its display name)."""
        el = _sub(parent, CP, name)
        facets_el = _sub(el, CP, "Facets")
        for facet, entries in facets.items():
            key, display = facet_names[facet]
            f = _sub(facets_el, CP, "SearchFacet")
            _sub(f, CP, "CodeValue", key)
            entries_el = _sub(f, CP, "Entries")
            for value, hits in entries:
                e = _sub(entries_el, CP, "SearchResultFacetEntry")
                _sub(e, CP, "Hits", hits)
                _sub(e, CP, "Text", texts.get((facet, value), value))
                _sub(e, CP, "Type", key)
                _sub(e, CP, "Value", value)
            _sub(f, CP, "Name", display)
        self.parties(el, "Results", "CommunicationParty", docs)
        _sub(el, CP, "ServerTime", self.server_time)
        _sub(el, CP, "TotalResults", total)
