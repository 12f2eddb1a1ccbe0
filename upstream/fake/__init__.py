"""The fake Persontjenesten: a demo population and its feed served through the real contract, with a
HelseID-like token endpoint and fault injection (docs/upstream.md "The fake Persontjenesten")."""

from upstream.fake.app import FakeApp, Faults
from upstream.fake.helseid import FakeAuth
from upstream.fake.server import FakeOptions, RunningFake, make_fake_server, serve_fake

__all__ = ["FakeApp", "FakeAuth", "FakeOptions", "Faults", "RunningFake", "make_fake_server", "serve_fake"]
