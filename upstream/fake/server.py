"""Running the fake Persontjenesten: in a thread for tests (:func:`serve_fake`), or in the foreground for
``pregbridge fake-persontjenesten`` (:func:`run_fake`).

werkzeug's threaded server, with its per-request access log switched off (request lines carry person ids;
pregbridge's servers keep no access log either).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from upstream.fake.app import FakeApp, Faults
from upstream.fake.helseid import TOKEN_PATH, FakeAuth
from upstream.fake.population import Population
from upstream.settings import UpstreamSettings

__all__ = ["FakeOptions", "RunningFake", "make_fake_server", "serve_fake"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass(frozen=True)
class FakeOptions:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    extract: bool = True  # serve the null-day extract (PersonPopulated 1..P) before the feed
    auth: FakeAuth | None = None  # None: no token endpoint, API calls need no token
    faults: Faults = field(default_factory=Faults)


@dataclass
class RunningFake:
    server: BaseWSGIServer
    app: FakeApp

    @property
    def base_url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    @property
    def token_endpoint(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def population(self) -> Population:
        return self.app.population

    @property
    def latest_sequence(self) -> int:
        return self.app.population.latest_sequence

    @property
    def extract_size(self) -> int:
        return self.app.population.extract_size

    def release(self, upto: int) -> None:
        self.app.release(upto)

    def client_settings(self, **overrides: Any) -> UpstreamSettings:
        """Settings for a client of this fake (add token_endpoint, client_id and jwk_path for auth)."""
        values: Mapping[str, Any] = {"base_url": self.base_url, "connect_timeout": 2.0, "read_timeout": 10.0,
                                     "deadline": 30.0, **overrides}
        return replace(UpstreamSettings(), **values)


def make_fake_server(population_dir: Path, options: FakeOptions = FakeOptions(),
                     wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> RunningFake:
    """The fake, bound to its port; ``wrap`` puts a WSGI middleware around it (the contract tests' validator)."""
    population = Population(population_dir, extract=options.extract)
    app = FakeApp(population, auth=options.auth, faults=options.faults)
    served: WsgiApp = wrap(app) if wrap is not None else app
    server = make_server(options.host, options.port, served, threaded=True, request_handler=_QuietHandler)
    return RunningFake(server, app)


@contextmanager
def serve_fake(population_dir: Path, options: FakeOptions = FakeOptions(),
               wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> Iterator[RunningFake]:
    """The fake serving ``population_dir`` on a free loopback port in a background thread."""
    fake = make_fake_server(population_dir, options, wrap)
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="fake-persontjenesten", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(5)
        fake.population.close()
