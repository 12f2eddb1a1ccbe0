"""server.replay.compare_xml: prefixes never matter, whitespace-only text is ignored, ignore rules apply to both
sides, and a difference is named by a readable path with the expected and actual value."""

from __future__ import annotations

from server.replay.compare_xml import compare_xml
from server.replay.result import Outcome

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
WSA = "http://www.w3.org/2005/08/addressing"
NS = "urn:no:pregbridge:personregister:v1"


def doc(body: str, header: str = "", prefix: str = "s", pns: str = "p") -> bytes:
    return (f'<{prefix}:Envelope xmlns:{prefix}="{SOAP11}" xmlns:{pns}="{NS}" xmlns:a="{WSA}">'
            f"<{prefix}:Header>{header}</{prefix}:Header><{prefix}:Body>{body}</{prefix}:Body>"
            f"</{prefix}:Envelope>").encode()


PERSON = "<p:getPersonResponse><p:navn><p:fornavn>Åse</p:fornavn><p:etternavn>Li</p:etternavn></p:navn>" \
         "<p:kjonn>K</p:kjonn></p:getPersonResponse>"


def test_the_same_document_is_identical() -> None:
    assert compare_xml(doc(PERSON), doc(PERSON)).outcome is Outcome.IDENTICAL


def test_prefixes_are_not_significant() -> None:
    other = doc(PERSON.replace("p:", "tns:"), prefix="soap11env", pns="tns")
    assert compare_xml(doc(PERSON), other).outcome is Outcome.IDENTICAL


def test_default_namespace_equals_prefixed() -> None:
    default = (f'<Envelope xmlns="{SOAP11}"><Header/><Body><getPersonResponse xmlns="{NS}"><navn><fornavn>Åse'
               "</fornavn><etternavn>Li</etternavn></navn><kjonn>K</kjonn></getPersonResponse></Body></Envelope>")
    assert compare_xml(doc(PERSON), default.encode()).outcome is Outcome.IDENTICAL


def test_whitespace_only_text_is_ignored_but_values_are_not() -> None:
    pretty = doc(PERSON.replace("><", ">\n    <"))
    assert compare_xml(doc(PERSON), pretty).outcome is Outcome.IDENTICAL
    padded = compare_xml(doc(PERSON), doc(PERSON.replace(">Li<", "> Li<")))
    assert padded.outcome is Outcome.DIFFERS


def test_a_changed_value_is_named_with_path_expected_and_actual() -> None:
    result = compare_xml(doc(PERSON), doc(PERSON.replace("Åse", "Aase")))
    assert result.outcome is Outcome.DIFFERS
    assert [str(d) for d in result.differences] == [
        "/Envelope/Body/getPersonResponse/navn/fornavn: expected 'Åse' got 'Aase'"]


def test_element_order_is_reported_once_at_the_parent() -> None:
    swapped = PERSON.replace("<p:fornavn>Åse</p:fornavn><p:etternavn>Li</p:etternavn>",
                             "<p:etternavn>Li</p:etternavn><p:fornavn>Åse</p:fornavn>")
    result = compare_xml(doc(PERSON), doc(swapped))
    assert result.outcome is Outcome.DIFFERS
    assert [str(d) for d in result.differences] == [
        "/Envelope/Body/getPersonResponse/navn: element order differs: expected fornavn, etternavn got etternavn, "
        "fornavn"]


def test_missing_and_unexpected_elements() -> None:
    result = compare_xml(doc(PERSON), doc(PERSON.replace("<p:kjonn>K</p:kjonn>", "<p:status>x</p:status>")))
    text = result.diff_text()
    assert "/Envelope/Body/getPersonResponse/kjonn: missing element (value 'K')" in text
    assert "/Envelope/Body/getPersonResponse/status: unexpected element (value 'x')" in text


def test_attributes_compare_by_namespace_not_prefix_and_order() -> None:
    a = doc('<p:x xmlns:i="http://www.w3.org/2001/XMLSchema-instance" i:nil="true" b="2" a="1"/>')
    b = doc('<p:x a="1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" b="2" xsi:nil="true"/>')
    assert compare_xml(a, b).outcome is Outcome.IDENTICAL
    c = doc('<p:x a="1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" b="3" xsi:nil="true"/>')
    assert [str(d) for d in compare_xml(a, c).differences] == ["/Envelope/Body/x/@b: expected '2' got '3'"]


def test_qname_values_compare_by_namespace() -> None:
    fault = "<s:Fault><faultcode>{p}:Client.NotFound</faultcode></s:Fault>"
    a = doc(fault.format(p="s"))
    b = doc(fault.format(p="soap11env").replace("<s:Fault>", f'<s:Fault xmlns:soap11env="{SOAP11}">'))
    assert compare_xml(a, b).outcome is Outcome.IDENTICAL


def test_ignore_rules_apply_to_both_sides_including_presence() -> None:
    a = doc(PERSON, header="<a:MessageID>urn:uuid:1</a:MessageID><a:RelatesTo>urn:uuid:9</a:RelatesTo>")
    b = doc(PERSON, header="<a:RelatesTo>urn:uuid:8</a:RelatesTo>")
    result = compare_xml(a, b)
    assert result.outcome is Outcome.EQUAL_AFTER_IGNORES and result.ignored == 2
    strict = compare_xml(a, b, ignore=[])
    assert strict.outcome is Outcome.DIFFERS
    assert "/Envelope/Header/RelatesTo: expected 'urn:uuid:9' got 'urn:uuid:8'" in strict.diff_text()


def test_custom_ignore_rules_with_own_prefixes_attributes_and_text() -> None:
    a = doc('<p:x stamp="1"><p:t>10:00</p:t><p:v>1</p:v></p:x>')
    b = doc('<p:x stamp="2"><p:t>11:00</p:t><p:v>1</p:v></p:x>')
    rules = ["//q:x/@stamp", "//q:t/text()"]
    assert compare_xml(a, b, ignore=rules, namespaces={"q": NS}).outcome is Outcome.EQUAL_AFTER_IGNORES
    assert compare_xml(a, b, ignore=rules[:1], namespaces={"q": NS}).outcome is Outcome.DIFFERS


def test_ping_time_is_ignored_by_default() -> None:
    ping = "<p:pingResponse><p:status>OK</p:status><p:tidspunkt>{}</p:tidspunkt></p:pingResponse>"
    result = compare_xml(doc(ping.format("2026-01-01T00:00:00Z")), doc(ping.format("2026-11-20T08:00:00Z")))
    assert result.outcome is Outcome.EQUAL_AFTER_IGNORES


def test_dtds_and_entities_are_never_parsed() -> None:
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    result = compare_xml(doc(PERSON), xxe)
    assert result.outcome is Outcome.DIFFERS and "DTD or entity" in result.diff_text()
    assert "root:" not in result.diff_text()
    assert compare_xml(xxe, doc(PERSON)).outcome is Outcome.ERROR


def test_malformed_answer_differs() -> None:
    result = compare_xml(doc(PERSON), b"<html><body>502 Bad Gateway")
    assert result.outcome is Outcome.DIFFERS and "not usable XML" in result.diff_text()


def test_repeated_siblings_are_indexed() -> None:
    a = doc("<p:r><p:n>1</p:n><p:n>2</p:n></p:r>")
    b = doc("<p:r><p:n>1</p:n><p:n>3</p:n></p:r>")
    assert [str(d) for d in compare_xml(a, b).differences] == ["/Envelope/Body/r/n[2]: expected '2' got '3'"]
