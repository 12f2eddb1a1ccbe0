"""The KRK face end to end: zeep generated from the WSDL the server serves (``/v1/krk?wsdl``), on both ports,
against the demo register of a synthetic population, on SQLite and PostgreSQL.

Every answer's body element is validated against the schemas of the project's KRK contract (wsdl/nhn-krk.wsdl,
compiled here independently of the server's copy); every operation and fault is called on both ports
(``BasicHttpBinding`` SOAP 1.1 at ``/v1/krk/Basic``, ``WSHttpBinding`` SOAP 1.2 + WS-Addressing at ``/v1/krk``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree
from sqlalchemy import Engine, func, select
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport
from zeep.wsa import WsAddressingPlugin

from server.access import load_profiles
from server.access.profiles import AccessProfile
from store import geo
from store import schema as s
from store.krk import BYDEL_KOMMUNER
from store.synthetic import generate_population
from tests.integration.preg_support import SPYNE_WARNINGS
from tests.integration.wcf_support import SOAP11, body_element, loaded_store, schema_of, serving

pytestmark = [pytest.mark.filterwarnings(w) for w in SPYNE_WARNINGS]

WSDL = Path(__file__).resolve().parents[2] / "wsdl" / "nhn-krk.wsdl"
KRK = "http://schemas.nhn.no/reg/krk"
COMMON = "http://register.nhn.no/Common"
BINDINGS = {"basic": (f"{{{KRK}}}BasicHttpBinding_IKrkService", "/v1/krk/Basic"),
            "ws": (f"{{{KRK}}}WSHttpBinding_IKrkService", "/v1/krk")}
USER, PASSWORD = "epj-krk", "correct horse battery staple"
NO_KRK_USER = "no-krk"
ROLE_USER = "krk-role"  # a profile that lists NHN's role BusinessKommuneoverlegeApiRead
SEED = 20261205


@dataclass
class KrkServer:
    engine: Engine
    base: str

    def rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def krk_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KrkServer]:
    from server.soap.krk import build_krk_app

    work = tmp_path_factory.mktemp(f"krk-{request.param}")
    generate_population(work / "pop", 400, SEED, feed_days=0)
    profiles = dict(load_profiles(None))
    profiles["hpr-only"] = AccessProfile("hpr-only", frozenset({"HentPerson"}), frozenset(), "ugradert")
    profiles["krk-role"] = AccessProfile("krk-role", frozenset({"BusinessKommuneoverlegeApiRead"}), frozenset(),
                                         "ugradert")
    users = [(USER, PASSWORD, "full"), (NO_KRK_USER, PASSWORD, "hpr-only"), (ROLE_USER, PASSWORD, "krk-role")]
    with (loaded_store(request.param, work, work / "pop", users) as store,
          serving(lambda base: build_krk_app(store.engine, store.authenticator, profiles, store.audit,
                                             public_base_url=base)) as base):
        yield KrkServer(store.engine, base)


class Client:
    """zeep from the served WSDL, on one port; checks every received body against the contract's schemas."""

    def __init__(self, srv: KrkServer, port: str, user: str = USER) -> None:
        session = requests.Session()
        session.auth = (user, PASSWORD)
        self.history = HistoryPlugin()
        plugins = [self.history] + ([WsAddressingPlugin()] if port == "ws" else [])
        self.client = zeep.Client(srv.base + "/v1/krk?wsdl", transport=Transport(session=session), plugins=plugins)
        binding, path = BINDINGS[port]
        self.service = self.client.bind("KrkService", binding.rpartition("}")[2])
        assert self.service._binding_options["address"] == srv.base + path  # the served WSDL's own address
        self.port = port

    def call(self, op: str, **kwargs: Any) -> Any:
        result = self.service[op](**kwargs)
        received: Any = self.history.last_received
        body = body_element(received["envelope"])
        assert body.tag == f"{{{KRK}}}{op}Response"
        schema_of(WSDL).assertValid(body)
        return result

    def fault(self, op: str, **kwargs: Any) -> zeep.exceptions.Fault:
        with pytest.raises(zeep.exceptions.Fault) as caught:
            self.service[op](**kwargs)
        schema_of(WSDL).assertValid(caught.value.detail.find(f"{{{COMMON}}}GenericFault"))
        return caught.value


@pytest.fixture(params=["basic", "ws"])
def client(request: pytest.FixtureRequest, krk_server: KrkServer) -> Client:
    return Client(krk_server, request.param)


