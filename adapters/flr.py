"""FLR (Fastlegeregisteret) documents → the wire types of NHN's IFlrReadOperations: pure, no I/O.

Input: contract documents (``flr.jsonl``, docs/registers.md) with their doctor cycles
(:func:`store.flr.cycles_of`), list periods (``flr_patient`` rows), the AR documents of the offices, the HPR
documents of the GPs, and (when an operation returns patient data) the patient as the caller's access
profile may see it. Output: lxml elements that follow the real contract (wsdl/nhn-fastlegeregisteret-read.wsdl)
as WCF's DataContractSerializer writes them (adapters/wcf.py: ordinal member order, nil members present):

* FLR types (PatientToGPContractAssociation, GPContract, GPOnContractAssociation, Person, GPDetails, GPOffice's
  own members, PrimaryHealthCareTeam, paged results) in ``http://schemas.nhn.no/reg/flr``; Code,
  PhysicalAddress, ElectronicAddress in ``http://register.nhn.no/Common``; Period in
  ``http://schemas.nhn.no/reg/Common/en`` (``To`` nil for an open end); GPOffice's base ``Business`` members in
  ``http://register.nhn.no/Corporate`` (before GPOffice's own, as a base type's members come first);
* a list's patients and its GP come with the codes FLR uses: relationship OID 7750 (``LPFL`` fastlege,
  ``LPVI`` vikar), sex OID 3101, kommune OID 3402, address type OID 3401;
* nothing is sent twice: a doctor cycle inside a contract has a nil ``GPContract``; a contract inside an
  association has nil ``DoctorCycles`` (the association's own ``DoctorCycles`` holds those in force at the
  time asked about) and a nil ``PatientList`` (the list is GetGPPatientList's business).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from lxml import etree

from adapters.wcf import ARRAYS, COMMON, XSI, datetime_text, members, nil, sub
from store.flr import Cycle, PatientPeriod, contract_period, cycles_of
from store.model import CurrentValues, current

__all__ = ["CORPORATE", "EN", "FLR", "FlrEncoder", "Memo", "Related"]

FLR: Final = "http://schemas.nhn.no/reg/flr"
EN: Final = "http://schemas.nhn.no/reg/Common/en"
CORPORATE: Final = "http://register.nhn.no/Corporate"
SYSTEM: Final = "http://schemas.datacontract.org/2004/07/System"
NSMAP: Final = {None: FLR, "i": XSI, "b": COMMON, "c": EN, "d": CORPORATE, "e": ARRAYS}

_RELATIONSHIP: Final = {"LPFL": "Fastlege", "LPVI": "Vikar"}
_SEX: Final = {"mann": ("1", "Mann"), "kvinne": ("2", "Kvinne")}
_ADDRESS_TYPE: Final = {"bosted": ("RES", "Besøksadresse"), "post": ("PST", "Postadresse")}
_SIMPLE: Final = {3101: "kjonn", 3401: "adressetype", 3402: "kommunenummer", 7750: "flrv2_relationship",
                  9044: "type_adressekomponeneter", 9040: "helsevirksomhet_type", 0: "naringskode"}
_MIN: Final = "0001-01-01T00:00:00"
_NIL: Final = f"{{{XSI}}}nil"

Member = object


@dataclass
class Related:
    """What encoding needs beyond the contract documents: office AR documents by HER-id, HPR documents by
    HPR number (string), and patients (as the profile may see them) by the number on the list."""

    offices: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)
    hpr: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    patients: Mapping[str, CurrentValues[Any]] = field(default_factory=dict)
    office_sizes: Mapping[int, int] = field(default_factory=dict)  # contracts per office (IsGroupOffice)


def _when(value: Any) -> str:
    return datetime_text(value) if value else _MIN


def _code_of(oid: int, value: str | None, text: str | None) -> Mapping[str, Any] | None:
    return None if value is None else {"oid": oid, "value": value, "text": text}


def _code(code: Mapping[str, Any] | None) -> Member:
    """A ``Code`` member: nil without a code."""
    if not code:
        return None

    def build(el: etree._Element) -> None:
        oid = int(code.get("oid") or 0)
        members(el, COMMON, {"Active": True, "CodeText": code.get("text"), "CodeValue": code.get("value"),
                             "OID": oid, "SimpleType": code.get("simpleType") or _SIMPLE.get(oid)})

    return build


def _codes(codes: Iterable[Mapping[str, Any]] | None) -> Member:
    def build(el: etree._Element) -> None:
        for c in codes or ():
            builder = _code(c)
            if callable(builder):
                builder(sub(el, COMMON, "Code"))

    return build


def _period(start: Any, end: Any) -> Member:
    def build(el: etree._Element) -> None:
        sub(el, EN, "From", _when(start))
        if end is None or str(end).startswith("9999-12-31"):
            nil(el, EN, "To")
        else:
            sub(el, EN, "To", datetime_text(end))

    return build


def _postal_code(value: Any) -> int:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else 0


def _physical_addresses(addresses: Iterable[Mapping[str, Any]] | None, municipality: Mapping[str, Any] | None
                        ) -> Member:
    def build(el: etree._Element) -> None:
        for a in addresses or ():
            item = sub(el, COMMON, "PhysicalAddress")
            country = a.get("country")
            members(item, COMMON, {
                "City": a.get("city"),
                "Country": _code({"oid": 9043, "value": "NO", "text": "Norge"} if country in ("NOR", "NO")
                                 else None),
                "Description": a.get("description"), "Inherited": bool(a.get("inherited")),
                "LastChanged": _when(a.get("lastChanged")), "Municipality": _code(municipality),
                "PostalCode": _postal_code(a.get("postalCode")), "Postbox": a.get("postbox"),
                "StreetAddress": a.get("streetAddress"), "Type": _code(a.get("type")),
            })

    return build


def _electronic_addresses(addresses: Iterable[Mapping[str, Any]] | None) -> Member:
    def build(el: etree._Element) -> None:
        for a in addresses or ():
            kind = a.get("type") or {}
            members(sub(el, COMMON, "ElectronicAddress"), COMMON, {
                "Address": a.get("address"), "Inherited": bool(a.get("inherited")),
                "LastChanged": _when(a.get("lastChanged")), "Type": _code(kind or None),
                "TypeCodeValue": kind.get("value"),
            })

    return build


def _empty(_: etree._Element) -> None:
    return None


class Memo:
    """Encoded association parts by their exact inputs (the documents' canonical JSON, the office size, the
    day): a bounded per-process cache, emptied whole when full. A hit is the same XML a fresh build gives
    (equivalence-tested in tests/integration/test_flr_soap.py); a changed document is a different key."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[bytes, tuple[etree._Element, etree._Element]] = {}

    def get(self, key: bytes) -> tuple[etree._Element, etree._Element] | None:
        return self._entries.get(key)

    def put(self, key: bytes, value: tuple[etree._Element, etree._Element]) -> tuple[etree._Element, etree._Element]:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = value
        return value


