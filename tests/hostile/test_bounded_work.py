"""Hostile clients that ask for unbounded work, against the served PREG and HL7 faces, on SQLite and PostgreSQL.

Issue 13 found that a searchPerson surname of 20,000 words kept a PostgreSQL backend at 100 % CPU for over a
minute, 1,000 words gave an internal Server fault on SQLite and AE 207 on HL7, and felles hjelpenummer
requests stored 100,000-character names, birth date 9999-12-31 and (as a fault) a house number of 2**64.
Each case here asserts the typed answer, that it came at once, that a normal request is answered right
after (autouse fixtures), and that no traceback reached the log.

The statement deadline is shown on both databases without a huge store: on PostgreSQL another connection
holds a lock on ``person_search`` (statement_timeout counts lock waits), on SQLite the deadline is set
below the time the progress handler's first look comes (the store holds a few hundred more Hansens, and the
search reads them all: enough instructions to be looked at).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from adapters.ar import ARRAYS as AR_ARRAYS
from adapters.ar import CP as AR_CP
from store.document import from_document
from store.engine import make_engine, migrate
from store.repository import PersonRepository
from tests.factories import person_doc
from tests.hostile.bounds_support import assert_no_traceback
from tests.integration import test_ar_soap
from tests.integration.preg_support import (
    SPYNE_WARNINGS,
    PregServer,
    Raw,
    backend_url,
    body_child,
    fault_of,
    running_preg,
)
from tests.integration.test_ar_soap import ArServer
from tests.integration.test_ar_soap import _post as ar_post
from tests.integration.test_hl7_mllp import Server, ask, err_code, f, message, parsed, seg, segs, serving

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

ar_server = test_ar_soap.ar_server  # the served AR of tests/integration/test_ar_soap.py, on both stores

EXTRA_HANSENS = 600  # in postnummer 5003 (HL7) / 0150 (PREG): a search through them passes the progress handler
DEADLINE = 5.0
PDQ = "QBP^Q22^QBP_Q21"


def _add_hansens(engine: Engine, postnummer: str) -> None:
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for i in range(EXTRA_HANSENS):
            repo.save(from_document(person_doc(f"extra-hansen-{i}", given=f"Extra{chr(97 + i % 26)}", family="Hansen",
                                               born=f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}", postnummer=postnummer)))


@contextlib.contextmanager
def over_deadline(engine: Engine) -> Iterator[None]:
    """The next reads run past the statement deadline: PostgreSQL waits on a lock held here for longer than a
    0.3 s deadline; SQLite gets a deadline that has passed by the progress handler's first look."""
    if engine.dialect.name == "postgresql":
        engine.update_execution_options(statement_timeout=0.3)
        with engine.connect() as locker:
            locker.execute(text("LOCK TABLE person_search IN ACCESS EXCLUSIVE MODE"))
            try:
                yield
            finally:
                locker.rollback()
                engine.update_execution_options(statement_timeout=DEADLINE)
        return
    engine.update_execution_options(statement_timeout=1e-9)
    try:
        yield
    finally:
        engine.update_execution_options(statement_timeout=DEADLINE)


def _persons(engine: Engine) -> int:
    with engine.connect() as conn:
        return PersonRepository(conn).count()


# -- PREG ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def preg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work = tmp_path_factory.mktemp(f"bounded-{request.param}")
    with backend_url(request.param, work) as url:
        engine = make_engine(url, statement_timeout=DEADLINE)
        migrate(engine)
        with running_preg(url, work, engine=engine) as srv:
            _add_hansens(engine, "0150")
            yield srv


