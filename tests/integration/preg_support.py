"""Shared machinery of the PREG SOAP tests: a handcrafted store, accounts, a real server on a loopback socket.

The test modules (tests/integration/test_preg_*.py, tests/contract/test_preg_contract.py) declare their own
module-scoped fixtures around :func:`running_preg`, so one server per module and backend serves every
test of that module.

- :func:`backend_url` gives a module-lived database URL: a SQLite file, or a fresh schema on the
  PostgreSQL server of tests/conftest.py (skipped where none answers, failing under
  ``PREGBRIDGE_TEST_PG_REQUIRED=1``), dropped afterwards.
- :func:`populate` stores the handcrafted persons of :class:`Population` with
  ``PersonRepository.save(from_document(...))`` and ingests a small change feed (store.feed.ingest). The
  identity numbers are synthetic and drawn from a fixed seed, so every build of the store is the same
  (docs/preg.md's examples depend on it).
- :func:`running_preg` builds the components from :class:`server.config.Settings` (audit ``sync``, so
  tests read audit rows at once; a profiles file adding ``lookupOnly``), adds one account per profile
  and a PasswordDigest account, and serves ``components.app`` with wsgiref on ``127.0.0.1:0`` from a
  daemon thread.

argon2 runs with cheap parameters here (``time_cost=1``, 1 MiB), as in tests/integration/test_access.py:
with the library's defaults every account added and every failed login costs about half a second on the
test machines, which the suite's time budget cannot carry. The hash is still argon2id, verified for real.

spyne 2.14 on Python 3.11 raises import-time warnings (its vendored six, and ``cgi``), filtered per module
by :data:`SPYNE_WARNINGS` (the same two as tests/integration/test_soap_middleware.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import http.client
import json
import logging
import os
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
import zeep
from argon2 import PasswordHasher
from lxml import etree
from sqlalchemy import Engine
from zeep.plugins import HistoryPlugin, Plugin
from zeep.transports import Transport

import server.access.accounts as accounts_module
from adapters.preg import DEFAULT_NAMESPACE
from server.access import AccessSettings
from server.bootstrap import Components, build_components
from server.config import FilematchSettings, PregSettings, Settings, StoreSettings
from server.soap.middleware import SPYNE_BODY_LOGGERS
from store import identity
from store.document import from_document
from store.feed import ingest
from store.repository import PersonRepository
from tests.conftest import pg_schema_url
from tests.factories import meta, person_doc

__all__ = [
    "ACCOUNTS",
    "BINDINGS",
    "CT11",
    "CT12",
    "DIGEST_USER",
    "NS",
    "PASSWORD",
    "PATH",
    "REPO",
    "SPYNE_WARNINGS",
    "VERSIONS",
    "Caller",
    "Population",
    "PregServer",
    "Raw",
    "backend_url",
    "body_child",
    "envelope",
    "fault_of",
    "populate",
    "running_preg",
    "zeep_fault_code",
]

SPYNE_WARNINGS = (
    r"ignore:_SixMetaPathImporter\.(find_spec|exec_module)\(\) not found:ImportWarning",
    r"ignore:'cgi' is deprecated and slated for removal in Python 3\.13:DeprecationWarning",
)

REPO = Path(__file__).resolve().parents[2]
NS = DEFAULT_NAMESPACE
PATH = "/preg/v1/Personregister"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
ENV = {"1.1": SOAP11_ENV, "1.2": SOAP12_ENV}
CT11 = "text/xml; charset=utf-8"
CT12 = "application/soap+xml; charset=utf-8"
CONTENT_TYPE = {"1.1": CT11, "1.2": CT12}
VERSIONS = ("1.1", "1.2")
BINDINGS = {"1.1": f"{{{NS}}}PersonregisterSoap11", "1.2": f"{{{NS}}}PersonregisterSoap12"}
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

PASSWORD = "correct horse battery staple"
ACCOUNTS = {"full": "epj-full", "basis": "epj-basis", "utenHjemmel": "epj-uten", "lookupOnly": "epj-oppslag"}
DIGEST_USER = "epj-digest"
PROFILES_TOML = """\
[profiles.lookupOnly]
operations = ["getPerson", "ping"]
elements = ["identifiers", "name", "birth"]
max_protection = "ugradert"
"""

# -- the handcrafted persons ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Population:
    """The identity numbers of the stored persons, by role. All synthetic (Skatteetaten's month + 80)."""

    ordinary: str  # Kari Nordmann, ugradert bosted in Oslo
    replaced_dnr: str  # Ahmed Karimi's old D-nummer, opphoert ...
    replaced_fnr: str  # ... replaced by this fødselsnummer
    klient: str  # klientadresse
    fortrolig: str  # fortrolig
    strengt: str  # strengtFortrolig, only a post address
    history: str  # Per Haugen: name, address and marital history, relations
    child: str  # Per Haugen's child (not stored: a relation's number only)
    dnr: str  # a D-nummer holder (midlertidig)
    family: tuple[str, ...]  # four Fjellheims born in 1975
    nordic: str  # Åse Ødegård (æøå search)
    obrien: str  # Siobhan O'Brien (an apostrophe in the stored name)
    link_targets: tuple[str, str]  # one per SOAP version, for linkHjelpenummer
    unknown: str  # valid, never stored

    @property
    def link_target(self) -> Mapping[str, str]:
        return dict(zip(VERSIONS, self.link_targets, strict=True))


def _ident(number: str, kind: str, *, ceased: bool = False, valid_to: str | None = None) -> dict[str, Any]:
    return {"number": number, "kind": kind, "status": "opphoert" if ceased else "iBruk",
            **meta(not ceased, "2000-01-01", valid_to)}


def _address(*, street: str | None, house: int | None, postnummer: str, poststed: str, kommune: str | None,
             protection: str = "ugradert", type_: str = "bosted", form: str = "vegadresse",
             lines: Sequence[str] = (), current: bool = True, valid_from: str = "2015-06-01",
             valid_to: str | None = None, bydel: str | None = None) -> dict[str, Any]:
    return {"type": type_, "form": form, "street": street, "houseNumber": house, "houseLetter": None,
            "unit": None, "co": None, "gardsnummer": None, "bruksnummer": None, "festenummer": None,
            "lines": list(lines), "country": None, "postnummer": postnummer, "poststed": poststed,
            "kommune": kommune, "bydel": bydel, "protection": protection, "movedAt": valid_from,
            **meta(current, valid_from, valid_to)}


def _numbers() -> dict[str, Any]:
    rng = random.Random(20261121)  # a fresh generator each time: the same numbers in every store

    def gen(kind: str, born: str, female: bool | None = None) -> str:
        return identity.generate(identity.IdKind(kind), dt.date.fromisoformat(born), rng, female=female)

    return {
        "ordinary": gen("fnr", "1980-05-17", True),
        "replaced_dnr": gen("dnr", "1990-03-12", False),
        "replaced_fnr": gen("fnr", "1990-03-12", False),
        "klient": gen("fnr", "1972-08-30", True),
        "fortrolig": gen("fnr", "1968-01-25", False),
        "strengt": gen("fnr", "1995-12-01", True),
        "history": gen("fnr", "1955-04-04", False),
        "child": gen("fnr", "1985-09-09", True),
        "dnr": gen("dnr", "1999-07-21", True),
        "family": tuple(gen("fnr", born) for born in ("1975-02-01", "1975-03-02", "1975-04-03", "1975-05-04")),
        "nordic": gen("fnr", "1962-11-02", True),
        "obrien": gen("fnr", "1985-07-07", True),
        "link_targets": (gen("fnr", "1970-10-10", False), gen("fnr", "1970-10-11", True)),
        "unknown": gen("fnr", "1944-06-06", False),
    }


def population_documents() -> tuple[Population, list[dict[str, Any]]]:
    """The population and the person documents that store it (the same every time)."""
    n = _numbers()
    pop = Population(**n)
    docs = [
        person_doc("p-ordinary", given="Kari", family="Nordmann", born="1980-05-17", gender="kvinne",
                   identifiers=[_ident(pop.ordinary, "fnr")]),
        person_doc("p-replaced", given="Ahmed", family="Karimi", born="1990-03-12",
                   identifiers=[_ident(pop.replaced_dnr, "dnr", ceased=True, valid_to="2019-01-01"),
                                _ident(pop.replaced_fnr, "fnr")]),
        person_doc("p-klient", given="Klara", family="Lia", born="1972-08-30", gender="kvinne", street="Kirkeveien",
                   house=12, protection="klientadresse", identifiers=[_ident(pop.klient, "fnr")]),
        person_doc("p-fortrolig", given="Frode", family="Lunde", born="1968-01-25", street="Bakkegata", house=3,
                   protection="fortrolig", identifiers=[_ident(pop.fortrolig, "fnr")]),
        person_doc("p-strengt", given="Siri", family="Dahl", born="1995-12-01", gender="kvinne",
                   protection="strengtFortrolig", identifiers=[_ident(pop.strengt, "fnr")],
                   addresses=[_address(street=None, house=None, postnummer="0105", poststed="OSLO", kommune="0301",
                                       protection="strengtFortrolig", type_="post", form="postboks",
                                       lines=["Postboks 6000"])]),
        person_doc(
            "p-history", given="Per", family="Haugen", born="1955-04-04", identifiers=[_ident(pop.history, "fnr")],
            names=[{"given": "Per", "middle": None, "family": "Olsen", **meta(False, "1955-04-04", "1979-06-30")},
                   {"given": "Per", "middle": None, "family": "Haugen", **meta(True, "1979-06-30")}],
            addresses=[_address(street="Elvegata", house=7, postnummer="5003", poststed="BERGEN", kommune="4601",
                                current=False, valid_from="1979-06-30", valid_to="2015-06-01"),
                       _address(street="Storgata", house=1, postnummer="0150", poststed="OSLO", kommune="0301",
                                bydel="030101")],
            maritalStatus=[{"value": "ugift", "spouse": None, "date": None, **meta(False, "1955-04-04", "1979-06-30")},
                           {"value": "gift", "spouse": pop.ordinary, "date": "1979-06-30", **meta(True, "1979-06-30")}],
            relations=[{"relatedNumber": pop.ordinary, "relatedRole": "ektefelleEllerPartner",
                        "myRole": "ektefelleEllerPartner", **meta()},
                       {"relatedNumber": pop.child, "relatedRole": "barn", "myRole": "far", **meta()}]),
        person_doc("p-dnr", given="Marta", family="Kowalska", born="1999-07-21", gender="kvinne", status="midlertidig",
                   street="Sjøgata", house=21, kommune="1804", postnummer="8006",
                   identifiers=[_ident(pop.dnr, "dnr")]),
        *(person_doc(f"p-fjellheim-{i}", given=given, family="Fjellheim", born=born, kommune="3401",
                     postnummer="2211", street="Fjellvegen", house=i + 1, identifiers=[_ident(number, "fnr")])
          for i, (given, born, number) in enumerate(zip(("Anders", "Bjørn", "Cato", "Dag"),
                                                        ("1975-02-01", "1975-03-02", "1975-04-03", "1975-05-04"),
                                                        pop.family, strict=True))),
        person_doc("p-nordic", given="Åse", family="Ødegård", born="1962-11-02", gender="kvinne",
                   street="Æbleveien", house=5, kommune="5001", postnummer="7010",
                   identifiers=[_ident(pop.nordic, "fnr")]),
        person_doc("p-obrien", given="Siobhan", family="O'Brien", born="1985-07-07", gender="kvinne",
                   identifiers=[_ident(pop.obrien, "fnr")]),
        person_doc("p-link-11", given="Lars", family="Lenkesen", born="1970-10-10",
                   identifiers=[_ident(pop.link_targets[0], "fnr")]),
        person_doc("p-link-12", given="Lise", family="Lenkesen", born="1970-10-11", gender="kvinne",
                   identifiers=[_ident(pop.link_targets[1], "fnr")]),
    ]
    poststed = {"p-dnr": "BODØ", "p-nordic": "TRONDHEIM", **{f"p-fjellheim-{i}": "KONGSVINGER" for i in range(4)}}
    for doc in docs:  # person_doc writes OSLO everywhere
        doc["addresses"][-1]["poststed"] = poststed.get(doc["personId"], doc["addresses"][-1]["poststed"])
    return pop, docs


def feed_events(docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Four change-feed events: Kari Nordmann, Ahmed Karimi, Per Haugen, then a Fjellheim (asked by no test)."""
    by_key = {d["personId"]: d for d in docs}
    kinds = (("p-ordinary", "endringIBostedsadresse"), ("p-replaced", "endringIIdentifikasjonsnummer"),
             ("p-history", "endringISivilstand"), ("p-fjellheim-0", "endringINavn"))
    return [{"sequenceNumber": seq, "eventType": kind, "personId": key,
             "registeredAt": f"2026-11-21T0{seq + 5}:00:00Z", "person": by_key[key]}
            for seq, (key, kind) in enumerate(kinds, start=1)]


def populate(engine: Engine, work_dir: Path) -> Population:
    """Store the population, then ingest its change feed (feed sequence numbers 1–4)."""
    pop, docs = population_documents()
    with engine.begin() as conn:
        repo = PersonRepository(conn)
        for doc in docs:
            repo.save(from_document(doc))
    feed = work_dir / "feed" / "0001.jsonl"
    feed.parent.mkdir(parents=True, exist_ok=True)
    feed.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in feed_events(docs)), encoding="utf-8")
    summary = ingest(engine, feed.parent)
    assert (summary.applied, summary.rejected) == (4, 0), summary
    return pop


# -- databases --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def backend_url(backend: str, work_dir: Path) -> Iterator[str]:
    """A database URL that lives as long as the block: a SQLite file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{work_dir / 'store.sqlite'}"
        return
    with pg_schema_url() as url:
        yield url


# -- raw HTTP and XML helpers -----------------------------------------------------------------------------


def envelope(version: str, body: str, header: str = "") -> bytes:
    """A SOAP envelope of ``version`` around ``body`` (XML text; ``p:`` is bound to the PREG namespace)."""
    head = f"<e:Header>{header}</e:Header>" if header else ""
    return (f'<?xml version="1.0" encoding="UTF-8"?><e:Envelope xmlns:e="{ENV[version]}" xmlns:p="{NS}">'
            f"{head}<e:Body>{body}</e:Body></e:Envelope>").encode()


@dataclass
class Raw:
    """One raw HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def xml(self) -> etree._Element:
        return etree.fromstring(self.body, PARSER)


def body_child(root: etree._Element) -> etree._Element:
    """The first element in the SOAP Body of an envelope (1.1 or 1.2)."""
    for env in ENV.values():
        body = root.find(f"{{{env}}}Body")
        if body is not None:
            return body[0]
    raise AssertionError(f"no SOAP Body in {etree.tostring(root)[:200]!r}")


def fault_of(root: etree._Element) -> tuple[str, str, str]:
    """(SOAP version, dotted fault code, message) of a fault envelope: ``Client.NotFound`` in both versions
    (SOAP 1.2 ``Sender`` + Subcode ``NotFound`` is read back as ``Client.NotFound``)."""
    fault = body_child(root)
    if fault.tag == f"{{{SOAP11_ENV}}}Fault":
        code = fault.findtext("faultcode") or ""
        prefix, _, dotted = code.partition(":")
        assert prefix == "soap11env", code
        return "1.1", dotted, fault.findtext("faultstring") or ""
    assert fault.tag == f"{{{SOAP12_ENV}}}Fault", fault.tag
    q = f"{{{SOAP12_ENV}}}"
    code_el = fault.find(f"{q}Code")
    assert code_el is not None
    value = code_el.findtext(f"{q}Value") or ""
    prefix, _, top = value.partition(":")
    assert prefix == "soap12env", value
    parts = [{"Sender": "Client", "Receiver": "Server"}.get(top, top)]
    sub = code_el.find(f"{q}Subcode")
    while sub is not None:
        parts.append(sub.findtext(f"{q}Value") or "")
        sub = sub.find(f"{q}Subcode")
    return "1.2", ".".join(parts), fault.findtext(f"{q}Reason/{q}Text") or ""


def zeep_fault_code(fault: zeep.exceptions.Fault) -> str:
    """The dotted fault code zeep read, in SOAP 1.1 terms (``soap12env:Sender`` + ``NotFound`` →
    ``Client.NotFound``), for assertions shared by both versions."""
    code = fault.code or ""
    top = code.split(":", 1)[-1]
    if not fault.subcodes:
        return top
    return ".".join([{"Sender": "Client", "Receiver": "Server"}.get(top, top),
                     *(q.localname for q in fault.subcodes)])


# -- zeep ------------------------------------------------------------------------------------------------


class SchemaCheck(Plugin):  # type: ignore[misc]
    """A zeep plugin validating every answer's Body content (faults excepted) against xsd/preg.xsd."""

    def __init__(self, schema: etree.XMLSchema, errors: list[str], seen: list[str]) -> None:
        self.schema, self.errors, self.seen = schema, errors, seen

    def ingress(self, envelope: etree._Element, http_headers: Any, operation: Any) -> tuple[Any, Any]:
        child = body_child(envelope)
        if etree.QName(child).localname != "Fault":
            self.seen.append(etree.QName(child).localname)
            if not self.schema.validate(child):
                self.errors.append(f"{etree.QName(child).localname}: {self.schema.error_log.last_error}")
        return envelope, http_headers


@dataclass
class Caller:
    """A zeep client of one account: ``service(version)`` is the SOAP 1.1 or 1.2 port, ``history`` the last
    exchange."""

    client: zeep.Client
    history: HistoryPlugin
    url: str
    session: requests.Session

    def service(self, version: str) -> Any:
        return self.client.create_service(BINDINGS[version], self.url)

    def last_answer(self) -> etree._Element:
        """The Body content of the last answer received."""
        last = self.history.last_received
        assert last is not None, "nothing received yet"
        return body_child(last["envelope"])


@functools.cache
def contract_schema() -> etree.XMLSchema:
    """xsd/preg.xsd from the checkout, compiled."""
    return etree.XMLSchema(etree.parse(str(REPO / "xsd" / "preg.xsd"), PARSER))


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@dataclass
class PregServer:
    """A running PREG server: its components, address, store population and clients."""

    components: Components
    settings: Settings
    port: int
    population: Population | None
    work_dir: Path
    schema_errors: list[str] = field(default_factory=list)
    validated: list[str] = field(default_factory=list)
    _callers: dict[tuple[str, str], Caller] = field(default_factory=dict)
    _sessions: list[requests.Session] = field(default_factory=list)

    @property
    def engine(self) -> Engine:
        return self.components.engine

    @property
    def pop(self) -> Population:
        assert self.population is not None
        return self.population

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.settings.preg.path}"

    @property
    def wsdl_url(self) -> str:
        return self.url + "?wsdl"

    def caller(self, username: str | None = ACCOUNTS["full"], password: str = PASSWORD, *,
               wsse: Any = None, key: str | None = None) -> Caller:
        """A zeep client built from the served WSDL, authenticating with HTTP Basic as ``username`` (None:
        no credentials), or with ``wsse`` (a zeep.wsse object) instead. Cached per ``key`` (default: the
        username and password) unless a wsse is given without a key."""
        cache_key = (key or f"{username}", password)
        if (wsse is None or key is not None) and cache_key in self._callers:
            return self._callers[cache_key]
        session = requests.Session()
        self._sessions.append(session)
        if username is not None and wsse is None:
            session.auth = (username, password)
        history = HistoryPlugin(maxlen=4)
        plugins = [history, SchemaCheck(contract_schema(), self.schema_errors, self.validated)]
        client = zeep.Client(self.wsdl_url, transport=Transport(session=session, timeout=30), plugins=plugins,
                             wsse=wsse)
        caller = Caller(client, history, self.url, session)
        if wsse is None or key is not None:
            self._callers[cache_key] = caller
        return caller

    def post(self, body: bytes, content_type: str | None = CT11, *, auth: tuple[str, str] | None = None,
             headers: Mapping[str, str] | None = None, source: str | None = None) -> Raw:
        """A raw POST to the endpoint (``auth`` defaults to the full account; ``source`` binds the client
        side to another loopback address)."""
        auth = auth or (ACCOUNTS["full"], PASSWORD)
        sent = {"Authorization": "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()}
        if content_type is not None:
            sent["Content-Type"] = content_type
        sent.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60,
                                          source_address=(source, 0) if source else None)
        try:
            conn.request("POST", self.settings.preg.path, body=body, headers=sent)
            resp = conn.getresponse()
            return Raw(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, query: str) -> Raw:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", f"{self.settings.preg.path}?{query}")
            resp = conn.getresponse()
            return Raw(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def call(self, version: str, body: str, header: str = "", **kw: Any) -> Raw:
        """A raw call of one operation: ``body`` is the request element's XML (``p:`` prefix)."""
        return self.post(envelope(version, body, header), CONTENT_TYPE[version], **kw)

    def close(self) -> None:
        for session in self._sessions:
            session.close()


@contextlib.contextmanager
def running_preg(db_url: str, work_dir: Path, *, populated: bool = True, with_accounts: bool = True,
                 engine: Engine | None = None, preg: PregSettings | None = None,
                 access: Mapping[str, Any] | None = None, profiles_toml: str = "",
                 upstream: Any = None) -> Iterator[PregServer]:
    """Build the components for ``db_url`` (migrating unless ``engine`` is given), fill the store, add the
    accounts and serve the app on a loopback port until the block ends. ``access``: AccessSettings keys to set
    (by default the login throttle has no delays within a test's attempts); ``profiles_toml`` adds profiles to
    :data:`PROFILES_TOML`'s."""
    profiles = work_dir / "profiles.toml"
    profiles.write_text(PROFILES_TOML + profiles_toml, encoding="utf-8")
    limits: dict[str, Any] = {"pair_free_failures": 1000, "account_free_failures": 1000,
                              "address_free_failures": 1000, **(access or {})}
    settings = Settings(
        store=StoreSettings(url=db_url, data_dir=work_dir),
        access=AccessSettings(audit_mode="sync", key_path=work_dir / "access.key", profiles_path=profiles,
                              **limits),
        preg=preg or PregSettings(),
        filematch=FilematchSettings(background_workers=0),  # no washer thread outliving the test's store
        **({"upstream": upstream} if upstream is not None else {}),  # read-through mode (tests/readthrough)
    )
    spyne_loggers = {name: (logging.getLogger(name).level, list(logging.getLogger(name).filters))
                     for name in SPYNE_BODY_LOGGERS}  # the app silences them for the whole process
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(accounts_module, "PasswordHasher", functools.partial(PasswordHasher, time_cost=1, memory_cost=1024,
                                                                        parallelism=1))
        components = build_components(settings, engine=engine)
    population = populate(components.engine, work_dir) if populated else None
    if with_accounts:
        for profile, username in ACCOUNTS.items():
            components.accounts.add(username, PASSWORD, profile)
        components.accounts.add(DIGEST_USER, PASSWORD, "full", digest=True)
    httpd = make_server("127.0.0.1", 0, components.app, server_class=_ThreadingServer, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="preg-test-server", daemon=True)
    thread.start()
    srv = PregServer(components, settings, httpd.server_port, population, work_dir)
    try:
        yield srv
    finally:
        srv.close()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
        components.audit.close()
        components.engine.dispose()
        for name, (level, filters) in spyne_loggers.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).filters[:] = filters


DOCS_START, DOCS_END = "<!-- examples:start -->", "<!-- examples:end -->"


def check_docs_section(doc: Path, section: str) -> None:
    """``doc``'s one ``<!-- examples:start -->`` … ``<!-- examples:end -->`` section must equal ``section``
    (rendered from a running server by a docs test); with ``PREGBRIDGE_REGEN_DOCS=1`` it is rewritten instead."""
    text = doc.read_text(encoding="utf-8")
    assert text.count(DOCS_START) == 1 and text.count(DOCS_END) == 1, f"{doc} needs one {DOCS_START} … section"
    before, rest = text.split(DOCS_START)
    current, after = rest.split(DOCS_END)
    if os.environ.get("PREGBRIDGE_REGEN_DOCS") == "1":
        doc.write_text(before + section + after, encoding="utf-8")
        return
    assert DOCS_START + current + DOCS_END == section, f"{doc.name} is out of date: run with PREGBRIDGE_REGEN_DOCS=1"
