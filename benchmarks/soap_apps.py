"""WSGI applications the SOAP benchmark serves with gunicorn (``gunicorn 'benchmarks.soap_apps:real()'``).

- ``real()``: pregbridge's own application (server.bootstrap), configured from the environment
  (``PREGBRIDGE_DATABASE_URL`` …): authentication, profile, store lookup, masking, encoding and
  audit on every call.
- ``static()``: the same stack — gunicorn, SoapGuard, spyne with the PREG protocols and service — whose
  face answers a prebuilt response element without authenticating, reading the store or auditing: the
  baseline that tells what the pregbridge work costs on top of the SOAP machinery.
"""

from __future__ import annotations

import copy
import gc
import os
from collections.abc import Iterable
from typing import Any

from lxml import etree

from server.bootstrap import WsgiApp, build_wsgi_app
from server.config import load_settings
from server.soap.preg.app import build_preg_app
from server.soap.preg.contract import load_contract


def real() -> WsgiApp:
    app = build_wsgi_app(load_settings())
    gc.freeze()  # as server.runner does in every worker
    return app


class _StaticFace:
    """Duck-types PregFace for build_preg_app: same contract, answers prebuilt once at start from the
    real face (so the baseline sends byte-identical responses), then served without any work."""

    def __init__(self) -> None:
        from server.access import BUILTIN_PROFILES
        from server.bootstrap import build_components
        from server.soap.preg.face import PregFace, _Call

        settings = load_settings()
        comps = build_components(settings)
        face = PregFace(comps.engine, load_contract(settings.preg.namespace, settings.preg_address),
                        comps.authenticator, {}, comps.audit)
        self.contract = face.contract
        self.audit = face.audit  # the app's refusal audit reads it
        ns = self.contract.namespace
        full = BUILTIN_PROFILES["full"]

        def request(op: str, **fields: str) -> etree._Element:
            el = etree.Element(f"{{{ns}}}{op}")
            for k, v in fields.items():
                etree.SubElement(el, f"{{{ns}}}{k}").text = v
            return el

        self._answers: dict[str, etree._Element] = {
            "getPerson": face._op_getPerson(request("getPerson", personnummer=os.environ["BENCH_NUMBER"]), full,
                                            _Call([], [])),
            "searchPerson": face._op_searchPerson(
                request("searchPerson", etternavn=os.environ["BENCH_FAMILY"], fodselsaar=os.environ["BENCH_YEAR"]),
                full, _Call([], [])),
        }

    def call(self, operation: str, body: Any, environ: dict[str, Any], headers: Iterable[Any] | None) -> Any:
        return copy.deepcopy(self._answers[operation])


def static() -> WsgiApp:
    app = build_preg_app(_StaticFace())  # type: ignore[arg-type]
    gc.freeze()
    return app