@pytest.fixture(autouse=True)
def _answers_then_log_is_clean(request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture,
                               capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """After each case a normal request of the same face is answered, and no traceback reached the log."""
    caplog.set_level(logging.INFO)
    yield
    if "preg" in request.fixturenames:
        srv: PregServer = request.getfixturevalue("preg")
        answer = srv.call("1.1", "<p:searchPerson><p:etternavn>Fjellheim</p:etternavn><p:fodselsaar>1975</p:fodselsaar>"
                                 "</p:searchPerson>")
        assert answer.status == 200, answer.body[:300]
        assert body_child(answer.xml()).findtext("{*}antallTreff") == "4"
    if "hl7" in request.fixturenames:
        hl7_: Server = request.getfixturevalue("hl7")
        (reply,) = ask(hl7_, message(PDQ, "QPD|IHE PDQ Query|t|@PID.5.1^Ærøe~@PID.7^1975", "RCP|I"))
        m = parsed(reply)
        assert f(seg(m, "MSA"), 1) == "AA" and len(segs(m, "PID")) == 1
    assert_no_traceback(caplog, capfd)


def _fault(answer: Raw, code: str, says: str) -> None:
    assert answer.status == 500, answer.body[:300]
    _, got, message_ = fault_of(answer.xml())
    assert got == code and says in message_, (got, message_)


def _search(srv: PregServer, inner: str, version: str = "1.1") -> tuple[Raw, float]:
    started = time.perf_counter()
    answer = srv.call(version, f"<p:searchPerson>{inner}</p:searchPerson>")
    return answer, time.perf_counter() - started


@pytest.mark.parametrize("words", [1_000, 20_000])
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_surname_of_thousands_of_words_is_refused_at_once(preg: PregServer, words: int, version: str) -> None:
    answer, took = _search(preg, f"<p:etternavn>{' '.join(['Hansen'] * words)}</p:etternavn>"
                                 "<p:fodselsaar>1980</p:fodselsaar>", version)
    _fault(answer, "Client.InvalidRequest", "family name is longer than 200 characters")
    assert took < 2.0


def test_a_name_of_eleven_short_words_is_refused(preg: PregServer) -> None:
    answer, _ = _search(preg, f"<p:navn>{' '.join(['Han'] * 11)}</p:navn><p:postnummer>0150</p:postnummer>")
    _fault(answer, "Client.InvalidRequest", "more than 10 words")


@pytest.mark.parametrize("element", ["fornavn", "navn", "gatenavn", "postnummer"])
def test_a_criterion_over_200_characters_is_refused(preg: PregServer, element: str) -> None:
    inner = {"fornavn": "<p:fornavn>{}</p:fornavn><p:fodselsaar>1980</p:fodselsaar>",
             "navn": "<p:navn>{}</p:navn><p:fodselsaar>1980</p:fodselsaar>",
             "gatenavn": "<p:etternavn>Hansen</p:etternavn><p:gatenavn>{}</p:gatenavn>",
             "postnummer": "<p:etternavn>Hansen</p:etternavn><p:postnummer>{}</p:postnummer>"}[element]
    answer, _ = _search(preg, inner.format("Å" * 201))
    _fault(answer, "Client.InvalidRequest", "longer than 200 characters")


@pytest.mark.parametrize("inner", [
    "<p:etternavn>Hansen</p:etternavn><p:fodselsaar>18446744073709551616</p:fodselsaar>",
    "<p:etternavn>Hansen</p:etternavn><p:fodselsaar>1980</p:fodselsaar><p:maksAntall>18446744073709551616"
    "</p:maksAntall>",
])
def test_over_range_numbers_in_a_search_are_invalid_requests(preg: PregServer, inner: str) -> None:
    answer, _ = _search(preg, inner)
    _fault(answer, "Client.InvalidRequest", "contract")


@pytest.mark.parametrize(("first", "answered"), [("18446744073709551616", False), ("-9223372036854775809", False),
                                                 ("9223372036854775807", True)])
def test_get_changes_from_a_sequence_number_out_of_xs_long_is_invalid(preg: PregServer, first: str,
                                                                      answered: bool) -> None:
    answer = preg.call("1.1", f"<p:getChanges><p:fraSekvensnummer>{first}</p:fraSekvensnummer>"
                              f"<p:personnummer>{preg.pop.ordinary}</p:personnummer></p:getChanges>")
    if answered:  # the largest xs:long: nothing after it, answered
        assert answer.status == 200, answer.body[:300]
        assert body_child(answer.xml()).findtext("{*}flereEndringer") == "false"
    else:
        _fault(answer, "Client.InvalidRequest", "contract")


def _fh(given: str = "Grense", born: str = "1950-01-01", address: str = "") -> str:
    return (f"<p:requestHjelpenummer><p:fornavn>{given}</p:fornavn><p:etternavn>Pasient</p:etternavn>"
            f"<p:kjonn>K</p:kjonn><p:fodselsdato>{born}</p:fodselsdato>{address}</p:requestHjelpenummer>")


@pytest.mark.parametrize(("request_", "says"), [
    (_fh(given="A" * 100_000), "given name is longer than 100 characters"),
    (_fh(given=" ".join(["Anne"] * 11)), "given name is longer"),
    (_fh(born="9999-12-31"), "birth date must be between 1850-01-01 and today"),
    (_fh(born="1066-10-14"), "birth date must be between"),
    (_fh(address="<p:adresse><p:gatenavn>Storgata</p:gatenavn><p:husnummer>18446744073709551616</p:husnummer>"
                 "</p:adresse>"), "house number must be 1-9999"),
    (_fh(address="<p:adresse><p:husnummer>0</p:husnummer></p:adresse>"), "house number must be 1-9999"),
    (_fh(address="<p:adresse><p:postnummer>01500</p:postnummer></p:adresse>"), "postnummer must be 4 digits"),
    (_fh(address="<p:adresse><p:kommunenummer>0301x</p:kommunenummer></p:adresse>"), "kommune must be 4 digits"),
    (_fh(address="<p:adresse><p:poststed>" + "O" * 101 + "</p:poststed></p:adresse>"), "poststed is longer"),
])
def test_implausible_hjelpenummer_requests_are_refused_and_nothing_is_stored(preg: PregServer, request_: str,
                                                                              says: str) -> None:
    before = _persons(preg.engine)
    _fault(preg.call("1.1", request_), "Client.InvalidRequest", says)
    assert _persons(preg.engine) == before


def test_a_plausible_hjelpenummer_request_with_a_house_letter_is_stored(preg: PregServer) -> None:
    answer = preg.call("1.1", _fh(given="Bokstav", address="<p:adresse><p:gatenavn>Storgata</p:gatenavn>"
                                                           "<p:husnummer>12 b</p:husnummer></p:adresse>"))
    assert answer.status == 200, answer.body[:300]
    number_ = body_child(answer.xml()).findtext("{*}hjelpenummer")
    assert number_ is not None
    with preg.engine.connect() as conn:
        found = PersonRepository(conn).find(number_)
    assert found is not None
    (address,) = found.person.addresses
    assert (address.street, address.house_number, address.house_letter) == ("Storgata", 12, "B")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_search_past_the_statement_deadline_is_server_unavailable(preg: PregServer, version: str) -> None:
    with over_deadline(preg.engine):
        # every Hansen of 0150 is read and set aside (no Zzyzx): well past store.engine.PROGRESS_STEPS instructions
        answer, took = _search(preg, "<p:fornavn>Zzyzx</p:fornavn><p:etternavn>Hansen</p:etternavn>"
                                     "<p:postnummer>0150</p:postnummer>", version)
    _fault(answer, "Server.Unavailable", "statement deadline")
    assert took < 3.0


# -- HL7 ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hl7(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp(f"bounded-hl7-{request.param}")
    with backend_url(request.param, work) as url, \
            serving(url, statement_timeout=DEADLINE, more=lambda engine: _add_hansens(engine, "5003")) as srv:
        yield srv


def _pdq(srv: Server, qpd3: str) -> tuple[object, float]:
    started = time.perf_counter()
    (reply,) = ask(srv, message(PDQ, f"QPD|IHE PDQ Query|t|{qpd3}", "RCP|I|200^RD"))
    return parsed(reply), time.perf_counter() - started


@pytest.mark.parametrize("words", [1_000, 20_000])
def test_pdq_family_name_of_thousands_of_words_is_ae_101(hl7: Server, words: int) -> None:
    m, took = _pdq(hl7, f"@PID.5.1^{' '.join(['Hansen'] * words)}~@PID.7^1990")
    assert f(seg(m, "MSA"), 1) == "AE" and f(seg(m, "QAK"), 2) == "AE"
    assert err_code(m) == "104" and f(seg(m, "ERR"), 2) == "QPD^1^3" and "longer than 200" in f(seg(m, "ERR"), 8)
    assert took < 2.0


def test_pdq_given_name_of_eleven_words_is_ae_104(hl7: Server) -> None:
    m, _ = _pdq(hl7, f"@PID.5.1^Hansen~@PID.5.2^{' '.join(['Per'] * 11)}~@PID.7^1990")
    assert err_code(m) == "104" and "more than 10 words" in f(seg(m, "ERR"), 8)


def test_pdq_with_more_than_16_parameters_is_refused(hl7: Server) -> None:
    m, _ = _pdq(hl7, "~".join(["@PID.5.1^Hansen"] + ["@PID.99^x"] * 16))
    assert f(seg(m, "MSA"), 1) == "AE" and err_code(m) == "104" and f(seg(m, "ERR"), 2) == "QPD^1^3^17"


def test_pdq_with_a_parameter_given_twice_is_refused(hl7: Server) -> None:
    m, _ = _pdq(hl7, "@PID.5.1^Hansen~@PID.7^1990~@PID.5.1.1^Berg")
    assert f(seg(m, "MSA"), 1) == "AE" and err_code(m) == "102" and f(seg(m, "ERR"), 2) == "QPD^1^3^3"
    assert "given twice" in f(seg(m, "ERR"), 8)


@pytest.mark.parametrize(("qpd3", "code", "says"), [
    ("@PID.5.1^Pasient~@PID.5.2^" + "A" * 100_000 + "~@PID.7^19500101~@PID.8^F", "104", "longer than 100 characters"),
    ("@PID.5.1^Pasient~@PID.5.2^Grense~@PID.7^99991231~@PID.8^F", "101", "birth date must be between"),
    ("@PID.5.1^Pasient~@PID.5.2^Grense~@PID.7^19500101~@PID.8^F~@PID.11.1^Storgata 18446744073709551616",
     "101", "house number must be 1-9999"),
])
def test_implausible_q24_requests_are_ae_and_nothing_is_stored(hl7: Server, qpd3: str, code: str, says: str) -> None:
    before = _persons(hl7.engine)
    (reply,) = ask(hl7, message("QBP^Q24^QBP_Q21", f"QPD|Q24^Allocate Identifiers^HL70471|t|{qpd3}", "RCP|I"))
    m = parsed(reply)
    assert f(seg(m, "MSA"), 1) == "AE" and err_code(m) == code and says in f(seg(m, "ERR"), 8)
    assert _persons(hl7.engine) == before


def test_pdq_past_the_statement_deadline_is_ae_207_not_an_internal_error(hl7: Server) -> None:
    with over_deadline(hl7.engine):
        m, took = _pdq(hl7, "@PID.5.1^Hansen~@PID.5.2^Zzyzx~@PID.11.5^5003")
    assert f(seg(m, "MSA"), 1) == "AE" and f(seg(m, "QAK"), 2) == "AE" and err_code(m) == "207"
    assert "statement deadline" in f(seg(m, "ERR"), 8)
    assert took < 3.0


# -- AR -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("body", [
    f'<GetCommunicationPartyDetails xmlns="{AR_CP}"><herId>18446744073709551616</herId>'
    "</GetCommunicationPartyDetails>",
    f'<GetChangedCommunicationPartiesInfo xmlns="{AR_CP}"><herIds><i:int xmlns:i="{AR_ARRAYS}">18446744073709551616'
    "</i:int></herIds></GetChangedCommunicationPartiesInfo>",
])
def test_over_range_numbers_in_an_ar_request_are_invalid_requests(ar_server: ArServer, version: str,
                                                                  body: str) -> None:
    ar = ar_server
    answer = ar_post(ar, version, body)
    assert answer.status_code == 500
    assert b"InvalidRequest" in answer.content or b"InvalidHerIdSupplied" in answer.content, answer.content[:400]
    for leak in (b"Traceback", b"internal error", b"Unavailable"):
        assert leak not in answer.content
    ok = ar_post(ar, version, f'<GetCommunicationPartyDetails xmlns="{AR_CP}">'
                              f'<herId>{ar.first("Service")["herId"]}</herId></GetCommunicationPartyDetails>')
    assert ok.status_code == 200
