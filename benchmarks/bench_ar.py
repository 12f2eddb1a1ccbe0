"""AR SOAP benchmark: GetCommunicationPartyDetails throughput and latency over a real socket.

Servers: gunicorn with pre-forked sync workers, started as a subprocess (as benchmarks/bench_soap.py does for
PREG, whose wrk helpers this reuses), once with the real AR application (server.soap.ar: HTTP Basic with
the per-process credential cache, request validation against the real schemas, store lookups of the party,
its children or office and HPR records, encoding, batched audit) and once with the **baseline**: the same
gunicorn + Basic check + SoapGuard + spyne stack answering a prebuilt response of the same size
(:class:`_StaticFace`). Load: ``wrk`` with keep-alive connections, requests drawn from random HER-ids of
the store (organisations, services and organisation persons alike). Both servers run at once and each variant
is measured in ``--rounds`` alternating slices of ``--seconds`` (``harness.wrk_alternating``). Client and
server share the machine's cores, so absolute figures are a lower bound.

Store: a fresh SQLite store loaded with a ``--num`` synthetic population (store.synthetic), or ``--dburl``
(a store already loaded). Run: ``python -m benchmarks ar --num 20000 --seconds 10``.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import select

from benchmarks.harness import (
    GunicornServer,
    Result,
    bench_account,
    fresh_store,
    run_wrk,
    wrk_alternating,
    wrk_post_script,
)
from server.access import AccountStore
from store import schema as s
from store.engine import make_engine

__all__ = ["real_app", "run", "static_app"]

CP = "http://register.nhn.no/CommunicationParty"
USER = "bench-ar"
PATHS = {"1.1": "/v1/AR/Basic", "1.2": "/v1/AR"}
ENVELOPES = {
    "1.1": '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>{body}</s:Body></s:Envelope>',
    "1.2": ('<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/'
            'addressing"><s:Header><a:Action s:mustUnderstand="1">' + CP + '/ICommunicationPartyService/'
            'GetCommunicationPartyDetails</a:Action><a:MessageID>urn:uuid:{uuid}</a:MessageID></s:Header>'
            '<s:Body>{body}</s:Body></s:Envelope>'),
}
CONTENT_TYPES = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}


# -- the two applications gunicorn serves ---------------------------------------------------------------


def _parts() -> tuple[Any, Any, Any, Any]:
    from server.access import AccessSettings, AuditWriter, Authenticator, load_profiles

    engine = make_engine(os.environ["PREGBRIDGE_DATABASE_URL"])
    accounts = AccountStore(engine, key_path=Path(os.environ["PREGBRIDGE_DATA_DIR"]) / "access.key")
    return engine, Authenticator.from_settings(engine, accounts, AccessSettings()), load_profiles(None), \
        AuditWriter(engine)


def real_app() -> Any:
    from server.soap.ar import build_ar_app

    engine, authenticator, profiles, audit = _parts()
    return build_ar_app(engine, authenticator, profiles, audit, public_base_url="http://127.0.0.1")


class _StaticFace:
    """Duck-types ArFace: answers one response prebuilt at start by the real face, without any work."""

    def __init__(self, engine: Any, profiles: Mapping[str, Any], audit: Any) -> None:
        from server.soap.ar.contract import load_contract
        from server.soap.ar.face import ArFace, _Call

        face = ArFace(engine, load_contract(), profiles, audit)
        self.contract = face.contract
        self.audit, self.audit_face = face.audit, face.audit_face  # the app's refusal audit reads them
        request = etree.Element(f"{{{CP}}}GetCommunicationPartyDetails")
        etree.SubElement(request, f"{{{CP}}}herId").text = os.environ["BENCH_HER_ID"]
        self._answer = face._op_GetCommunicationPartyDetails(request, _Call())

    def call(self, operation: str, body: Any, environ: Any) -> Any:
        return copy.deepcopy(self._answer)

    def audit_refusal(self, environ: Any, operation: str, outcome: str) -> None:
        pass


def static_app() -> Any:
    from server.soap.ar.app import build_ar_app_for

    engine, authenticator, profiles, audit = _parts()
    return build_ar_app_for(_StaticFace(engine, profiles, audit), authenticator)  # type: ignore[arg-type]


# -- driving them ---------------------------------------------------------------------------------------


def _prepare(args: argparse.Namespace, tmp: Path) -> tuple[str, list[int]]:
    url = fresh_store(args, tmp, "ar")
    engine = make_engine(url)
    bench_account(engine, USER, key_path=tmp / "access.key")
    with engine.connect() as conn:
        her_ids = [int(h) for h in conn.execute(select(s.ar_party.c.her_id)).scalars()]
    engine.dispose()
    if not her_ids:
        raise SystemExit("the store holds no AR parties")
    rng = random.Random(args.seed)
    return url, [rng.choice(her_ids) for _ in range(1000)]


def _lua(path: Path, version: str, her_ids: list[int]) -> Path:
    bodies = [ENVELOPES[version].format(uuid=f"00000000-0000-4000-8000-{i:012d}",
                                        body=f'<GetCommunicationPartyDetails xmlns="{CP}"><herId>{h}</herId>'
                                             "</GetCommunicationPartyDetails>") for i, h in enumerate(her_ids)]
    return wrk_post_script(path, bodies, USER, CONTENT_TYPES[version])


def run(args: argparse.Namespace) -> Iterator[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_ar needs wrk: apt-get install wrk")
    tmp = Path(tempfile.mkdtemp(prefix="bench-ar-"))
    url, her_ids = _prepare(args, tmp)
    scripts = {v: _lua(tmp / f"get-{v}.lua", v, her_ids) for v in PATHS}
    env = dict(os.environ, PREGBRIDGE_DATABASE_URL=url, PREGBRIDGE_DATA_DIR=str(tmp), BENCH_HER_ID=str(her_ids[0]),
               PYTHONWARNINGS="ignore")
    seconds = args.seconds
    plan = [("1.1", 2, 1), ("1.1", 2, 8), ("1.1", 2, 32), ("1.2", 2, 8), ("1.1", 1, 8)]
    measured: dict[tuple[str, str, int, int], tuple[float, float, float, int]] = {}
    try:
        for workers in sorted({w for _, w, _ in plan}):
            servers = {}
            try:
                for app in ("static_app", "real_app"):
                    servers[app] = GunicornServer(f"benchmarks.bench_ar:{app}()", workers, env, "/v1/AR?wsdl")
                for version, script in scripts.items():
                    for server in servers.values():
                        run_wrk(server.base + PATHS[version], script, 8, 2)  # warm-up
                for version, w, conc in plan:
                    if w == workers:
                        got = wrk_alternating({app: (server.base + PATHS[version], scripts[version])
                                               for app, server in servers.items()}, conc, seconds, args.rounds)
                        for app, figures in got.items():
                            measured[(app, version, w, conc)] = figures
            finally:
                for server in servers.values():
                    server.stop()
        for version, workers, conc in plan:
            rps, p50, p99, errors = measured[("real_app", version, workers, conc)]
            base = measured[("static_app", version, workers, conc)][0]
            yield Result(f"GetCommunicationPartyDetails SOAP {version} workers={workers} conc={conc}",
                         int(rps * seconds), float(seconds),
                         f"{rps:,.0f} req/s p50 {p50:.2f} p99 {p99:.2f} ms" + (f" {errors} non-2xx" if errors else ""),
                         ratio=rps / base, baseline=f"static {base:,.0f} req/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
