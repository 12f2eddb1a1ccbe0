"""Hostile and broken requests sent raw (http.client) to the real PREG endpoint, on both backends.

Each is answered with a SOAP fault in the right SOAP version (never a plain-text 500, never a traceback),
and the server still answers ``ping`` afterwards (checked after every test). The guard itself is tested
in depth against a fake inner app in tests/integration/test_soap_middleware.py; here the whole stack
(guard, router, spyne, face, store) sits behind the socket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.preg_support import (
    CT11,
    CT12,
    SPYNE_WARNINGS,
    PregServer,
    Raw,
    backend_url,
    body_child,
    envelope,
    fault_of,
    running_preg,
)

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

MiB = 1024 * 1024
CONTENT_TYPE = {"1.1": CT11, "1.2": CT12}
NOT_LEAKED = (b"Traceback", b'File "', b".py", b"lxml", b"sqlalchemy", b"spyne", b"root:")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def preg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work = tmp_path_factory.mktemp(f"hostile-{request.param}")
    with backend_url(request.param, work) as url, running_preg(url, work) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _still_answers_ping(preg: PregServer) -> Iterator[None]:
    yield
    for version in ("1.1", "1.2"):
        answer = preg.call(version, "<p:ping/>")
        assert answer.status == 200, answer.body[:300]
        assert body_child(answer.xml()).findtext("{*}status") == "OK"


def assert_fault(answer: Raw, version: str, code: str, says: str = "") -> str:
    """A fault of ``version`` with ``code``, sent as that version's XML type, free of internals."""
    assert answer.status == 500
    assert answer.content_type == CONTENT_TYPE[version]
    for leak in NOT_LEAKED:
        assert leak not in answer.body
    got_version, got_code, message = fault_of(answer.xml())
    assert (got_version, got_code) == (version, code)
    assert says in message
    return message


def get_person(number: str) -> str:
    return f"<p:getPerson><p:personnummer>{number}</p:personnummer></p:getPerson>"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_xxe_is_refused_before_any_parser_runs(preg: PregServer, version: str) -> None:
    body = envelope(version, get_person("&xxe;")).replace(
        b"<e:Envelope", b'<!DOCTYPE e:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><e:Envelope', 1)
    assert_fault(preg.post(body, CONTENT_TYPE[version]), version, "Client.InvalidRequest", "DTDs are not allowed")


