"""Helpers shared by the Grunndata (WCF) face tests: a real WSDL's schemas compiled independently of the
server's copy, SOAP body access, structural comparison with NHN's example responses, and a loopback WSGI
server in a thread."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import pytest
import requests
import zeep
from argon2 import PasswordHasher
from lxml import etree
from sqlalchemy import Engine
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport
from zeep.wsa import WsAddressingPlugin

import server.access.accounts as accounts_module
from server.access import AccessSettings, AccountStore, AuditWriter, Authenticator
from store.engine import make_engine, migrate
from store.loading import load_population
from tests.integration.preg_support import _Quiet, _ThreadingServer, backend_url

XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XS = "http://www.w3.org/2001/XMLSchema"
COMMON = "http://register.nhn.no/Common"


class _Resolver(etree.Resolver):  # type: ignore[misc]
    def __init__(self, docs: dict[str, bytes]) -> None:
        super().__init__()
        self.docs = docs

    def resolve(self, url: str, pubid: str, context: Any) -> Any:
        return self.resolve_string(self.docs[url], context) if url in self.docs else None


@functools.cache
def schema_of(wsdl: Path) -> etree.XMLSchema:
    """Every inline xs:schema of a WSDL, imports (by namespace only) resolved in memory."""
    root = etree.parse(str(wsdl)).getroot()
    docs: dict[str, bytes] = {}
    for schema in root.iter(f"{{{XS}}}schema"):
        copy = etree.fromstring(etree.tostring(schema))
        for imp in copy.findall(f"{{{XS}}}import"):
            imp.set("schemaLocation", "mem:" + imp.get("namespace", ""))
        docs["mem:" + copy.get("targetNamespace", "")] = etree.tostring(copy)
    imports = "".join(f'<xs:import namespace="{url[4:]}" schemaLocation="{url}"/>' for url in docs)
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Resolver(docs))
    return etree.XMLSchema(etree.fromstring(f'<xs:schema xmlns:xs="{XS}">{imports}</xs:schema>'.encode(), parser))


def body_element(envelope: etree._Element) -> etree._Element:
    for env in (SOAP11, SOAP12):
        body = envelope.find(f"{{{env}}}Body")
        if body is not None:
            return body[0]
    raise AssertionError("no SOAP Body")


def shape(el: etree._Element) -> dict[tuple[str, ...], list[str]]:
    """Element path (QNames, list positions collapsed) -> its child QNames in order (repeats collapsed), for
    every element with children; ``@type`` entries hold ``i:type``."""
    out: dict[tuple[str, ...], list[str]] = {}

    def walk(e: etree._Element, path: tuple[str, ...]) -> None:
        key = path + (str(e.tag),)
        kids: list[str] = []
        for c in e:
            if not kids or kids[-1] != str(c.tag):
                kids.append(str(c.tag))
        if kids and key not in out:
            out[key] = kids
        if e.get(f"{{{XSI}}}type") is not None and key + ("@type",) not in out:
            out[key + ("@type",)] = [e.get(f"{{{XSI}}}type", "").rpartition(":")[2]]
        for c in e:
            walk(c, key)

    walk(el, ())
    return out


def _subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(x in it for x in small)


def assert_same_structure(ours: etree._Element, example: etree._Element, *, subset: bool = False) -> int:
    """Every element path present with children in both has the same children in the same order, and the
    same ``i:type``; an ``i:type`` only we send must name its own element. With ``subset`` the example's
    children need only appear in ours in the same order. Returns how many paths were compared."""
    a, b = shape(ours), shape(example)
    compared = 0
    for key, kids in b.items():
        if key in a:
            same = _subsequence(kids, a[key]) if subset else a[key] == kids
            assert same, f"{'/'.join(k.rpartition('}')[2] for k in key)}: {a[key]} != {kids}"
            compared += 1
    for key, value in a.items():
        if key[-1] == "@type" and key not in b:
            assert value == [key[-2].rpartition("}")[2]], f"unexpected i:type at {key}"
    return compared


class WcfClient:
    """zeep generated from a real WSDL, on one of its two ports (``basic``: SOAP 1.1, ``ws``: SOAP 1.2 with
    WS-Addressing); :meth:`call` checks every received body against the WSDL's schemas, :meth:`fault`
    returns a GenericFault's ``(ErrorCode, Message)`` after checking its detail and SOAP fault code."""

    def __init__(self, wsdl: Path, binding: str, url: str, auth: tuple[str, str], port: str) -> None:
        session = requests.Session()
        session.auth = auth
        self.wsdl = wsdl
        self.history = HistoryPlugin()
        plugins = [self.history] + ([WsAddressingPlugin()] if port == "ws" else [])
        self.client = zeep.Client(str(wsdl), transport=Transport(session=session), plugins=plugins)
        self.service = self.client.create_service(binding, url)
        self.namespace = binding[1:].partition("}")[0]
        self.port = port

    def last(self) -> etree._Element:
        received: Any = self.history.last_received
        return received["envelope"]  # type: ignore[no-any-return]

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.service, op)(*args, **kwargs)
        body = body_element(self.last())
        assert body.tag == f"{{{self.namespace}}}{op}Response"
        schema_of(self.wsdl).assertValid(body)
        return result

    def fault(self, op: str, *args: Any, **kwargs: Any) -> tuple[str, str]:
        with pytest.raises(zeep.exceptions.Fault) as caught:
            getattr(self.service, op)(*args, **kwargs)
        fault = caught.value.detail.find(f"{{{COMMON}}}GenericFault")
        assert fault is not None
        schema_of(self.wsdl).assertValid(fault)
        assert caught.value.code.endswith("Sender" if self.port == "ws" else "Client")
        assert caught.value.message == fault.findtext(f"{{{COMMON}}}Message")
        return fault.findtext(f"{{{COMMON}}}ErrorCode") or "", fault.findtext(f"{{{COMMON}}}Message") or ""


@contextmanager
def serving(build: Callable[[str], Any]) -> Iterator[str]:
    """Serve ``build(base_url)`` on a free loopback port in a thread; yields the base URL."""
    httpd = make_server("127.0.0.1", 0, lambda e, r: [], server_class=_ThreadingServer, handler_class=_Quiet)
    base = f"http://127.0.0.1:{httpd.server_port}"
    httpd.set_app(build(base))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@dataclass
class LoadedStore:
    """A migrated store loaded with a population, its accounts (fast argon2 for tests) and a sync audit."""

    engine: Engine
    accounts: AccountStore
    authenticator: Authenticator
    audit: AuditWriter
    work: Path


@contextmanager
def loaded_store(backend: str, work: Path, population: Path,
                 accounts: Sequence[tuple[str, str, str]]) -> Iterator[LoadedStore]:
    """A store on ``backend`` (``sqlite`` or ``postgres``) loaded from ``population``, with ``accounts``
    ``(user, password, profile)``; everything is closed at the end of the block."""
    with contextlib.ExitStack() as stack:
        engine = make_engine(stack.enter_context(backend_url(backend, work)))
        migrate(engine)
        load_population(engine, population)
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        mp.setattr(accounts_module, "PasswordHasher",
                   functools.partial(PasswordHasher, time_cost=1, memory_cost=1024, parallelism=1))
        store = AccountStore(engine, key_path=work / "access.key")
        for user, password, profile in accounts:
            store.add(user, password, profile)
        audit = AuditWriter(engine, mode="sync")
        try:
            yield LoadedStore(engine, store, Authenticator.from_settings(engine, store, AccessSettings()), audit, work)
        finally:
            audit.close()
            engine.dispose()

