"""The AR contract: the served WSDL is NHN's real one with only the addresses changed, every operation of its
portType has a method, and the adapter's output for each party type validates against the real schemas."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from lxml import etree

from adapters.ar import ArEncoder, Related
from store.synthetic import generate_population
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.test_ar_soap import EXAMPLES, WSDL, example, real_schema
from tests.integration.wcf_support import assert_same_structure, body_element

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

REPO = Path(__file__).resolve().parents[2]
_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"


def _strip_addresses(root: etree._Element) -> bytes:
    for el in root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address",
                        "{http://schemas.xmlsoap.org/wsdl/soap12/}address"):
        el.set("location", "-")
    for el in root.iter("{http://www.w3.org/2005/08/addressing}Address"):
        el.text = "-"
    return bytes(etree.tostring(root, method="c14n"))


def test_served_wsdl_is_the_real_one_with_our_addresses() -> None:
    from server.soap.ar.contract import load_contract

    assert (REPO / "wsdl" / "nhn-adresseregisteret-sok.wsdl").read_bytes() == WSDL.read_bytes()
    contract = load_contract("https://ar.example.invalid")
    served = etree.fromstring(contract.wsdl)
    assert {e.get("location") for e in served.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address")} == {
        "https://ar.example.invalid/v1/AR/Basic"}
    assert _strip_addresses(served) == _strip_addresses(etree.parse(str(WSDL)).getroot())


def test_every_operation_has_a_method() -> None:
    from server.soap.ar.face import READ_OPERATIONS, WRITE_OPERATIONS
    from server.soap.ar.service import build_service

    port_type = etree.parse(str(WSDL)).getroot().find(f"{{{_WSDL_NS}}}portType")
    assert port_type is not None
    operations = {op.get("name") for op in port_type.findall(f"{{{_WSDL_NS}}}operation")}
    assert set(READ_OPERATIONS) <= operations and set(WRITE_OPERATIONS) <= operations

    from types import SimpleNamespace

    face = SimpleNamespace(contract=SimpleNamespace(operations=tuple(sorted(operations)),
                                                    namespace="http://register.nhn.no/CommunicationParty"))
    service = build_service(face)  # type: ignore[arg-type]
    assert set(service.public_methods) == operations


def test_real_examples_validate_against_the_compiled_schemas() -> None:
    for path in sorted(EXAMPLES.glob("*.xml")):
        real_schema().assertValid(body_element(etree.parse(str(path)).getroot()) if "not-found" not in path.name
                                  else etree.parse(str(path)).getroot().find(".//{http://register.nhn.no/Common}"
                                                                              "GenericFault"))


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, object]]:
    out = tmp_path_factory.mktemp("ar-contract")
    generate_population(out, 120, 5, feed_days=0)
    return [json.loads(line) for line in (out / "ar.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(("kind", "name"), [("Organization", "organzation"), ("Service", "service"),
                                            ("Person", "person")])
def test_adapter_output_is_valid_and_shaped_like_the_real_answers(parties: list[dict[str, object]], kind: str,
                                                                  name: str) -> None:
    by_id = {p["herId"]: p for p in parties}
    doc = next(p for p in parties if p["type"] == kind)
    children = {doc["herId"]: [p for p in parties if p.get("parentHerId") == doc["herId"]]}
    enc = ArEncoder(dt.datetime(2026, 11, 22, tzinfo=dt.UTC), Related(children=children, parties=by_id))  # type: ignore[arg-type]
    response = enc.response("GetCommunicationPartyDetails")
    enc.party(response, "GetCommunicationPartyDetailsResult", doc, typed=True)
    real_schema().assertValid(response)
    assert assert_same_structure(response, example(name)) > 5