class FlrEncoder:
    """Builds FLR answers; ``today`` decides which doctor cycles are in force where a read is "now"."""

    def __init__(self, related: Related, memo: Memo | None = None) -> None:
        self.related = related
        self.memo = memo

    def _memo(self, doc: Mapping[str, Any], day: dt.date | None, build: Callable[[], tuple[Member, Member]]
              ) -> tuple[Member, Member]:
        """An association's ``DoctorCycles`` and ``GPContract`` builders: built, or, with a :class:`Memo`,
        copies of the elements built before from the same inputs (every patient of a list shares them)."""
        if self.memo is None:
            return build()
        office = self.related.offices.get(doc.get("officeHerId") or -1)
        key = b"\x00".join([
            orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), orjson.dumps(office, option=orjson.OPT_SORT_KEYS),
            str(self.related.office_sizes.get(int(office["herId"]), 1) if office else 0).encode(),
            str(day).encode(), *(orjson.dumps(self.related.hpr.get(str(c.hpr_number)), option=orjson.OPT_SORT_KEYS)
                                 for c in cycles_of(doc))])
        built = self.memo.get(key)
        if built is None:
            parts = []
            for builder, name in zip(build(), ("DoctorCycles", "GPContract"), strict=True):
                el = etree.Element(f"{{{FLR}}}{name}", nsmap=NSMAP)  # type: ignore[arg-type]
                if callable(builder):
                    builder(el)
                else:
                    el.set(_NIL, "true")
                parts.append(el)
            built = self.memo.put(key, (parts[0], parts[1]))
        return copy.deepcopy(built[0]), copy.deepcopy(built[1])

    @staticmethod
    def response(operation: str) -> etree._Element:
        return etree.Element(f"{{{FLR}}}{operation}Response", nsmap=NSMAP)  # type: ignore[arg-type]

    @staticmethod
    def result(response: etree._Element, operation: str, value: object = None) -> etree._Element:
        return sub(response, FLR, f"{operation}Result", value)

    @staticmethod
    def nil_result(response: etree._Element, operation: str) -> etree._Element:
        return nil(response, FLR, f"{operation}Result")

    @staticmethod
    def longs(parent: etree._Element, name: str, values: Iterable[int]) -> None:
        el = sub(parent, FLR, name)
        for v in values:
            sub(el, ARRAYS, "long", v)

    # -- persons ------------------------------------------------------------------------------------------

    def gp_person(self, hpr_number: int) -> Member:
        """FLR ``Person`` of a GP, from the GP's HPR record (nil if HPR does not know the number)."""
        doc = self.related.hpr.get(str(hpr_number))
        if doc is None:
            return None

        def build(el: etree._Element) -> None:
            gender = doc.get("gender") or None
            members(el, FLR, {
                "DateOfBirth": datetime_text(doc["birthDate"]) if doc.get("birthDate") else None,
                "DateOfDeath": None, "FirstName": doc.get("givenName"), "LastName": doc.get("familyName"),
                "MiddleName": doc.get("middleName"), "NIN": doc.get("nin"),
                "PhysicalAddresses": _empty, "Sex": _code(gender), "Status": _empty,
            })

        return build

    def patient(self, number: str) -> Member:
        """FLR ``Person`` of a patient as the caller's profile may see them (nil when not asked or unknown)."""
        person = self.related.patients.get(number)
        if person is None:
            return None

        def build(el: etree._Element) -> None:
            name = person.name
            birth = person.birth_date
            death = current(person.death)
            sex = _SEX.get(person.current_gender or "")
            ident = person.current_identifier
            members(el, FLR, {
                "DateOfBirth": datetime_text(birth) if birth else None,
                "DateOfDeath": datetime_text(death.date) if death is not None and death.date else None,
                "FirstName": name.given if name else None, "LastName": name.family if name else None,
                "MiddleName": name.middle if name else None, "NIN": ident.number if ident else number,
                "PhysicalAddresses": self._person_addresses(person), "Sex": _code(_code_of(3101, *sex) if sex
                                                                                   else None),
                "Status": _empty,
            })

        return build

    @staticmethod
    def _person_addresses(person: CurrentValues[Any]) -> Member:
        def build(el: etree._Element) -> None:
            for a in person.addresses:
                if getattr(a, "masked", False) or not a.meta.current:
                    continue  # a protected address is not released; see docs/flr.md
                street = " ".join(str(p) for p in (a.street, a.house_number, a.house_letter) if p) or None
                kind = _ADDRESS_TYPE.get(a.type)
                members(sub(el, COMMON, "PhysicalAddress"), COMMON, {
                    "City": a.poststed, "Country": None, "Description": None, "Inherited": False,
                    "LastChanged": _when(a.meta.valid_from), "Municipality": _code(_code_of(3402, a.kommune, None)),
                    "PostalCode": _postal_code(a.postnummer), "Postbox": None, "StreetAddress": street,
                    "Type": _code(_code_of(3401, *kind) if kind else None),
                })

        return build

    # -- offices and contracts ----------------------------------------------------------------------------

    def gp_office(self, doc: Mapping[str, Any]) -> Member:
        office = self.related.offices.get(doc.get("officeHerId") or -1)
        if office is None:
            return None

        def build(el: etree._Element) -> None:
            members(el, CORPORATE, {
                "Children": _empty, "DisplayName": office.get("displayName"),
                "ElectronicAddresses": _electronic_addresses(office.get("electronicAddresses")),
                "GeographicalCoordinates": None, "IndustryCodes": _codes(office.get("industryCodes")),
                "IsGovernmentCompany": None, "LastChanged": _when(office.get("lastChanged")),
                "Municipality": _code(office.get("municipality")), "Name": office.get("name"),
                "OpeningHours": None, "OrganizationNumber": int(office.get("organizationNumber") or 0),
                "ParentOrganizationName": None, "ParentOrganizationNumber": None,
                "PhysicalAddresses": _physical_addresses(office.get("physicalAddresses"), office.get("municipality")),
                "Properties": _empty, "ResponsiblePerson": None, "SectorCode": None,
                "UpdatedOn": _when(office.get("lastChanged")),
                "Valid": _period((office.get("valid") or {}).get("from"), (office.get("valid") or {}).get("to")),
            })
            members(el, FLR, {
                "District": None, "IsGroupOffice": self.related.office_sizes.get(int(office["herId"]), 1) > 1,
                "PrimaryHealthCareTeamId": doc.get("primaryHealthCareTeamId"),
            })

        return build

    def cycles(self, doc: Mapping[str, Any], cycles: Sequence[Cycle] | None = None, *,
               with_contract: bool = False) -> Member:
        chosen = cycles_of(doc) if cycles is None else cycles

        def build(el: etree._Element) -> None:
            for c in chosen:
                members(sub(el, FLR, "GPOnContractAssociation"), FLR, {
                    "GP": self.gp_person(c.hpr_number),
                    "GPContract": self.contract(doc, with_cycles=False) if with_contract else None,
                    "GPContractId": int(doc["contractId"]), "HprNumber": c.hpr_number, "Id": c.id,
                    "Relationship": _code(_code_of(7750, c.relationship, _RELATIONSHIP.get(c.relationship))),
                    "SubstituteForHprNumber": c.substitute_for, "UpdatedOn": _when(doc.get("lastChanged")),
                    "Valid": _period(c.valid_from, c.valid_to), "WorkingOnDays": _empty,
                    "WorkingPercentage": c.working_percentage,
                })

        return build

    def contract(self, doc: Mapping[str, Any], *, with_cycles: bool = True) -> Member:
        start, end = contract_period(doc)

        def build(el: etree._Element) -> None:
            kommune = doc.get("kommune")
            office = self.related.offices.get(doc.get("officeHerId") or -1) or {}
            municipality = office.get("municipality") if office else None
            members(el, FLR, {
                "AgreementDate": _when(doc.get("agreementDate") or start),
                "CoopMunicipalities": _codes(doc.get("coopMunicipalities")),
                "DoctorCycles": self.cycles(doc) if with_cycles else None,
                "EndReason": _code(doc.get("endReason")), "GPOffice": self.gp_office(doc),
                "GPOfficeOrganizationNumber": int(doc.get("officeOrganizationNumber") or 0),
                "Id": int(doc["contractId"]), "IsFixedSalary": bool(doc.get("isFixedSalary")),
                "MaxPatients": int(doc.get("maxPatients") or 0),
                "Municipality": _code(municipality or _code_of(3402, kommune, None)),
                "Name": doc.get("name"), "OutOfOfficeOffices": _empty,
                "ParticipatesOnCommonList": bool(doc.get("participatesOnCommonList")), "PatientList": None,
                "PatientsOnWaitingList": int(doc.get("patientsOnWaitingList") or 0),
                "PlacesAvailable": doc.get("placesAvailable"),
                "PrimaryHealthCareTeamId": doc.get("primaryHealthCareTeamId"),
                "RequiresMembership": _code(doc.get("requiresMembership")), "Status": _code(doc.get("status")),
                "UpdatedOn": _when(doc.get("lastChanged")), "Valid": _period(start, end),
            })

        return build

    def contracts(self, parent: etree._Element, name: str, docs: Iterable[Mapping[str, Any]]) -> None:
        el = sub(parent, FLR, name)
        for doc in docs:
            builder = self.contract(doc)
            if callable(builder):
                builder(sub(el, FLR, "GPContract"))

    # -- associations ---------------------------------------------------------------------------------------

    def association(self, parent: etree._Element, name: str, period: PatientPeriod, doc: Mapping[str, Any] | None,
                    *, gp_her_id: int | None, day: dt.date | None, with_patient: bool = False) -> None:
        """A ``PatientToGPContractAssociation``: the list period, its contract (``doc``; None leaves the
        contract out, as a list's own rows do), the doctor cycles in force on ``day`` (all if None)."""
        cycles = None if doc is None else [c for c in cycles_of(doc) if day is None or c.covers(day)]
        shared: tuple[Member, Member] = (_empty, None)
        if doc is not None:
            shared = self._memo(doc, day, lambda: (self.cycles(doc, cycles), self.contract(doc, with_cycles=False)))
        members(sub(parent, FLR, name), FLR, {
            "BeginCode": None, "DoctorCycles": shared[0], "EndCode": None, "GPContract": shared[1],
            "GPContractId": int(period.contract_id), "GPHerId": gp_her_id, "Id": period.id,
            "Patient": self.patient(period.number) if with_patient else None,
            "PatientNIN": period.number, "Period": _period(period.valid_from, period.valid_to),
            "UpdatedOn": _when(doc.get("lastChanged") if doc is not None else None),
        })

    # -- GP details, search pages, teams ----------------------------------------------------------------------

    def gp_details(self, parent: etree._Element, name: str, hpr_number: int,
                   contracts: Sequence[tuple[Mapping[str, Any], Sequence[Cycle]]]) -> None:
        """``GPDetails``: the GP and the doctor cycles they work (each with its contract)."""
        el = sub(parent, FLR, name)

        def cycles(box: etree._Element) -> None:
            for doc, chosen in contracts:
                builder = self.cycles(doc, chosen, with_contract=True)
                if callable(builder):
                    builder(box)

        members(el, FLR, {"Contracts": cycles, "GP": self.gp_person(hpr_number), "HprNumber": hpr_number,
                          "Languages": _empty})

    def paged(self, parent: etree._Element, name: str, total: int) -> etree._Element:
        """A ``PagedResultOf…`` element with its ``Results`` (returned, to fill) and ``Total``."""
        el = sub(parent, FLR, name)
        results = sub(el, FLR, "Results")
        sub(el, FLR, "Total", total)
        return results

    def team(self, parent: etree._Element, name: str, team_id: int, docs: Sequence[Mapping[str, Any]]) -> None:
        """A ``PrimaryHealthCareTeam`` made of the contracts that name it (``primaryHealthCareTeamId``)."""
        first = docs[0]

        def contracts(box: etree._Element) -> None:
            for doc in docs:
                start, end = contract_period(doc)
                members(sub(box, FLR, "PrimaryHealthCareContract"), FLR, {
                    "FlrId": int(doc["contractId"]), "Id": int(doc["contractId"]),
                    "MembershipPeriod": _period(start, end)})

        def people(box: etree._Element) -> None:
            for doc in docs:
                for c in cycles_of(doc):
                    members(sub(box, FLR, "PrimaryHealthCarePerson"), FLR, {
                        "HprNumber": c.hpr_number, "Id": c.id, "IsSubstitute": c.relationship != "LPFL",
                        "MembershipPeriod": _period(c.valid_from, c.valid_to),
                        "Role": _code({"oid": 9060, "value": "LE", "text": "Lege"}),
                        "WorkingPercentage": c.working_percentage})

        members(sub(parent, FLR, name), FLR, {
            "Id": team_id, "OrganizationNumber": int(first.get("officeOrganizationNumber") or 0),
            "PrimaryHealthCareContracts": contracts,
            "PrimaryHealthCareLeaderHprNumber": int(first.get("gpHprNumber") or 0),
            "PrimaryHealthCarePeople": people})
