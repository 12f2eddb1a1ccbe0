"""The HPR and KRK contracts: the served HPR WSDL is NHN's real one with only the addresses changed, the KRK WSDL
is the project's copy, every portType operation has a method, and the adapters' output validates against the
contracts' schemas (compiled independently of the server's copies)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import zeep
from lxml import etree

from adapters.hpr import HprEncoder
from adapters.krk import KrkEncoder
from store import geo
from store.hpr import at
from store.krk import Contact, KrkHit
from store.synthetic import generate_population
from tests.contract.test_ar_contract import _strip_addresses
from tests.factories import hpr_history_doc
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.wcf_support import schema_of

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

REPO = Path(__file__).resolve().parents[2]
HPR_WSDL = REPO / "tests" / "data" / "helsepersonellregisteret.wsdl"
KRK_WSDL = REPO / "wsdl" / "nhn-krk.wsdl"
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"


def _operations(wsdl: Path) -> set[str]:
    port_type = etree.parse(str(wsdl)).getroot().find(f"{{{_WSDL_NS}}}portType")
    assert port_type is not None
    return {str(op.get("name")) for op in port_type.findall(f"{{{_WSDL_NS}}}operation")}


def test_served_hpr_wsdl_is_the_real_one_with_our_addresses() -> None:
    from server.soap.hpr.app import hpr_contract

    assert (REPO / "wsdl" / "helsepersonellregisteret.wsdl").read_bytes() == HPR_WSDL.read_bytes()
    contract = hpr_contract("https://hpr.example.invalid")
    served = etree.fromstring(contract.wsdl)
    assert {e.get("location") for e in served.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")} == {
        "https://hpr.example.invalid/v2/HPR/Basic"}
    assert _strip_addresses(served) == _strip_addresses(etree.parse(str(HPR_WSDL)).getroot())
    assert "Søk" in contract.operations and contract.actions["Søk"].endswith("/IHPR2Service/Søk")


@pytest.mark.parametrize("face", ["hpr", "krk"])
def test_every_operation_has_a_method(face: str) -> None:
    from server.soap.hpr.face import READ_OPERATIONS
    from server.soap.krk.face import OPERATIONS
    from server.soap.wcf.service import build_service

    answered: tuple[str, ...] = READ_OPERATIONS if face == "hpr" else OPERATIONS
    wsdl, ns = ((HPR_WSDL, "http://schemas.nhn.no/reg/HPRv2") if face == "hpr"
                else (KRK_WSDL, "http://schemas.nhn.no/reg/krk"))
    operations = _operations(wsdl)
    assert set(answered) <= operations
    fake = SimpleNamespace(contract=SimpleNamespace(operations=tuple(sorted(operations)), namespace=ns),
                           audit_face="soap-" + face)
    service = build_service(fake, "S")  # type: ignore[arg-type]
    assert set(service.public_methods) == operations


def test_the_krk_wsdl_loads_in_zeep_offline_with_both_ports() -> None:
    client = zeep.Client(str(KRK_WSDL))
    ports = {name: {op for op in port.binding._operations} for name, port in
             client.wsdl.services["KrkService"].ports.items()}
    assert ports == {"BasicHttpBinding_IKrkService": _operations(KRK_WSDL),
                     "WSHttpBinding_IKrkService": _operations(KRK_WSDL)}


@pytest.fixture(scope="module")
def hpr_records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    out = tmp_path_factory.mktemp("hpr-contract")
    generate_population(out, 150, 9, feed_days=0)
    return [json.loads(line) for line in (out / "hpr.jsonl").read_text().splitlines()]


def test_hpr_adapter_output_is_valid(hpr_records: list[dict[str, object]]) -> None:
    schema = schema_of(HPR_WSDL)
    history = hpr_history_doc()
    schema.assertValid(HprEncoder.person("HentPerson", history))
    schema.assertValid(HprEncoder.person("HentPersonMedPersonnummer", at(history, dt.date(2019, 3, 1))))
    schema.assertValid(HprEncoder.persons("Søk", hpr_records, basic=True))
    schema.assertValid(HprEncoder.page("Søk2", hpr_records[:5], 1, 5, len(hpr_records)))
    schema.assertValid(HprEncoder.approval("HentGodkjenning", history["approvals"][0]))  # type: ignore[index]
    schema.assertValid(HprEncoder.changes("HentEndringerForPerson", [(1, 9100001, "2026-11-17T06:00:00Z")]))
    schema.assertValid(HprEncoder.text("Ping", None))


def test_krk_adapter_output_is_valid() -> None:
    oslo, eigersund, sokndal = geo.kommune("0301"), geo.kommune("1101"), geo.kommune("1111")
    assert oslo and eigersund and sokndal
    hits = [KrkHit(oslo, (oslo,), (Contact("0301", "0301", None, None, "a@b.example", "21802180", "2001234"),
                                   Contact("030105", "0301", "030105", "Frogner", "c@d.example", "23000000", None))),
            KrkHit(sokndal, (eigersund, sokndal),
                   (Contact("1101", "1101", None, None, "e@f.example", "51468000", None),))]
    schema = schema_of(KRK_WSDL)
    schema.assertValid(KrkEncoder.search("SearchKommuneOverlegeInfo", hits))
    schema.assertValid(KrkEncoder.search("SearchKommuneOverlegeInfo", []))
    schema.assertValid(KrkEncoder.strings("GetAreasForHPRNumber", ["0301", "030105"]))
