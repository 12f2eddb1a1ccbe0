"""docs/hpr.md and docs/krk.md show real requests and answers: this test makes them.

Each example is one raw POST to a real server on a loopback socket (SQLite store, a fixed synthetic population
plus the HPR record with history of tests.factories, its fødselsnummer fixed), pretty-printed. The rendered
section between ``<!-- examples:start -->`` and ``<!-- examples:end -->`` must equal what the page holds; run
with ``PREGBRIDGE_REGEN_DOCS=1`` to rewrite that section instead.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lxml import etree
from sqlalchemy import func, select

from server.access import load_profiles
from store import identity
from store import schema as s
from store.synthetic import generate_population
from tests.factories import hpr_history_doc
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.wcf_support import SOAP11, SOAP12, loaded_store, serving

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- examples:start -->", "<!-- examples:end -->"
HPR = "http://schemas.nhn.no/reg/HPRv2"
KRK = "http://schemas.nhn.no/reg/krk"
WSA = "http://www.w3.org/2005/08/addressing"
USER, PASSWORD = "epj", "correct horse battery staple"
HISTORY = 9100001
LERKENDAL = "500103"
NIN = identity.generate(identity.IdKind.FNR, dt.date(1970, 3, 14), random.Random(3), female=True)
PRETTY = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, load_dtd=False)


@dataclass
class Servers:
    base: str
    arrangement_doctor: str  # an HPR number registered on an inter-municipal contact


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    from server.soap.hpr import build_hpr_app
    from server.soap.krk import build_krk_app

    work = tmp_path_factory.mktemp("hpr-krk-docs")
    generate_population(work / "pop", 300, 31, feed_days=0)
    with (work / "pop" / "hpr.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(dict(hpr_history_doc(HISTORY), nin=NIN), ensure_ascii=False) + "\n")
    with loaded_store("sqlite", work, work / "pop", [(USER, PASSWORD, "full")]) as store:
        profiles = load_profiles(None)
        hpr = build_hpr_app(store.engine, store.authenticator, profiles, store.audit, public_base_url="http://x")
        krk = build_krk_app(store.engine, store.authenticator, profiles, store.audit, public_base_url="http://x")

        def app(environ: dict[str, object], start_response: object) -> object:
            path = str(environ.get("PATH_INFO", ""))
            return (hpr if path.startswith("/v2/HPR") else krk)(environ, start_response)  # type: ignore[arg-type]

        with store.engine.connect() as conn:
            hosts = select(s.krk_coverage.c.area).group_by(s.krk_coverage.c.area).having(func.count() > 2)
            doctor = conn.execute(select(s.krk_hpr.c.hpr_number).where(s.krk_hpr.c.area.in_(hosts))
                                  .order_by(s.krk_hpr.c.area, s.krk_hpr.c.hpr_number).limit(1)).scalar()
            own = conn.execute(select(s.krk_contact.c.area).where(s.krk_contact.c.area == LERKENDAL)).scalar()
        assert doctor is not None and own is None  # what the examples' texts say
        with serving(lambda base: app) as base:
            yield Servers(base, str(doctor))


@dataclass(frozen=True)
class Example:
    heading: str
    path: str
    body: str  # the request element
    text: str
    version: str = "1.1"
    header: str = ""


def hpr_examples() -> list[Example]:
    h = f'xmlns="{HPR}"'
    return [
        Example("HentPerson at a time (`påTidspunkt`)", "/v2/HPR/Basic",
                f"<HentPerson {h}><hprNummer>{HISTORY}</hprNummer><påTidspunkt>2019-03-01T12:00:00</påTidspunkt>"
                "</HentPerson>",
                "The record as it stood on 1 March 2019: the nurse approval of 1995–1999 is left out, the doctor "
                "approval shows the speciality valid that day and the suspension in force that day. Note the "
                "contract's own non-ASCII names (`påTidspunkt`, `Fødselsdato`, `Kjønn`) and the ordinal member "
                "order (`FysiskeAdresser` before `Fødselsdato`)."),
        Example("Søk2 (paged search, base data only)", "/v2/HPR/Basic",
                f"<Søk2 {h}><search><Etternavn>Ødegård</Etternavn><KunBasisData>true</KunBasisData>"
                "<ResultaterPerSide>10</ResultaterPerSide><Side>1</Side></search></Søk2>",
                "`Etternavn` matches by prefix, spelling-insensitively (Ødegård = Odegard = Oedegaard); "
                "`KunBasisData` leaves each approval's lists empty."),
        Example("A fault (SOAP 1.1)", "/v2/HPR/Basic", f"<HentPerson {h}><hprNummer>1</hprNummer></HentPerson>",
                "An HPR number nobody has: NHN's text `ArgumentException: HPR-nummer ikke funnet`."),
        Example("Ping over SOAP 1.2 with WS-Addressing", "/v2/HPR",
                f"<Ping {h}><requestId>docs-1</requestId></Ping>",
                "The answer carries `wsa:Action` (the operation's output action) and `wsa:RelatesTo`.",
                version="1.2",
                header=f"<a:Action>{HPR}/IHPR2Service/Ping</a:Action><a:MessageID>urn:uuid:00000000-0000-4000-8000-"
                       "000000000001</a:MessageID>"),
    ]


def krk_examples(doctor: str) -> list[Example]:
    k = f'xmlns="{KRK}"'
    return [
        Example("SearchKommuneOverlegeInfo: a divided city", "/v1/krk/Basic",
                f"<SearchKommuneOverlegeInfo {k}><searchTerm>Trondheim</searchTerm></SearchKommuneOverlegeInfo>",
                "Trondheim's own contact (`District` nil) and its bydel contacts; `CountyName` is derived from the "
                "kommune."),
        Example("GetAreasForHPRNumber: a doctor in an inter-municipal arrangement", "/v1/krk/Basic",
                f"<GetAreasForHPRNumber {k}><hprNumber>{doctor}</hprNumber></GetAreasForHPRNumber>",
                "The host kommune and every kommune its contact covers."),
        Example("GetHPRNumbersForArea", "/v1/krk/Basic",
                f"<GetHPRNumbersForArea {k}><areaNumber>{LERKENDAL}</areaNumber></GetHPRNumbersForArea>",
                "Lerkendal (Trondheim) has no contact of its own in the demo register: its kommune's doctors "
                "answer."),
        Example("A fault", "/v1/krk/Basic",
                f"<GetHPRNumbersForArea {k}><areaNumber>110101</areaNumber></GetHPRNumbersForArea>",
                "`110101` would be a bydel of Eigersund (1101), which has none: "
                "`ArgumentException: Ukjent kommune- eller bydelsnummer`."),
    ]


def pretty(xml: bytes) -> str:
    text: str = etree.tostring(etree.fromstring(xml, PRETTY), pretty_print=True, encoding="unicode")
    return text.rstrip()


def render(srv: Servers, examples: list[Example]) -> str:
    parts = [START, ""]
    for ex in examples:
        env = SOAP11 if ex.version == "1.1" else SOAP12
        head = f"<s:Header>{ex.header}</s:Header>" if ex.header else ""
        request = f'<s:Envelope xmlns:s="{env}" xmlns:a="{WSA}">{head}<s:Body>{ex.body}</s:Body></s:Envelope>'
        content_type = "text/xml; charset=utf-8" if ex.version == "1.1" else "application/soap+xml; charset=utf-8"
        answer = requests.post(srv.base + ex.path, data=request.encode(), auth=(USER, PASSWORD), timeout=30,
                               headers={"Content-Type": content_type})
        assert answer.status_code in (200, 500), answer.text[:300]
        parts += [f"### {ex.heading}", "", ex.text, "",
                  f"Request (SOAP {ex.version}, `POST {ex.path}`, `Content-Type: {content_type}`, HTTP Basic):", "",
                  "```xml", pretty(request.encode()), "```", "", f"Answer (HTTP {answer.status_code}):", "",
                  "```xml", pretty(answer.content), "```", ""]
    parts.append(END)
    return "\n".join(parts)


@pytest.mark.parametrize("page", ["hpr", "krk"])
def test_docs_show_real_examples(servers: Servers, page: str) -> None:
    doc = REPO / "docs" / f"{page}.md"
    section = render(servers, hpr_examples() if page == "hpr" else krk_examples(servers.arrangement_doctor))
    text = doc.read_text(encoding="utf-8")
    assert text.count(START) == 1 and text.count(END) == 1, f"{doc} needs one {START} ... {END} section"
    before, rest = text.split(START)
    current, after = rest.split(END)
    if os.environ.get("PREGBRIDGE_REGEN_DOCS") == "1":
        doc.write_text(before + section + after, encoding="utf-8")
        return
    assert START + current + END == section, f"docs/{page}.md is out of date: run with PREGBRIDGE_REGEN_DOCS=1"
