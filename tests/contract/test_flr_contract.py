"""The FLR contract: the served WSDL is NHN's real one with only the addresses changed, every operation of its
portType is answered or refused as docs/flr.md says, NHN's example answers validate against the compiled
schemas, and the adapter's answers are shaped like them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from lxml import etree

from adapters.flr import FlrEncoder, Memo, Related
from store.flr import PatientPeriod
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.test_flr_soap import EXAMPLES, FLR, WSDL, example, real_schema
from tests.integration.wcf_support import assert_same_structure

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

REPO = Path(__file__).resolve().parents[2]
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
_ADDRESSES = ("{http://schemas.xmlsoap.org/wsdl/soap/}address", "{http://schemas.xmlsoap.org/wsdl/soap12/}address")


def _strip_addresses(root: etree._Element) -> bytes:
    root = etree.fromstring(etree.tostring(root))
    for el in root.iter(*_ADDRESSES):
        el.set("location", "-")
    for el in root.iter("{http://www.w3.org/2005/08/addressing}Address"):
        el.text = "-"
    return bytes(etree.tostring(root, method="c14n"))


def test_served_wsdl_is_the_real_one_with_our_addresses() -> None:
    from server.soap.flr.contract import load_contract

    assert (REPO / "wsdl" / "nhn-fastlegeregisteret-read.wsdl").read_bytes() == WSDL.read_bytes()
    contract = load_contract("https://flr.example.invalid")
    served = etree.fromstring(contract.wsdl)
    assert {e.get("location") for e in served.iter(*_ADDRESSES)} == {
        "https://flr.example.invalid/v2/flr/Basic", "https://flr.example.invalid/v2/flr"}
    assert _strip_addresses(served) == _strip_addresses(etree.parse(str(WSDL)).getroot())
    assert contract.output_action("GetPatientGPDetails") == f"{FLR}/IFlrReadOperations/GetPatientGPDetailsResponse"
    assert contract.fault_action("ConfirmGP") == f"{FLR}/IFlrReadOperations/ConfirmGPGenericFaultFault"


def test_every_operation_is_answered_or_refused() -> None:
    from types import SimpleNamespace

    from server.soap.flr.face import NOT_OFFERED, OPERATIONS
    from server.soap.wcf.service import build_service

    port_type = etree.parse(str(WSDL)).getroot().find(f"{{{_WSDL_NS}}}portType")
    assert port_type is not None
    operations = {op.get("name") for op in port_type.findall(f"{{{_WSDL_NS}}}operation")}
    assert set(OPERATIONS) | set(NOT_OFFERED) == operations and not set(OPERATIONS) & set(NOT_OFFERED)
    face = SimpleNamespace(contract=SimpleNamespace(operations=tuple(sorted(operations)), namespace=FLR))
    assert set(build_service(face, "FlrReadOperations").public_methods) == operations  # type: ignore[arg-type]


def test_real_examples_validate_against_the_compiled_schemas() -> None:
    for path in sorted(EXAMPLES.glob("*.xml")):
        root = etree.parse(str(path)).getroot()
        fault = root.find(".//{http://register.nhn.no/Common}GenericFault")
        real_schema().assertValid(fault if fault is not None else example(path.stem))


def test_adapter_answer_is_valid_and_shaped_like_the_real_one() -> None:
    contract = {"contractId": 1000001, "gpHprNumber": 1000002, "gpHerId": 90001, "officeHerId": 90000,
                "officeOrganizationNumber": 974012510, "kommune": "0301", "maxPatients": 1200,
                "validFrom": "2020-01-01", "validTo": None, "lastChanged": "2026-11-17T06:00:00Z"}
    office = {"herId": 90000, "name": "Testlegesenter", "organizationNumber": 974012510,
              "municipality": {"oid": 3402, "value": "0301", "text": "OSLO"},
              "physicalAddresses": [{"type": {"oid": 3401, "value": "RES", "text": "Besøksadresse"},
                                     "streetAddress": "Gate 1", "postalCode": "0150", "city": "OSLO",
                                     "country": "NOR"}],
              "valid": {"from": "2001-01-01", "to": "9999-12-31"}}
    gp = {"hprNumber": 1000002, "nin": "01015012345", "givenName": "Kari", "familyName": "Lege",
          "birthDate": "1950-01-01", "gender": {"oid": 3101, "value": "2", "text": "Kvinne"}}
    related = Related(offices={90000: office}, hpr={"1000002": gp})
    period = PatientPeriod(5, "1000001", "12345678999", dt.date(2021, 1, 1), None)

    def answer(enc: FlrEncoder, doc: dict[str, object]) -> etree._Element:
        r = enc.response("GetPatientGPDetails")
        enc.association(r, "GetPatientGPDetailsResult", period, doc, gp_her_id=90001, day=dt.date(2026, 12, 3))
        return r

    r = answer(FlrEncoder(related), contract)
    memo = Memo()
    for doc in (contract, contract, dict(contract, maxPatients=1500), contract):  # cold, warm, changed, back
        assert etree.tostring(answer(FlrEncoder(related, memo), doc), method="c14n") == etree.tostring(
            answer(FlrEncoder(related), doc), method="c14n")
    assert len(memo._entries) == 2
    real_schema().assertValid(r)
    assert assert_same_structure(r, example("get-patient-gp"), subset=True) == 2
    result = r[0]
    names = [etree.QName(c).localname for c in result]
    assert names == sorted(names)  # DataContract order: ordinal
    assert result.findtext(f"{{{FLR}}}GPHerId") == "90001"
