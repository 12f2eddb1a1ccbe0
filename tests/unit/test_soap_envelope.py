"""server.soap.envelope: the pure envelope checks, on parsed envelopes of both SOAP versions."""

from __future__ import annotations

import pytest
from lxml import etree

from server.soap.envelope import envelope_problem

ENV = {"1.1": "http://schemas.xmlsoap.org/soap/envelope/", "1.2": "http://www.w3.org/2003/05/soap-envelope"}
OP = '<p:op xmlns:p="urn:op"/>'


def check(version: str, inner: str, understood: tuple[str, ...] = ()) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    root = etree.fromstring(f'<e:Envelope xmlns:e="{ENV[version]}">{inner}</e:Envelope>')
    problem = envelope_problem(root, version, understood)  # type: ignore[arg-type]
    return ("", "", ()) if problem is None else (problem.code, problem.reason, problem.not_understood)


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_plain_envelope_passes(version: str) -> None:
    assert check(version, f"<e:Body>{OP}</e:Body>") == ("", "", ())
    assert check(version, f"<!-- c --><e:Header/><e:Body><!-- c -->{OP}</e:Body>") == ("", "", ())


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize(("inner", "reason"), [
    ("<e:Body/>", "empty Body"),
    (f"<e:Body>{OP}</e:Body><e:Body>{OP}</e:Body>", "two Bodies"),
    (f"<e:Body>{OP}{OP}</e:Body>", "several Body elements"),
    ("", "no Body"),
    (f"<e:Body>{OP}</e:Body><e:Header/>", "misplaced Header"),
    (f"<e:Fault/><e:Body>{OP}</e:Body>", "unknown envelope element"),
    (f'<x:Before xmlns:x="urn:x"/><e:Body>{OP}</e:Body>', "element outside Header and Body"),
])
def test_structure_problems(version: str, inner: str, reason: str) -> None:
    assert check(version, inner)[:2] == ("Client.InvalidRequest", reason)


def test_qualified_elements_after_the_body_are_soap11_only() -> None:
    inner = f'<e:Body>{OP}</e:Body><x:After xmlns:x="urn:x"/>'
    assert check("1.1", inner) == ("", "", ())
    assert check("1.2", inner)[1] == "element outside Header and Body"


@pytest.mark.parametrize(("version", "attributes", "refused"), [
    ("1.1", 'e:mustUnderstand="1"', True),
    ("1.1", 'e:mustUnderstand="1" e:actor="http://schemas.xmlsoap.org/soap/actor/next"', True),
    ("1.1", 'e:mustUnderstand="1" e:actor="urn:elsewhere"', False),
    ("1.1", 'e:mustUnderstand="0"', False),
    ("1.1", 'mustUnderstand="1"', False),  # unqualified: not the SOAP attribute
    ("1.2", 'e:mustUnderstand="true"', True),
    ("1.2", 'e:mustUnderstand="1" e:role="http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver"', True),
    ("1.2", 'e:mustUnderstand="1" e:role="http://www.w3.org/2003/05/soap-envelope/role/next"', True),
    ("1.2", 'e:mustUnderstand="1" e:role="http://www.w3.org/2003/05/soap-envelope/role/none"', False),
    ("1.2", 'e:mustUnderstand="false"', False),
])
def test_must_understand_is_judged_per_version_and_target(version: str, attributes: str, refused: bool) -> None:
    inner = f'<e:Header><h:Block xmlns:h="urn:h" {attributes}/></e:Header><e:Body>{OP}</e:Body>'
    expected = ("MustUnderstand", "mustUnderstand header not understood", (("urn:h", "Block"),))
    assert check(version, inner) == (expected if refused else ("", "", ()))


def test_understood_blocks_by_name_or_namespace_pass() -> None:
    inner = ('<e:Header><h:A xmlns:h="urn:h" e:mustUnderstand="1"/><h:B xmlns:h="urn:h" e:mustUnderstand="1"/>'
             f'<g:C xmlns:g="urn:g" e:mustUnderstand="1"/></e:Header><e:Body>{OP}</e:Body>')
    assert check("1.2", inner, ("{urn:h}A", "{urn:g}*"))[2] == (("urn:h", "B"),)
    assert check("1.2", inner, ("{urn:h}*", "{urn:g}*")) == ("", "", ())
    assert check("1.2", inner)[2] == (("urn:h", "A"), ("urn:h", "B"), ("urn:g", "C"))
