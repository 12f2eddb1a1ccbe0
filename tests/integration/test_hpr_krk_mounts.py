"""The composed application (server/bootstrap.py, what ``pregbridge serve`` runs) mounts HPR at ``/v2/HPR`` and
``/v2/HPR/Basic`` and KRK at ``/v1/krk`` and ``/v1/krk/Basic``, with the configured accounts and profiles."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from tests.integration.preg_support import ACCOUNTS, PASSWORD, SPYNE_WARNINGS, PregServer, running_preg
from tests.integration.wcf_support import SOAP11, SOAP12, body_element

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

HPR = "http://schemas.nhn.no/reg/HPRv2"
KRK = "http://schemas.nhn.no/reg/krk"
COMMON = "http://register.nhn.no/Common"


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work: Path = tmp_path_factory.mktemp("mounts")
    with running_preg(f"sqlite:///{work / 'store.sqlite'}", work, populated=False) as srv:
        yield srv


@pytest.mark.parametrize(("path", "service"), [("/v2/HPR", "HPRService2"), ("/v2/HPR/Basic", "HPRService2"),
                                               ("/v1/krk", "KrkService"), ("/v1/krk/Basic", "KrkService")])
def test_every_path_serves_its_wsdl(composed: PregServer, path: str, service: str) -> None:
    answer = requests.get(f"http://127.0.0.1:{composed.port}{path}?wsdl", timeout=30)
    assert answer.status_code == 200
    assert etree.fromstring(answer.content).get("name") == service


@pytest.mark.parametrize(("path", "env", "ctype", "body", "expected"), [
    ("/v2/HPR/Basic", SOAP11, "text/xml; charset=utf-8", f'<Ping xmlns="{HPR}"><requestId>x</requestId></Ping>',
     f"{{{HPR}}}PingResponse"),
    ("/v2/HPR", SOAP12, "application/soap+xml; charset=utf-8",
     f'<HentPerson xmlns="{HPR}"><hprNummer>1</hprNummer></HentPerson>', "ArgumentException: HPR-nummer ikke funnet"),
    ("/v1/krk/Basic", SOAP11, "text/xml; charset=utf-8",
     f'<SearchKommuneOverlegeInfo xmlns="{KRK}"><searchTerm>Oslo</searchTerm></SearchKommuneOverlegeInfo>',
     f"{{{KRK}}}SearchKommuneOverlegeInfoResponse"),
    ("/v1/krk", SOAP12, "application/soap+xml; charset=utf-8",
     f'<GetHPRNumbersForArea xmlns="{KRK}"><areaNumber>9999</areaNumber></GetHPRNumbersForArea>',
     "ArgumentException: Ukjent kommune- eller bydelsnummer"),
])
def test_every_path_answers_with_the_configured_accounts(composed: PregServer, path: str, env: str, ctype: str,
                                                         body: str, expected: str) -> None:
    envelope = f'<s:Envelope xmlns:s="{env}"><s:Body>{body}</s:Body></s:Envelope>'.encode()
    url = f"http://127.0.0.1:{composed.port}{path}"
    assert requests.post(url, data=envelope, headers={"Content-Type": ctype}, timeout=30).status_code == 401
    answer = requests.post(url, data=envelope, headers={"Content-Type": ctype}, timeout=30,
                           auth=(ACCOUNTS["full"], PASSWORD))
    element = body_element(etree.fromstring(answer.content))
    if expected.startswith("{"):
        assert answer.status_code == 200 and element.tag == expected
    else:
        assert answer.status_code == 500 and element.findtext(f".//{{{COMMON}}}Message") == expected