def test_search_a_kommune_of_its_own(client: Client, krk_server: KrkServer) -> None:
    alone = krk_server.rows(select(s.krk_coverage.c.area).group_by(s.krk_coverage.c.area)
                            .having(func.count() == 1).order_by(s.krk_coverage.c.area))
    kommune = next(k for k in (geo.kommune(a) for (a,) in alone)
                   if k is not None and k.nummer not in BYDEL_KOMMUNER and " " not in k.navn and
                   len([x for x in geo.kommuner() if x.navn.startswith(k.navn.split(" (")[0])]) == 1)
    (hit,) = client.call("SearchKommuneOverlegeInfo", searchTerm=kommune.navn)
    assert (hit.MunicipalityName, hit.CountyName) == (kommune.navn, kommune.fylkesnavn)
    (contact,) = krk_server.rows(select(s.krk_contact).where(s.krk_contact.c.area == kommune.nummer))
    (info,) = hit.KommuneoverlegeInfos.KommuneoverlegeInfo
    received: Any = client.history.last_received
    (district,) = body_element(received["envelope"]).iter(f"{{{KRK}}}District")
    assert district.get("{http://www.w3.org/2001/XMLSchema-instance}nil") == "true"  # the kommune's own contact
    assert (info.EmailAddress, info.PhoneNumber, info.PublicSafetyNetworkNumber) == (
        contact.email, contact.phone, contact.issi)
    assert [a.Id for a in hit.CoveredMunicipalities.Area] == [kommune.nummer]


def test_search_a_divided_city_and_an_arrangement(client: Client, krk_server: KrkServer) -> None:
    (oslo,) = client.call("SearchKommuneOverlegeInfo", searchTerm="oslo")
    districts = [i.District for i in oslo.KommuneoverlegeInfos.KommuneoverlegeInfo]
    assert districts[0].Id is None and len(districts) >= 3  # zeep reads a nil Area as one of empty members
    assert all(d.Id.startswith("0301") and d.Name for d in districts[1:])
    host, count = krk_server.rows(select(s.krk_coverage.c.area, func.count()).group_by(s.krk_coverage.c.area)
                                  .having(func.count() > 1).order_by(s.krk_coverage.c.area))[0]
    member = max(k for (k,) in krk_server.rows(select(s.krk_coverage.c.kommune)
                                                 .where(s.krk_coverage.c.area == host)))
    hits = client.call("SearchKommuneOverlegeInfo", searchTerm=member)
    assert len(hits) == 1 and len(hits[0].CoveredMunicipalities.Area) == count
    assert host in [a.Id for a in hits[0].CoveredMunicipalities.Area]
    by_county = client.call("SearchKommuneOverlegeInfo", searchTerm="Finnmark")
    assert len(by_county) == 18 and {h.CountyName for h in by_county} == {"Finnmark"}
    assert client.call("SearchKommuneOverlegeInfo", searchTerm="Atlantis") is None  # an empty ArrayOfSearchResult


def test_hpr_numbers_and_areas(client: Client, krk_server: KrkServer) -> None:
    area, number = krk_server.rows(select(s.krk_hpr.c.area, s.krk_hpr.c.hpr_number)
                                   .where(s.krk_hpr.c.area.in_(select(s.krk_coverage.c.area)
                                                               .group_by(s.krk_coverage.c.area)
                                                               .having(func.count() > 1))))[0]
    areas = client.call("GetAreasForHPRNumber", hprNumber=int(number))
    covered = [k for (k,) in krk_server.rows(select(s.krk_coverage.c.kommune).where(s.krk_coverage.c.area == area))]
    assert set(covered) <= set(areas) and area in areas
    for kommune in covered:
        assert number in client.call("GetHPRNumbersForArea", areaNumber=kommune)
    assert client.call("GetAreasForHPRNumber", hprNumber=1) is None  # registered nowhere: an empty list
    (bydel,) = krk_server.rows(select(s.krk_contact.c.area).where(s.krk_contact.c.kommune == "0301",
                                                                s.krk_contact.c.bydel.is_not(None)).limit(1))[0]
    own = sorted((n for (n,) in krk_server.rows(select(s.krk_hpr.c.hpr_number).where(s.krk_hpr.c.area == bydel))),
                 key=int)
    assert (client.call("GetHPRNumbersForArea", areaNumber=bydel) or []) == own


