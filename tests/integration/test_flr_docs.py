"""docs/flr.md shows real requests and answers of the FLR face: this test makes them.

Each example is one raw POST to a real FLR server on a loopback socket (SQLite store, a fixed synthetic
population, the face's clock fixed at :data:`EXAMPLE_NOW` so that "today" does not move), pretty-printed.
The rendered section between ``<!-- examples:start -->`` and ``<!-- examples:end -->`` must equal what
docs/flr.md holds; run with ``PREGBRIDGE_REGEN_DOCS=1`` to rewrite that section instead.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from lxml import etree

from server.access import load_profiles
from store.synthetic import generate_population
from tests.integration.preg_support import DOCS_END, DOCS_START, REPO, SPYNE_WARNINGS, check_docs_section
from tests.integration.wcf_support import loaded_store, serving

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

DOC = REPO / "docs" / "flr.md"
START, END = DOCS_START, DOCS_END
EXAMPLE_NOW = dt.datetime(2026, 11, 23, 8, 30, tzinfo=dt.UTC)
FLR = "http://schemas.nhn.no/reg/flr"
ACTION = FLR + "/IFlrReadOperations/"
USER, PASSWORD = "epj", "correct horse battery staple"
PRETTY = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, load_dtd=False)
ENVELOPES = {"1.1": "http://schemas.xmlsoap.org/soap/envelope/", "1.2": "http://www.w3.org/2003/05/soap-envelope"}


@dataclass(frozen=True)
class Example:
    heading: str
    operation: str
    body: str  # the request element, in the FLR namespace (default namespace)
    text: str
    version: str = "1.1"
    fault: bool = False


@dataclass
class Server:
    base: str
    contract: dict[str, object]
    patient: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from server.soap.flr.app import build_flr_app_for
    from server.soap.flr.contract import load_contract
    from server.soap.flr.face import FlrFace

    work = tmp_path_factory.mktemp("flr-docs")
    generate_population(work / "pop", 300, 20261123, feed_days=0)
    contract = json.loads((work / "pop" / "flr.jsonl").read_text().splitlines()[0])
    with loaded_store("sqlite", work, work / "pop", [(USER, PASSWORD, "full")]) as st, serving(
            lambda b: build_flr_app_for(FlrFace(st.engine, load_contract(b), load_profiles(None), st.audit,
                                                clock=lambda: EXAMPLE_NOW), st.authenticator)) as base:
        yield Server(base, contract, str(contract["patients"][0]["personNumber"]))  # type: ignore[index]


def examples(srv: Server) -> list[Example]:
    c = srv.contract
    return [
        Example("GetPatientGPDetails (SOAP 1.2, WS-Addressing)", "GetPatientGPDetails",
                f"<GetPatientGPDetails><patientNin>{srv.patient}</patientNin></GetPatientGPDetails>",
                "Who is this patient's GP today: the list (`GPContract` with its office), the doctor cycles in "
                "force (here the list's own GP, relationship `LPFL`) and `GPHerId`, the HER-id to address the GP "
                "service by (the rule is in \"GPHerId\" above).", version="1.2"),
        Example("ConfirmGP", "ConfirmGP",
                f"<ConfirmGP><patientNin>{srv.patient}</patientNin><hprNumber>{c['gpHprNumber']}</hprNumber>"
                '<atTime xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true"/></ConfirmGP>',
                "Is this doctor the patient's GP (now, as `atTime` is nil)?"),
        Example("GetGPContractIdsOperatingInPostalCode", "GetGPContractIdsOperatingInPostalCode",
                "<GetGPContractIdsOperatingInPostalCode><postNr>01</postNr></GetGPContractIdsOperatingInPostalCode>",
                "The active lists whose office's visiting address (`RES`) has a postal code beginning with `01`."),
        Example("A patient on no list (SOAP 1.2)", "GetPatientGPDetails",
                "<GetPatientGPDetails><patientNin>01010112345</patientNin></GetPatientGPDetails>",
                "FLR's own fault text, as NHN answers it: `ErrorCode` `Feil`.", version="1.2", fault=True),
        Example("An invalid number (SOAP 1.1)", "GetPatientGPDetails",
                "<GetPatientGPDetails><patientNin>1234</patientNin></GetPatientGPDetails>",
                "The same over SOAP 1.1: `faultcode` `Client`, the GenericFault in `detail`.", fault=True),
        Example("A NAV-only operation", "GetGPContractForNav",
                "<GetGPContractForNav><doctorNin>01010112345</doctorNin><municipalityNr>0301</municipalityNr>"
                "<doSubstituteSearch>false</doSubstituteSearch></GetGPContractForNav>",
                "Not offered: GenericFault `OperationNotSupported`.", fault=True),
    ]


def pretty(xml: bytes) -> str:
    text: str = etree.tostring(etree.fromstring(xml, PRETTY), pretty_print=True, encoding="unicode")
    return text.rstrip()


def render(srv: Server) -> str:
    parts = [START, ""]
    for ex in examples(srv):
        header = ""
        if ex.version == "1.2":
            header = (f'<a:Action xmlns:a="http://www.w3.org/2005/08/addressing">{ACTION}{ex.operation}</a:Action>'
                      '<a:MessageID xmlns:a="http://www.w3.org/2005/08/addressing">'
                      "urn:uuid:00000000-0000-4000-8000-000000000001</a:MessageID>")
        body = ex.body.replace(f"<{ex.operation}>", f'<{ex.operation} xmlns="{FLR}">', 1)
        request = (f'<s:Envelope xmlns:s="{ENVELOPES[ex.version]}"><s:Header>{header}</s:Header><s:Body>{body}'
                   "</s:Body></s:Envelope>").encode()
        headers = ({"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{ACTION}{ex.operation}"'}
                   if ex.version == "1.1" else
                   {"Content-Type": f'application/soap+xml; charset=utf-8; action="{ACTION}{ex.operation}"'})
        path = "/v2/flr/Basic" if ex.version == "1.1" else "/v2/flr"
        answer = requests.post(srv.base + path, data=request, headers=headers, auth=(USER, PASSWORD), timeout=30)
        assert answer.status_code == (500 if ex.fault else 200), answer.text[:400]
        shown = ", ".join(f"`{k}: {v}`" for k, v in headers.items())
        parts += [f"### {ex.heading}", "", ex.text, "", f"Request (`POST {path}`; {shown}; HTTP Basic):", "",
                  "```xml", pretty(request), "```", "", "Answer:", "", "```xml", pretty(answer.content), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def test_docs_show_real_examples(server: Server) -> None:
    check_docs_section(DOC, render(server))
