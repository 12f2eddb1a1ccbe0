"""The PREG face driven by zeep over a loopback socket: every operation and every fault, SOAP 1.1 and 1.2.

One server per backend (SQLite, PostgreSQL) serves the whole module (:func:`preg`); each test runs once per
SOAP version, through zeep clients generated from the WSDL the server serves at ``?wsdl``. Every answer
zeep receives is also validated against xsd/preg.xsd (:class:`tests.integration.preg_support.SchemaCheck`,
checked after each test). Tests that change the store (felles hjelpenummer) use names per SOAP version, so
the two versions never see each other's numbers. Throttling and an unreachable store get servers of their
own.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from zeep.exceptions import Fault
from zeep.wsse.username import UsernameToken

from server.access import query_audit
from store.engine import make_engine
from tests.integration.preg_support import (
    ACCOUNTS,
    DIGEST_USER,
    NS,
    PASSWORD,
    SPYNE_WARNINGS,
    VERSIONS,
    PregServer,
    backend_url,
    body_child,
    fault_of,
    running_preg,
    zeep_fault_code,
)

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

SOAP12_TOP = {"Client": "soap12env:Sender", "Server": "soap12env:Receiver"}
TAG = {"1.1": "Elleve", "1.2": "Tolv"}  # letters only: name keys drop digits and dots


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def preg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work = tmp_path_factory.mktemp(f"preg-{request.param}")
    with backend_url(request.param, work) as url, running_preg(url, work) as srv:
        yield srv


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _answers_follow_the_contract(request: pytest.FixtureRequest) -> Iterator[None]:
    if "preg" not in request.fixturenames:
        yield
        return
    srv: PregServer = request.getfixturevalue("preg")
    srv.schema_errors.clear()
    yield
    assert srv.schema_errors == [], "answers that do not validate against xsd/preg.xsd"


def service(srv: PregServer, version: str, profile: str = "full") -> Any:
    return srv.caller(ACCOUNTS[profile]).service(version)


def assert_fault(fault: Fault, version: str, code: str) -> None:
    """The exact wire form: SOAP 1.1 ``soap11env:Client.X``; SOAP 1.2 Code ``soap12env:Sender`` + Subcode X."""
    if version == "1.1":
        assert fault.code == f"soap11env:{code}"
        assert not fault.subcodes
    else:
        top, *subcodes = code.split(".")
        assert fault.code == SOAP12_TOP[top]
        assert [q.localname for q in fault.subcodes or ()] == subcodes
    assert zeep_fault_code(fault) == code


def faults(call: Any, version: str, code: str) -> Fault:
    with pytest.raises(Fault) as exc:
        call()
    assert_fault(exc.value, version, code)
    return exc.value


def q(path: str) -> str:
    return "/".join(f"{{{NS}}}{part}" for part in path.split("/"))


def text_at(el: etree._Element, path: str) -> str | None:
    found = el.find(q(path))
    assert found is not None, f"{path} is missing"
    text: str | None = found.text
    return text


# -- operations -------------------------------------------------------------------------------------------


def test_ping_answers_ok_and_the_time(preg: PregServer, version: str) -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    answer = service(preg, version).ping()
    assert answer.status == "OK"
    assert before <= answer.tidspunkt <= dt.datetime.now(dt.UTC)


def test_get_person_by_fodselsnummer(preg: PregServer, version: str) -> None:
    pop = preg.pop
    answer = service(preg, version).getPerson(personnummer=pop.ordinary)
    assert (answer.oppslagsnummer, answer.erGjeldendeNummer) == (pop.ordinary, True)
    p = answer.person
    assert (p.personnummer, p.personnummerType) == (pop.ordinary, "FNR")
    assert (p.navn.fornavn, p.navn.etternavn) == ("Kari", "Nordmann")
    assert (p.fodselsdato, p.fodselsaar, p.kjonn, p.personstatus) == (dt.date(1980, 5, 17), 1980, "K", "bosatt")
    assert (p.sivilstand, p.statsborgerskap, p.spesregKode) == ("ugift", ["NOR"], "0")
    [address] = p.adresser.adresse
    assert (address.adressetype, address.adressetekst, address.postnummer, address.poststed) == (
        "bosted", "Storgata 1", "0150", "OSLO")
    assert (address.kommunenummer, address.kommunenavn, address.bydelsnavn) == ("0301", "Oslo", "Gamle Oslo")


def test_get_person_by_a_ceased_d_nummer_answers_with_the_current_number(preg: PregServer, version: str) -> None:
    pop = preg.pop
    answer = service(preg, version).getPerson(personnummer=pop.replaced_dnr)
    assert (answer.oppslagsnummer, answer.erGjeldendeNummer) == (pop.replaced_dnr, False)
    assert (answer.person.personnummer, answer.person.personnummerType) == (pop.replaced_fnr, "FNR")
    ids = {(i.nummer, i.type, i.status) for i in answer.person.identifikatorer.identifikator}
    assert ids == {(pop.replaced_dnr, "DNR", "OPPHORT"), (pop.replaced_fnr, "FNR", "I_BRUK")}
    by_current = service(preg, version).getPerson(personnummer=pop.replaced_fnr)
    assert by_current.erGjeldendeNummer is True and by_current.person.personnummer == pop.replaced_fnr


def test_get_person_by_a_d_nummer(preg: PregServer, version: str) -> None:
    answer = service(preg, version).getPerson(personnummer=preg.pop.dnr)
    assert answer.erGjeldendeNummer is True
    assert (answer.person.personnummerType, answer.person.personstatus) == ("DNR", "midlertidig")
    assert answer.person.adresser.adresse[0].kommunenavn == "Bodø"


def test_get_persons_answers_found_unknown_and_invalid_items_in_one_call(preg: PregServer, version: str) -> None:
    pop = preg.pop
    asked = [pop.ordinary, pop.unknown, "12345678901", pop.replaced_dnr, "1234"]
    answer = service(preg, version).getPersons(personnummer=asked)
    assert [(o.oppslagsnummer, o.status) for o in answer] == [
        (pop.ordinary, "FUNNET"), (pop.unknown, "IKKE_FUNNET"), ("12345678901", "UGYLDIG"),
        (pop.replaced_dnr, "FUNNET"), ("1234", "UGYLDIG")]
    found, unknown, invalid, replaced, short = answer
    assert found.person.navn.etternavn == "Nordmann" and replaced.person.personnummer == pop.replaced_fnr
    assert unknown.person is None and invalid.person is None
    assert invalid.melding == "invalid personnummer (unknownKind)" and short.melding == "invalid personnummer (length)"


def test_get_adresses_answers_the_current_addresses(preg: PregServer, version: str) -> None:
    pop = preg.pop
    answer = service(preg, version).getAdresses(personnummer=pop.history)
    assert (answer.personnummer, answer.spesregKode) == (pop.history, "0")
    [address] = answer.adresse  # the previous address in Bergen is history
    assert (address.adressetekst, address.spesregKode, address.flyttedato) == ("Storgata 1", "0", dt.date(2015, 6, 1))
    by_ceased = service(preg, version).getAdresses(personnummer=pop.replaced_dnr)
    assert by_ceased.personnummer == pop.replaced_fnr


def test_search_person_ranks_hits_with_a_score(preg: PregServer, version: str) -> None:
    svc = service(preg, version)
    answer = svc.searchPerson(etternavn="Fjellheim", fodselsaar=1975)
    assert answer.antallTreff == 4 and len(answer.treff) == 4
    assert {h.person.personnummer for h in answer.treff} == set(preg.pop.family)
    assert all(isinstance(h.score, Decimal) and 0 < h.score <= 100 for h in answer.treff)
    ranked = svc.searchPerson(fornavn="Bjørn", etternavn="Fjellheim", kommunenummer="3401")
    assert [h.person.navn.fornavn for h in ranked.treff] == ["Bjørn"]
    scores = [h.score for h in svc.searchPerson(navn="Dag Fjellheim", fodselsaar=1975).treff]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("family", ["Ødegård", "ØDEGÅRD", "Odegaard", "Oedegard"])
def test_search_person_with_norwegian_letters_and_their_ascii_spellings(preg: PregServer, version: str,
                                                                        family: str) -> None:
    answer = service(preg, version).searchPerson(etternavn=family, fodselsaar=1962)
    assert [h.person.personnummer for h in answer.treff] == [preg.pop.nordic]
    assert answer.treff[0].person.navn.etternavn == "Ødegård"


def test_search_person_by_given_name_with_norwegian_letters(preg: PregServer, version: str) -> None:
    answer = service(preg, version).searchPerson(fornavn="Åse", fodselsdato=dt.date(1962, 11, 2))
    assert [h.person.navn.fornavn for h in answer.treff] == ["Åse"]
    street = service(preg, version).searchPerson(etternavn="Ødegård", gatenavn="Æbleveien")
    assert street.antallTreff == 1


@pytest.mark.parametrize(("family", "hits"), [
    ("O'Brien", 1),
    ("'; DROP TABLE person; --", 0),
    ("F%heim", 0),  # as LIKE patterns these three would find the four Fjellheims
    ("%heim", 0),
    ("Fjell_eim", 0),
    ("Fjellheim' OR '1'='1", 0),
    ('Fjellheim") OR 1=1 --', 0),
])
def test_search_person_treats_sql_metacharacters_as_text(preg: PregServer, version: str, family: str,
                                                         hits: int) -> None:
    year = 1985 if "Brien" in family else 1975
    answer = service(preg, version).searchPerson(etternavn=family, fodselsaar=year)
    assert answer.antallTreff == hits
    assert service(preg, version).searchPerson(etternavn="Fjellheim", fodselsaar=1975).antallTreff == 4


def test_get_person_history(preg: PregServer, version: str) -> None:
    pop = preg.pop
    h = service(preg, version).getPersonHistory(personnummer=pop.history)
    assert h.personnummer == pop.history
    assert [(n.etternavn, n.historikk.gjeldende) for n in h.navneHistorikk.navn] == [("Olsen", False), ("Haugen", True)]
    addresses = [(a.poststed, a.historikk.gjeldende, a.historikk.gyldigTil) for a in h.adresseHistorikk.adresse]
    assert addresses == [("BERGEN", False, dt.date(2015, 6, 1)), ("OSLO", True, None)]
    assert [(s.verdi, s.historikk.gjeldende) for s in h.sivilstandHistorikk.sivilstand] == [
        ("ugift", False), ("gift", True)]
    assert [s.verdi for s in h.statusHistorikk.status] == ["bosatt"]
    assert h.identifikatorer.identifikator[0].historikk.kilde == "Skatteetaten"


def test_get_person_answers_current_relations_and_marital_status(preg: PregServer, version: str) -> None:
    pop = preg.pop
    p = service(preg, version).getPerson(personnummer=pop.history).person
    assert p.sivilstand == "gift"
    relations = {(r.personnummer, r.rolle, r.minRolle) for r in p.relasjoner.relasjon}
    assert relations == {(pop.ordinary, "ektefelleEllerPartner", "ektefelleEllerPartner"),
                         (pop.child, "barn", "far")}


def _fh(svc: Any, given: str, version: str, **extra: Any) -> Any:
    return svc.requestHjelpenummer(fornavn=given, etternavn=f"Pasient{TAG[version]}", kjonn="K",
                                   fodselsdato=dt.date(1950, 1, 1), **extra)


def test_request_hjelpenummer_twice_answers_the_same_number(preg: PregServer, version: str) -> None:
    svc = service(preg, version)
    address = {"gatenavn": "Ukjentveien", "husnummer": "2", "postnummer": "0150", "poststed": "OSLO"}
    first = _fh(svc, "Ukjent", version, adresse=address)
    assert first.nyttNummer is True and first.hjelpenummer[0] in "89" and len(first.hjelpenummer) == 11
    again = _fh(svc, "Ukjent", version, adresse=address)
    assert (again.hjelpenummer, again.nyttNummer) == (first.hjelpenummer, False)
    respelled = svc.requestHjelpenummer(fornavn=" UKJENT ", etternavn=f"pasient{TAG[version].lower()}", kjonn="K",
                                        fodselsdato=dt.date(1950, 1, 1),
                                        adresse={**address, "gatenavn": "ukjentveien"})
    assert (respelled.hjelpenummer, respelled.nyttNummer) == (first.hjelpenummer, False)
    other = _fh(svc, "Ukjent", version)  # no address: another person
    assert other.nyttNummer is True and other.hjelpenummer != first.hjelpenummer


def test_concurrent_identical_requests_get_one_hjelpenummer(preg: PregServer, version: str) -> None:
    request = (f"<p:requestHjelpenummer><p:fornavn>Samtidig</p:fornavn><p:etternavn>Pasient{TAG[version]}"
               "</p:etternavn><p:kjonn>M</p:kjonn><p:fodselsdato>1949-05-08</p:fodselsdato></p:requestHjelpenummer>")
    with ThreadPoolExecutor(6) as pool:  # a client retrying while its first request still runs
        answers = list(pool.map(lambda _: preg.call(version, request), range(6)))
    assert [a.status for a in answers] == [200] * 6, [a.body[-200:] for a in answers if a.status != 200]
    results = [(body_child(a.xml()).findtext(f"{{{NS}}}hjelpenummer"), body_child(a.xml()).findtext(
        f"{{{NS}}}nyttNummer")) for a in answers]
    assert len({number for number, _ in results}) == 1
    assert sorted(new for _, new in results) == ["false"] * 5 + ["true"]


def test_get_hjelpenummer(preg: PregServer, version: str) -> None:
    svc = service(preg, version)
    fh = _fh(svc, "Hjelpe", version).hjelpenummer
    answer = svc.getHjelpenummer(hjelpenummer=fh)
    assert (answer.hjelpenummer, answer.erAktivt) == (fh, True)
    assert (answer.person.personnummer, answer.person.personnummerType) == (fh, "FHN")
    assert (answer.person.navn.fornavn, answer.person.kjonn, answer.person.personstatus) == ("Hjelpe", "K", "aktiv")
    by_number = svc.getPerson(personnummer=fh)
    assert by_number.erGjeldendeNummer is True and by_number.person.personnummer == fh


def test_link_hjelpenummer_makes_the_number_answer_the_identified_person(preg: PregServer, version: str) -> None:
    svc = service(preg, version)
    target = preg.pop.link_target[version]
    fh = _fh(svc, "Lenke", version).hjelpenummer
    linked = svc.linkHjelpenummer(hjelpenummer=fh, personnummer=target)  # zeep unwraps the one child
    assert linked.personnummer == target
    assert (fh, "FHN", "OPPHORT") in {(i.nummer, i.type, i.status) for i in linked.identifikatorer.identifikator}
    answer = svc.getPerson(personnummer=fh)
    assert (answer.oppslagsnummer, answer.erGjeldendeNummer) == (fh, False)
    assert (answer.person.personnummer, answer.person.navn.etternavn) == (target, "Lenkesen")
    after = svc.getHjelpenummer(hjelpenummer=fh)
    assert (after.erAktivt, after.person.personnummer) == (False, target)
    assert svc.linkHjelpenummer(hjelpenummer=fh, personnummer=target).personnummer == target  # idempotent


def test_get_changes_pages_through_the_feed(preg: PregServer, version: str) -> None:
    pop = preg.pop
    svc = service(preg, version)
    mine = [pop.ordinary, pop.replaced_dnr, pop.history]
    pages, after = [], 0
    for _ in range(5):
        page = svc.getChanges(fraSekvensnummer=after, personnummer=mine, sideStorrelse=1)
        pages.append([(e.sekvensnummer, e.hendelsestype, e.personnummer, e.gjeldendePersonnummer)
                      for e in page.endring])
        after = page.nesteSekvensnummer
        if not page.flereEndringer:
            break
    assert pages == [
        [(1, "endringIBostedsadresse", pop.ordinary, pop.ordinary)],
        [(2, "endringIIdentifikasjonsnummer", pop.replaced_dnr, pop.replaced_fnr)],
        [(3, "endringISivilstand", pop.history, pop.history)],
    ]
    assert after == 3
    whole = svc.getChanges(fraSekvensnummer=0, personnummer=mine)
    assert [e.sekvensnummer for e in whole.endring] == [1, 2, 3] and whole.flereEndringer is False
    assert whole.endring[0].registrert == dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC)
    done = svc.getChanges(fraSekvensnummer=3, personnummer=mine)
    assert (done.endring, done.nesteSekvensnummer, done.flereEndringer) == ([], 3, False)


# -- faults -----------------------------------------------------------------------------------------------


def test_wrong_password_and_unknown_user_get_the_same_authentication_fault(preg: PregServer, version: str) -> None:
    wrong = faults(lambda: preg.caller(ACCOUNTS["full"], "not the right password").service(version).ping(),
                   version, "Client.Authentication")
    unknown = faults(lambda: preg.caller("no-such-user", PASSWORD).service(version).ping(),
                     version, "Client.Authentication")
    assert wrong.message == unknown.message == "invalid username or password"


def test_no_credentials_is_an_authentication_fault(preg: PregServer, version: str) -> None:
    fault = faults(lambda: preg.caller(None).service(version).getPerson(personnummer=preg.pop.ordinary),
                   version, "Client.Authentication")
    assert preg.pop.ordinary not in fault.message and "Nordmann" not in fault.message


def test_a_profile_without_the_operation_is_an_authorization_fault(preg: PregServer, version: str) -> None:
    svc = service(preg, version, "lookupOnly")
    assert svc.getPerson(personnummer=preg.pop.ordinary).person.navn.etternavn == "Nordmann"
    fault = faults(lambda: svc.searchPerson(etternavn="Fjellheim", fodselsaar=1975), version, "Client.Authorization")
    assert fault.message == "operation searchPerson is not allowed for access profile lookupOnly"
    faults(lambda: svc.getPersons(personnummer=[preg.pop.ordinary]), version, "Client.Authorization")


@pytest.mark.parametrize(("number", "reason"), [
    ("12345678901", "fit no identity number family"),
    ("1234", "11 characters long"),
    ("abcdefghijk", "11 digits"),
    ("' OR '1'='1", "11 digits"),
])
def test_a_malformed_number_is_an_invalid_identifier_fault(preg: PregServer, version: str, number: str,
                                                           reason: str) -> None:
    svc = service(preg, version)
    for op in (svc.getPerson, svc.getAdresses, svc.getPersonHistory):
        fault = faults(lambda op=op: op(personnummer=number), version, "Client.InvalidIdentifier")
        assert reason in fault.message


def test_a_wrong_check_digit_and_a_number_of_the_wrong_kind_are_invalid_identifiers(preg: PregServer,
                                                                                    version: str) -> None:
    svc = service(preg, version)
    ordinary = preg.pop.ordinary
    broken = ordinary[:-1] + str((int(ordinary[-1]) + 1) % 10)
    assert "check digits" in faults(lambda: svc.getPerson(personnummer=broken), version,
                                    "Client.InvalidIdentifier").message
    assert faults(lambda: svc.getHjelpenummer(hjelpenummer=ordinary), version,
                  "Client.InvalidIdentifier").message == "not a felles hjelpenummer"
    fh = _fh(svc, "Feil", version).hjelpenummer
    for link in ({"hjelpenummer": ordinary, "personnummer": preg.pop.history},  # both fødselsnumre
                 {"hjelpenummer": fh, "personnummer": fh}):  # a hjelpenummer is no identified person
        faults(lambda link=link: svc.linkHjelpenummer(**link), version, "Client.InvalidIdentifier")


def test_an_unknown_number_is_a_not_found_fault(preg: PregServer, version: str) -> None:
    svc = service(preg, version)
    for call in (lambda: svc.getPerson(personnummer=preg.pop.unknown),
                 lambda: svc.getAdresses(personnummer=preg.pop.unknown),
                 lambda: svc.getPersonHistory(personnummer=preg.pop.unknown),
                 lambda: svc.linkHjelpenummer(hjelpenummer=_fh(svc, "Ingen", version).hjelpenummer,
                                              personnummer=preg.pop.unknown)):
        assert faults(call, version, "Client.NotFound").message == "no person with that number"


def test_more_hits_than_maks_antall_is_a_too_many_hits_fault(preg: PregServer, version: str) -> None:
    svc = service(preg, version)
    fault = faults(lambda: svc.searchPerson(etternavn="Fjellheim", fodselsaar=1975, maksAntall=3), version,
                   "Client.TooManyHits")
    assert fault.message == "more than 3 hits; narrow the search"
    assert svc.searchPerson(etternavn="Fjellheim", fodselsaar=1975, maksAntall=4).antallTreff == 4


@pytest.mark.parametrize(("criteria", "message"), [
    ({"etternavn": "Fjellheim"}, "besides the name"),
    ({"etternavn": "Fj", "fodselsaar": 1975}, "at least 3 letters of name"),
    ({"fornavn": "Bjørn", "kommunenummer": "3401"}, "given name alone needs a birth date or year"),
    ({"etternavn": "Fjellheim", "postnummer": "22"}, "4 digits"),
    ({"etternavn": "Fjellheim", "fodselsaar": 1975, "maksAntall": 0}, "maksAntall must be at least 1"),
])
def test_a_search_below_the_minimum_criteria_is_an_invalid_request(preg: PregServer, version: str,
                                                                   criteria: dict[str, Any], message: str) -> None:
    fault = faults(lambda: service(preg, version).searchPerson(**criteria), version, "Client.InvalidRequest")
    assert message in fault.message


@pytest.mark.parametrize(("body", "message"), [
    ("<p:getPersons>" + "<p:personnummer>17858093864</p:personnummer>" * 101 + "</p:getPersons>",
     "not expected"),
    ("<p:getPerson/>", "Missing child element"),
    ("<p:getPerson><p:personnummer>17858093864</p:personnummer><p:extra/></p:getPerson>", "not expected"),
    ("<p:searchPerson><p:etternavn>Fjellheim</p:etternavn><p:fodselsaar>nittensyttifem</p:fodselsaar>"
     "</p:searchPerson>", "not a valid value"),
    ("<p:getChanges><p:fraSekvensnummer>0</p:fraSekvensnummer></p:getChanges>", "Missing child element"),
])
def test_a_schema_invalid_request_is_an_invalid_request_fault(preg: PregServer, version: str, body: str,
                                                              message: str) -> None:
    answer = preg.call(version, body)
    assert answer.status == 500
    got_version, code, text = fault_of(answer.xml())
    assert (got_version, code) == (version, "Client.InvalidRequest")
    assert text.startswith("the request does not follow the contract") and message in text


def test_an_unreachable_store_is_server_unavailable(tmp_path: Path, version: str) -> None:
    engine = make_engine("postgresql+psycopg://root@127.0.0.1:1/x")
    with running_preg("postgresql+psycopg://root@127.0.0.1:1/x", tmp_path, engine=engine, populated=False,
                      with_accounts=False) as down:
        svc = down.caller().service(version)  # the WSDL is served without the store
        fault = faults(lambda: svc.getPerson(personnummer="17858093864"), version, "Server.Unavailable")
        # the store failed first, then its audit record: either message, never the driver's text
        assert fault.message in ("the register is temporarily unavailable", "the audit trail is unavailable")
        assert "127.0.0.1" not in faults(svc.ping, version, "Server.Unavailable").message


# -- WS-Security and throttling ---------------------------------------------------------------------------


def test_ws_security_password_text(preg: PregServer, version: str) -> None:
    svc = preg.caller(wsse=UsernameToken(ACCOUNTS["basis"], PASSWORD)).service(version)
    assert svc.getPerson(personnummer=preg.pop.ordinary).person.navn.etternavn == "Nordmann"
    wrong = preg.caller(wsse=UsernameToken(ACCOUNTS["basis"], "not the right password")).service(version)
    assert faults(wrong.ping, version, "Client.Authentication").message == "invalid username or password"


def test_ws_security_password_digest(preg: PregServer, version: str) -> None:
    svc = preg.caller(wsse=UsernameToken(DIGEST_USER, PASSWORD, use_digest=True)).service(version)
    assert svc.ping().status == "OK"
    assert svc.getPerson(personnummer=preg.pop.ordinary).person.navn.etternavn == "Nordmann"  # a new nonce each call
    wrong = preg.caller(wsse=UsernameToken(DIGEST_USER, "not the right password", use_digest=True))
    faults(wrong.service(version).ping, version, "Client.Authentication")
    no_secret = preg.caller(wsse=UsernameToken(ACCOUNTS["full"], PASSWORD, use_digest=True))  # not a digest account
    faults(no_secret.service(version).ping, version, "Client.Authentication")


def test_a_replayed_digest_is_refused(preg: PregServer, version: str) -> None:
    token = UsernameToken(DIGEST_USER, PASSWORD, use_digest=True, nonce=f"replay-{uuid.uuid4().hex}",
                          created=dt.datetime.now(dt.UTC))
    svc = preg.caller(wsse=token).service(version)
    assert svc.ping().status == "OK"
    fault = faults(svc.ping, version, "Client.Authentication")  # the same nonce and created again
    assert fault.message == "invalid username or password"


@pytest.mark.parametrize("minutes", [-10, 10])
def test_a_digest_created_outside_the_freshness_window_is_refused(preg: PregServer, version: str,
                                                                  minutes: int) -> None:
    token = UsernameToken(DIGEST_USER, PASSWORD, use_digest=True,
                          created=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes))
    faults(preg.caller(wsse=token).service(version).ping, version, "Client.Authentication")


def test_throttling_delays_the_guessing_pair_not_the_account_or_the_address(db_url: str, tmp_path: Path) -> None:
    throttle = {"pair_free_failures": 3, "account_free_failures": 1000, "delay_base_seconds": 600}
    with running_preg(db_url, tmp_path, populated=False, access=throttle) as srv:
        wrong = (ACCOUNTS["full"], "not the right password")
        for _ in range(4):  # from 127.0.0.2: three free failures, the fourth starts a delay
            answer = srv.call("1.1", "<p:ping/>", auth=wrong, source="127.0.0.2")
            assert fault_of(answer.xml()) == ("1.1", "Client.Authentication", "invalid username or password")
        delayed = srv.call("1.2", "<p:ping/>", auth=(ACCOUNTS["full"], PASSWORD), source="127.0.0.2")
        assert fault_of(delayed.xml()) == ("1.2", "Client.Authentication", "too many failed attempts; try again later")
        for version in VERSIONS:  # the right password from 127.0.0.1: not held back by another's guesses
            assert srv.caller(ACCOUNTS["full"]).service(version).ping().status == "OK"
        other = srv.call("1.2", "<p:ping/>", auth=(ACCOUNTS["basis"], PASSWORD), source="127.0.0.2")
        assert other.status == 200  # another account from the guessing address: not held back either


# -- access profiles and masking --------------------------------------------------------------------------


def test_basis_sees_relations_and_marital_status_as_present_but_empty(preg: PregServer, version: str) -> None:
    caller = preg.caller(ACCOUNTS["basis"])
    p = caller.service(version).getPerson(personnummer=preg.pop.history).person
    assert (p.navn.etternavn, p.adresser.adresse[0].adressetekst) == ("Haugen", "Storgata 1")
    raw = caller.last_answer().find(q("person"))
    assert raw is not None
    relations = raw.find(q("relasjoner"))
    assert relations is not None and len(relations) == 0
    assert text_at(raw, "sivilstand") is None and text_at(raw, "spesregKode") is None
    assert raw.findall(q("statsborgerskap")) == []
    history = caller.service(version).getPersonHistory(personnummer=preg.pop.history)
    assert [n.etternavn for n in history.navneHistorikk.navn] == ["Haugen"]  # no history element: current only
    marital = caller.last_answer().find(q("historikk/sivilstandHistorikk"))
    assert marital is not None and len(marital) == 0


def test_lookup_only_sees_its_elements_and_empty_structure_for_the_rest(preg: PregServer, version: str) -> None:
    caller = preg.caller(ACCOUNTS["lookupOnly"])
    caller.service(version).getPerson(personnummer=preg.pop.ordinary)
    raw = caller.last_answer().find(q("person"))
    assert raw is not None
    assert (text_at(raw, "navn/etternavn"), text_at(raw, "fodselsdato")) == ("Nordmann", "1980-05-17")
    adresser = raw.find(q("adresser"))
    assert adresser is not None and len(adresser) == 0
    assert text_at(raw, "kjonn") is None and text_at(raw, "personstatus") is None


@pytest.mark.parametrize(("who", "placeholder", "code"), [
    ("klient", "Sperret adr. klientadr.", "4"),
    ("fortrolig", "Sperret adr. fortrolig", "7"),
])
def test_uten_hjemmel_gets_placeholders_for_protected_addresses(preg: PregServer, version: str, who: str,
                                                                placeholder: str, code: str) -> None:
    number = getattr(preg.pop, who)
    svc = service(preg, version, "utenHjemmel")
    for address in (svc.getPerson(personnummer=number).person.adresser.adresse[0],
                    svc.getAdresses(personnummer=number).adresse[0]):
        assert (address.adressetekst, address.spesregKode) == (placeholder, code)
        assert (address.gatenavn, address.husnummer, address.postnummer, address.poststed) == (None, None, None, None)
        assert (address.adresselinje, address.flyttedato) == ([], None)
        assert address.kommunenummer == "0301"  # kept for klientadresse and fortrolig
    raw = preg.caller(ACCOUNTS["utenHjemmel"]).last_answer().find(q("adresse"))
    assert raw is not None and text_at(raw, "gatenavn") is None and text_at(raw, "postnummer") is None


@pytest.mark.parametrize("profile", ["full", "basis", "utenHjemmel"])
def test_strengt_fortrolig_is_sperret_adresse_for_every_profile(preg: PregServer, version: str, profile: str) -> None:
    svc = service(preg, version, profile)
    number = preg.pop.strengt
    for address in (svc.getPerson(personnummer=number).person.adresser.adresse[0],
                    svc.getAdresses(personnummer=number).adresse[0],
                    svc.getPersonHistory(personnummer=number).adresseHistorikk.adresse[0]):
        assert (address.adressetype, address.adressetekst, address.spesregKode) == ("post", "Sperret adresse", "6")
        assert (address.adresselinje, address.postnummer, address.kommunenummer) == ([], None, None)
    if profile == "full":
        assert svc.getAdresses(personnummer=number).spesregKode == "6"


@pytest.mark.parametrize("profile", ["full", "basis"])
def test_full_and_basis_see_fortrolig_and_klientadresse(preg: PregServer, version: str, profile: str) -> None:
    svc = service(preg, version, profile)
    fortrolig = svc.getAdresses(personnummer=preg.pop.fortrolig).adresse[0]
    assert (fortrolig.adressetekst, fortrolig.gatenavn, fortrolig.postnummer, fortrolig.spesregKode) == (
        "Bakkegata 3", "Bakkegata", "0150", "7")
    klient = svc.getPerson(personnummer=preg.pop.klient).person
    assert (klient.adresser.adresse[0].adressetekst, klient.adresser.adresse[0].spesregKode) == ("Kirkeveien 12", "4")
    assert klient.spesregKode == ("4" if profile == "full" else None)  # the person-level element follows the profile


# -- audit ------------------------------------------------------------------------------------------------


def test_an_answered_call_is_audited(preg: PregServer, version: str) -> None:
    pop = preg.pop
    service(preg, version).getPerson(personnummer=pop.replaced_dnr)
    [record] = query_audit(preg.engine, person=pop.replaced_dnr, limit=1)
    assert (record.account, record.face, record.operation, record.outcome) == (
        ACCOUNTS["full"], "soap-preg", "getPerson", "ok")
    assert (record.asked, record.returned, record.source) == ((pop.replaced_dnr,), (pop.replaced_fnr,), "127.0.0.1")
    assert query_audit(preg.engine, person=pop.replaced_fnr, limit=1) == [record]


def test_refused_calls_are_audited_with_their_fault_code(preg: PregServer, version: str) -> None:
    pop = preg.pop
    faults(lambda: service(preg, version).getPerson(personnummer=pop.unknown), version, "Client.NotFound")
    [record] = query_audit(preg.engine, person=pop.unknown, limit=1)
    assert (record.account, record.outcome, record.asked, record.returned) == (
        ACCOUNTS["full"], "Client.NotFound", (pop.unknown,), ())
    faults(lambda: service(preg, version, "lookupOnly").searchPerson(etternavn="Fjellheim", fodselsaar=1975),
           version, "Client.Authorization")
    [record] = query_audit(preg.engine, account=ACCOUNTS["lookupOnly"], limit=1)
    assert (record.operation, record.outcome) == ("searchPerson", "Client.Authorization")
    faults(lambda: service(preg, version).getHjelpenummer(hjelpenummer=pop.fortrolig), version,
           "Client.InvalidIdentifier")
    [record] = query_audit(preg.engine, person=pop.fortrolig, limit=1)
    assert (record.operation, record.outcome, record.asked) == (
        "getHjelpenummer", "Client.InvalidIdentifier", (pop.fortrolig,))
    faults(lambda: preg.caller("no-such-user").service(version).getAdresses(personnummer=pop.ordinary), version,
           "Client.Authentication")
    [record] = query_audit(preg.engine, limit=1)
    assert (record.account, record.operation, record.outcome) == ("no-such-user", "getAdresses",
                                                                  "Client.Authentication")  # the name it tried


def test_a_formaal_header_is_the_audit_purpose(preg: PregServer, version: str) -> None:
    purpose = etree.Element(f"{{{NS}}}formaal")
    purpose.text = f"Helsehjelp – timebestilling ({version})"
    service(preg, version).getPerson(personnummer=preg.pop.ordinary, _soapheaders=[purpose])
    [record] = query_audit(preg.engine, person=preg.pop.ordinary, limit=1)
    assert (record.purpose, record.operation, record.outcome) == (purpose.text, "getPerson", "ok")
    service(preg, version).getPerson(personnummer=preg.pop.ordinary)
    assert query_audit(preg.engine, person=preg.pop.ordinary, limit=1)[0].purpose is None
