"""docs/preg.md shows a real request and answer for every PREG operation: this test makes them.

Each example is one raw POST to a real server on a loopback socket (SQLite store, the fixed synthetic
persons of tests/integration/preg_support.py), pretty-printed. Values that change from run to run (the time
in ``ping``, the felles hjelpenummer allocated) are replaced by fixed example values. The rendered section
between ``<!-- examples:start -->`` and ``<!-- examples:end -->`` must equal what docs/preg.md holds; run
with ``PREGBRIDGE_REGEN_DOCS=1`` to rewrite that section instead.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from lxml import etree

from store import identity
from tests.integration.preg_support import (
    ACCOUNTS,
    CT11,
    CT12,
    DOCS_END,
    DOCS_START,
    NS,
    PASSWORD,
    REPO,
    SPYNE_WARNINGS,
    Population,
    PregServer,
    body_child,
    check_docs_section,
    fault_of,
    running_preg,
)

pytestmark = [pytest.mark.filterwarnings(spec) for spec in SPYNE_WARNINGS]

DOC = REPO / "docs" / "preg.md"
START, END = DOCS_START, DOCS_END
EXAMPLE_TIME = "2026-11-23T08:30:00+00:00"
FH_SLOT = "{hjelpenummer}"
EXAMPLE_FH = identity.generate(identity.IdKind.FH, None, random.Random(1))
PRETTY = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True, load_dtd=False)


@pytest.fixture(scope="module")
def preg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PregServer]:
    work = tmp_path_factory.mktemp("docs")
    with running_preg(f"sqlite:///{work / 'store.sqlite'}", work) as srv:
        yield srv


@dataclass(frozen=True)
class Example:
    heading: str
    operation: str
    body: str  # the request element, ``p:`` bound to the PREG namespace
    text: str  # what the example shows, one or two sentences of Markdown
    profile: str = "full"
    version: str = "1.1"
    fault: str | None = None  # the fault code the example must answer with


def examples(pop: Population, fh: str) -> list[Example]:
    def one(op: str, number: str, element: str = "personnummer") -> str:
        return f"<p:{op}><p:{element}>{number}</p:{element}></p:{op}>"

    return [
        Example("ping", "ping", "<p:ping/>", "Is the service up? Authenticated like every call."),
        Example("getPerson", "getPerson", one("getPerson", pop.replaced_dnr),
                "Asked by a ceased D-nummer: `erGjeldendeNummer` is false and `person/personnummer` is the "
                "fødselsnummer that replaced it; `identifikatorer` lists both."),
        Example("getPersons", "getPersons",
                "<p:getPersons>" + "".join(f"<p:personnummer>{n}</p:personnummer>"
                                           for n in (pop.ordinary, pop.unknown, "12345678901")) + "</p:getPersons>",
                "Up to 100 numbers in one call; each gets an `oppslag` with status `FUNNET`, `IKKE_FUNNET` or "
                "`UGYLDIG` (with the reason in `melding`), in the order asked. Here as the `basis` profile: the "
                "elements it may not see (`sivilstand`, `statsborgerskap`, `spesregKode`, `relasjoner`) are "
                "present and empty.", profile="basis"),
        Example("getAdresses", "getAdresses", one("getAdresses", pop.klient),
                "The current addresses. Here a klientadresse asked for by an account with the `utenHjemmel` "
                "profile: the address comes back with the placeholder text, DSF code 4 and every content "
                "element empty (the kommune is kept). The person-level `spesregKode` is empty because this "
                "profile does not see the protection element.", profile="utenHjemmel"),
        Example("searchPerson", "searchPerson",
                "<p:searchPerson><p:navn>Åse Ødegård</p:navn><p:fodselsaar>1962</p:fodselsaar></p:searchPerson>",
                "Name plus birth year; the hits come ranked by `score` (0–100), best first."),
        Example("getPersonHistory", "getPersonHistory", one("getPersonHistory", pop.history),
                "Every item of the person's identifiers, names, addresses, status and marital status, current "
                "and historic, each with its `historikk`."),
        Example("requestHjelpenummer", "requestHjelpenummer",
                "<p:requestHjelpenummer><p:fornavn>Ukjent</p:fornavn><p:etternavn>Pasient</p:etternavn>"
                "<p:kjonn>K</p:kjonn><p:fodselsdato>1950-01-01</p:fodselsdato><p:adresse>"
                "<p:gatenavn>Ukjentveien</p:gatenavn><p:husnummer>2</p:husnummer><p:postnummer>0150</p:postnummer>"
                "<p:poststed>OSLO</p:poststed></p:adresse></p:requestHjelpenummer>",
                "A new felles hjelpenummer for a person without a number. The same request again (after "
                "normalisation of case, spacing and spelling) answers the same number with `nyttNummer` false."),
        Example("getHjelpenummer", "getHjelpenummer", one("getHjelpenummer", fh, "hjelpenummer"),
                "The person behind a felles hjelpenummer; `erAktivt` is false once it has been linked."),
        Example("linkHjelpenummer", "linkHjelpenummer",
                f"<p:linkHjelpenummer><p:hjelpenummer>{fh}</p:hjelpenummer><p:personnummer>{pop.link_targets[0]}"
                "</p:personnummer></p:linkHjelpenummer>",
                "The person with the hjelpenummer has been identified: from now on the hjelpenummer (ceased) "
                "resolves to the identified person, whose current number answers."),
        Example("getChanges", "getChanges",
                f"<p:getChanges><p:fraSekvensnummer>0</p:fraSekvensnummer><p:personnummer>{pop.ordinary}"
                f"</p:personnummer><p:personnummer>{pop.replaced_dnr}</p:personnummer>"
                "<p:sideStorrelse>1</p:sideStorrelse></p:getChanges>",
                "Which of these persons changed after sequence number 0, one change per page: ask again from "
                "`nesteSekvensnummer` while `flereEndringer` is true."),
        Example("A fault (SOAP 1.1)", "getPerson", one("getPerson", pop.unknown),
                "A well-formed number nobody has: `Client.NotFound` as a SOAP 1.1 `faultcode`.",
                fault="Client.NotFound"),
        Example("The same fault (SOAP 1.2)", "getPerson", one("getPerson", pop.unknown),
                "Over SOAP 1.2 (`application/soap+xml`) the code is `Sender` with the subcode `NotFound`.",
                version="1.2", fault="Client.NotFound"),
    ]


def pretty(xml: bytes) -> str:
    text: str = etree.tostring(etree.fromstring(xml, PRETTY), pretty_print=True, encoding="unicode")
    return text.rstrip()


def request_envelope(version: str, body: str) -> bytes:
    """The request as the docs show it: ``soap`` and ``preg`` prefixes."""
    env = "http://schemas.xmlsoap.org/soap/envelope/" if version == "1.1" else "http://www.w3.org/2003/05/soap-envelope"
    body = body.replace("<p:", "<preg:").replace("</p:", "</preg:")
    return (f'<soap:Envelope xmlns:soap="{env}" xmlns:preg="{NS}"><soap:Header/><soap:Body>{body}</soap:Body>'
            "</soap:Envelope>").encode()


def render(preg: PregServer) -> str:
    """The examples section: every example called for real, pretty-printed, volatile values replaced."""
    allocated: list[str] = []
    parts = [START, ""]
    for ex in examples(preg.pop, FH_SLOT):
        request = request_envelope(ex.version, ex.body.replace(FH_SLOT, allocated[0] if allocated else FH_SLOT))
        content_type = CT11 if ex.version == "1.1" else CT12
        soap_action = {"SOAPAction": f'"{ex.operation}"'} if ex.version == "1.1" else {}
        answer = preg.post(request, content_type, auth=(ACCOUNTS[ex.profile], PASSWORD), headers=soap_action)
        root = answer.xml()
        if ex.fault:
            assert fault_of(root)[1] == ex.fault, answer.body[:400]
        else:
            assert answer.status == 200, answer.body[:400]
            child = body_child(root)
            assert child.tag == f"{{{NS}}}{ex.operation}Response"
            if ex.operation == "ping":
                when = child.find(f"{{{NS}}}tidspunkt")
                assert when is not None and when.text
                when.text = EXAMPLE_TIME
            if ex.operation == "requestHjelpenummer":
                allocated.append(child.findtext(f"{{{NS}}}hjelpenummer") or "")
        sent, got = pretty(request), pretty(etree.tostring(root))
        for number in allocated:
            sent, got = sent.replace(number, EXAMPLE_FH), got.replace(number, EXAMPLE_FH)
        headers = ", ".join(f"`{k}: {v}`" for k, v in {"Content-Type": content_type, **soap_action}.items())
        parts += [f"### {ex.heading}", "", ex.text, "",
                  f"Request (SOAP {ex.version}; {headers}; an account with the `{ex.profile}` profile):", "",
                  "```xml", sent, "```", "", "Answer:", "", "```xml", got, "```", ""]
    parts.append(END)
    return "\n".join(parts)


def test_docs_show_a_real_example_of_every_operation(preg: PregServer) -> None:
    section = render(preg)
    assert answered_operations(section) == {"ping", "getPerson", "getPersons", "getAdresses", "searchPerson",
                                             "getPersonHistory", "requestHjelpenummer", "getHjelpenummer",
                                             "linkHjelpenummer", "getChanges"}
    check_docs_section(DOC, section)


def answered_operations(section: str) -> set[str]:
    return set(re.findall(r"<tns:(\w+)Response\b", section))
