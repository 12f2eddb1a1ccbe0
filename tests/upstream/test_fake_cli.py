"""``pregbridge fake-persontjenesten`` as a user runs it: a process serving a demo population, with HelseID."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from upstream.client import PersontjenestenClient
from upstream.settings import UpstreamSettings


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "server", "fake-persontjenesten", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        found = re.search(r"base_url:\s+(http://\S+)", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    _, err = proc.communicate(timeout=10)
    pytest.fail(f"the fake did not start: {seen} {err}")


def test_fake_process_with_helseid(demo_population: Path, client_key) -> None:
    proc, base_url = _start("--population", str(demo_population), "--client-id", client_key.client_id,
                            "--client-jwk", str(client_key.path), "--rate-limit-every", "4", "--retry-after", "0")
    try:
        info = httpx.get(base_url + "/_fake/info").json()
        assert info["persons"] == 240 and info["extractSize"] == 240
        settings = UpstreamSettings(base_url=base_url, token_endpoint=base_url + "/connect/token",
                                    client_id=client_key.client_id, jwk_path=client_key.path)
        with PersontjenestenClient(settings) as client:
            events = client.events(1)
            assert len(events) == info["latestSequence"]
            assert len(client.persons_by_id([e.person_id for e in events[:100]], ["Name"])) == 100
            httpx.post(base_url + "/_fake/release", params={"upTo": 240})
            latest = client.latest_event()
            assert latest is not None and latest.sequence_number == 240
        unauthenticated = httpx.get(base_url + "/api/legal-basis/event/latest", headers={"api-version": "2"})
        assert unauthenticated.status_code in (401, 429)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_fake_cli_refuses_half_an_auth_configuration(demo_population: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "server", "fake-persontjenesten", "--population",
                           str(demo_population), "--port", "0", "--client-id", "x"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--client-jwk" in done.stderr