def test_billion_laughs_is_refused_at_once(preg: PregServer) -> None:
    laughs = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    body = envelope("1.1", get_person("&lol9;")).replace(b"<e:Envelope", f"<!DOCTYPE e [{laughs}]><e:Envelope"
                                                         .encode(), 1)
    started = time.perf_counter()
    assert_fault(preg.post(body), "1.1", "Client.InvalidRequest", "DTDs are not allowed")
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_10_mb_body_is_refused_as_too_large(preg: PregServer, version: str) -> None:
    padding = b"<!-- " + b"x" * (10 * MiB) + b" -->"
    body = envelope(version, get_person("17858093864")).replace(b"<e:Body>", b"<e:Body>" + padding, 1)
    assert len(body) > 10 * MiB
    assert_fault(preg.post(body, CONTENT_TYPE[version]), version, "Client.RequestTooLarge",
                 f"larger than {2 * MiB} bytes")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_truncated_xml_is_not_well_formed(preg: PregServer, version: str) -> None:
    body = envelope(version, get_person("17858093864"))
    assert_fault(preg.post(body[: len(body) // 2], CONTENT_TYPE[version]), version, "Client.InvalidRequest",
                 "not well-formed")


def test_a_soap12_envelope_sent_as_text_xml_is_a_soap12_version_mismatch(preg: PregServer) -> None:
    answer = preg.post(envelope("1.2", "<p:ping/>"), CT11)
    assert_fault(answer, "1.2", "VersionMismatch", "sent as 'text/xml'")
    assert b"Upgrade" in answer.body and b"SupportedEnvelope" in answer.body


def test_a_soap11_envelope_sent_as_soap_xml_is_a_soap11_version_mismatch(preg: PregServer) -> None:
    answer = preg.post(envelope("1.1", "<p:ping/>"), CT12)
    assert_fault(answer, "1.1", "VersionMismatch", "sent as 'application/soap+xml'")
    assert b"Upgrade" in answer.body


def test_a_root_that_is_no_envelope_is_a_version_mismatch(preg: PregServer) -> None:
    assert_fault(preg.post(b'<p:getPerson xmlns:p="urn:x"/>'), "1.1", "VersionMismatch", "not a SOAP")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_latin1_bytes_under_a_utf8_header_are_a_fault_not_a_plain_500(preg: PregServer, version: str) -> None:
    search = "<p:searchPerson><p:etternavn>Ødegård</p:etternavn><p:fodselsaar>1962</p:fodselsaar></p:searchPerson>"
    body = envelope(version, search).decode().replace(' encoding="UTF-8"', "").encode("latin-1")
    assert_fault(preg.post(body, CONTENT_TYPE[version]), version, "Client.InvalidRequest", "not valid utf-8")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize("named_by", ["header", "declaration", "both"])
def test_a_correct_iso_8859_1_search_with_norwegian_letters_works(preg: PregServer, version: str,
                                                                  named_by: str) -> None:
    search = "<p:searchPerson><p:etternavn>Ødegård</p:etternavn><p:fodselsaar>1962</p:fodselsaar></p:searchPerson>"
    text = envelope(version, search).decode()
    if named_by == "header":
        text = text.replace(' encoding="UTF-8"', "")
    else:
        text = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    media = CONTENT_TYPE[version].split(";")[0]
    content_type = media if named_by == "declaration" else f"{media}; charset=ISO-8859-1"
    answer = preg.post(text.encode("latin-1"), content_type)
    assert answer.status == 200, answer.body[:300]
    result = body_child(answer.xml())
    assert result.findtext("{*}antallTreff") == "1"
    assert result.findtext("{*}treff/{*}person/{*}navn/{*}etternavn") == "Ødegård"
    assert result.findtext("{*}treff/{*}person/{*}personnummer") == preg.pop.nordic


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize(("number", "code"), [
    ("' OR '1'='1", "Client.InvalidIdentifier"),
    ("1' OR 1=1;--", "Client.InvalidIdentifier"),
    ("0';DROP TABLE x;--", "Client.InvalidIdentifier"),
    ("%", "Client.InvalidIdentifier"),
    ("_%_%_%_%_%_", "Client.InvalidIdentifier"),
    ("0'; DROP TABLE person; --", "Client.InvalidRequest"),  # longer than the schema's 20 characters
])
def test_sql_metacharacters_in_a_number_are_refused(preg: PregServer, version: str, number: str, code: str) -> None:
    assert_fault(preg.call(version, get_person(number)), version, code)
    assert preg.call(version, get_person(preg.pop.ordinary)).status == 200


@pytest.mark.parametrize("name", ["Robert'); DROP TABLE person;--", "x' OR '1'='1", "Fjell%", 'Dahl" OR ""="'])
def test_sql_metacharacters_in_a_search_are_text(preg: PregServer, name: str) -> None:
    search = f"<p:searchPerson><p:etternavn>{name}</p:etternavn><p:fodselsaar>1975</p:fodselsaar></p:searchPerson>"
    answer = preg.call("1.1", search)
    assert answer.status == 200, answer.body[:300]
    hits = int(body_child(answer.xml()).findtext("{*}antallTreff") or "-1")
    assert hits == (4 if name == "Fjell%" else 0)  # "Fjell%" is the prefix "fjell": the four Fjellheims
    still = preg.call("1.1", get_person(preg.pop.ordinary))
    assert still.status == 200 and b"Nordmann" in still.body


def test_an_empty_body_is_a_client_fault(preg: PregServer) -> None:
    assert_fault(preg.post(b"", CT12), "1.2", "Client.InvalidRequest", "empty")


def test_utf16_is_refused(preg: PregServer) -> None:
    body = envelope("1.1", "<p:ping/>").decode().replace("UTF-8", "UTF-16").encode("utf-16")
    assert_fault(preg.post(body), "1.1", "Client.InvalidRequest", "UTF-16")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_an_unknown_operation_is_a_client_fault(preg: PregServer, version: str) -> None:
    assert_fault(preg.call(version, "<p:dropAllPersons/>"), version, "Client.ResourceNotFound")