@pytest.mark.parametrize(("op", "kwargs", "code", "message"), [
    ("GetAreasForHPRNumber", {"hprNumber": 0}, "Feil", "ArgumentException: HPR-nummer må oppgis"),
    ("GetHPRNumbersForArea", {"areaNumber": "9999"}, "Feil", "ArgumentException: Ukjent kommune- eller bydelsnummer"),
    ("GetHPRNumbersForArea", {"areaNumber": "110101"}, "Feil",
     "ArgumentException: Ukjent kommune- eller bydelsnummer"),
    ("SearchKommuneOverlegeInfo", {"searchTerm": " "}, "InvalidRequest", "searchTerm needs at least two characters"),
    ("GetHPRNumbersForArea", {"areaNumber": "03010a"}, "Feil", "ArgumentException: Ukjent kommune- eller bydelsnummer"),
    ("GetHPRNumbersForArea", {"areaNumber": "０３０１"}, "Feil",  # full-width digits are not a kommunenummer
     "ArgumentException: Ukjent kommune- eller bydelsnummer"),
])
def test_faults(client: Client, op: str, kwargs: dict[str, Any], code: str, message: str) -> None:
    fault = client.fault(op, **kwargs)
    assert fault.detail.findtext(f".//{{{COMMON}}}ErrorCode") == code and fault.message == message


def test_login_and_the_access_profile_are_required(krk_server: KrkServer) -> None:
    body = (f'<s:Envelope xmlns:s="{SOAP11}"><s:Body><SearchKommuneOverlegeInfo xmlns="{KRK}">'
            "<searchTerm>Oslo</searchTerm></SearchKommuneOverlegeInfo></s:Body></s:Envelope>").encode()
    anonymous = requests.post(krk_server.base + "/v1/krk/Basic", data=body, timeout=10,
                              headers={"Content-Type": "text/xml; charset=utf-8"})
    assert anonymous.status_code == 401
    by_role = Client(krk_server, "ws", user=ROLE_USER)
    assert by_role.call("SearchKommuneOverlegeInfo", searchTerm="Oslo")[0].MunicipalityName == "Oslo"
    assert by_role.call("GetHPRNumbersForArea", areaNumber="0301") is not None
    denied = Client(krk_server, "basic", user=NO_KRK_USER).fault("SearchKommuneOverlegeInfo", searchTerm="Oslo")
    assert denied.detail.findtext(f".//{{{COMMON}}}ErrorCode") == "AccessDenied"
    outcomes = {r.outcome for r in krk_server.rows(select(s.audit_event.c.outcome)
                                                   .where(s.audit_event.c.face == "soap-krk"))}
    assert {"Unauthorized", "AccessDenied"} <= outcomes


def test_served_wsdl_is_the_project_copy_with_our_addresses(krk_server: KrkServer) -> None:
    served = etree.fromstring(requests.get(krk_server.base + "/v1/krk/Basic?wsdl", timeout=10).content)
    kept = etree.parse(str(WSDL)).getroot()
    for root in (served, kept):
        for el in root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address",
                            "{http://schemas.xmlsoap.org/wsdl/soap12/}address"):
            el.set("location", "-")
        for el in root.iter("{http://www.w3.org/2005/08/addressing}Address"):
            el.text = "-"
    assert etree.tostring(served, method="c14n") == etree.tostring(kept, method="c14n")


def test_a_second_soap_stack_node_soap_searches(krk_server: KrkServer, request: pytest.FixtureRequest) -> None:
    from tests.integration.node_soap import node_soap

    call = node_soap(request.config)
    for version, path in (("1.1", "/v1/krk/Basic"), ("1.2", "/v1/krk")):
        answer = call(krk_server.base + path + "?wsdl", krk_server.base + path, (USER, PASSWORD),
                      "SearchKommuneOverlegeInfo", {"searchTerm": "Bergen"}, version)
        hits = answer["result"]["SearchKommuneOverlegeInfoResult"]["SearchResult"]
        hits = hits if isinstance(hits, list) else [hits]
        assert [(h["MunicipalityName"], h["CountyName"]) for h in hits] == [("Bergen", "Vestland")]
        infos = hits[0]["KommuneoverlegeInfos"]["KommuneoverlegeInfo"]
        assert len(infos) >= 3 and all("EmailAddress" in i for i in infos)
        schema_of(WSDL).assertValid(body_element(etree.fromstring(answer["xml"].encode())))


def test_a_huge_search_term_is_cut_not_a_crash(client: Client) -> None:
    assert client.call("SearchKommuneOverlegeInfo", searchTerm="Oslo " + "x" * 20_000) is None
    assert client.call("SearchKommuneOverlegeInfo", searchTerm="0301" + "9" * 5000)[0].MunicipalityName == "Oslo"
