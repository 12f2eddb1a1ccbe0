"""The operator's commands end to end: demo-data → load → ingest → serve /health, as real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def pregbridge(*args: str, data_dir: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "server", "--data-dir", str(data_dir), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"pregbridge {args} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    proc = pregbridge("demo-data", "--persons", "800", "--seed", "5", "--out", str(out / "pop"), data_dir=out)
    assert "wrote 800 persons" in proc.stdout
    return out


def test_load_ingest_and_rejects(demo: Path, tmp_path: Path) -> None:
    pop = demo / "pop"
    manifest = json.loads((pop / "manifest.json").read_text())
    loaded = pregbridge("load", str(pop), data_dir=tmp_path)
    assert "loaded 800 persons (0 replaced, 0 rejected)" in " ".join(loaded.stdout.split())
    ingested = pregbridge("ingest", str(pop / "feed"), data_dir=tmp_path)
    text = " ".join(ingested.stdout.split())
    assert f"{manifest['feedEvents']} events" in text and "0 rejected" in text
    assert f"feed position {manifest['feedEvents']}" in text
    again = pregbridge("ingest", str(pop / "feed"), data_dir=tmp_path)
    assert f"0 applied, {manifest['feedEvents']} already applied" in " ".join(again.stdout.split())
    assert "0 reject(s) shown" in pregbridge("rejects", data_dir=tmp_path).stdout


def test_bad_input_gives_a_clear_error_and_exit_code(tmp_path: Path) -> None:
    missing = pregbridge("load", str(tmp_path / "nowhere"), data_dir=tmp_path, check=False)
    assert missing.returncode == 2 and "manifest" in missing.stderr and "Traceback" not in missing.stderr
    gap = tmp_path / "gap.jsonl"
    gap.write_text('{"sequenceNumber": 5, "eventType": "endringINavn", "personId": "x", "person": {}}\n')
    refused = pregbridge("ingest", str(gap), data_dir=tmp_path, check=False)
    assert refused.returncode == 1 and "expected sequence number 1, found 5" in " ".join(refused.stderr.split())


def test_serve_answers_health_over_a_socket(demo: Path, tmp_path: Path) -> None:
    pregbridge("load", str(demo / "pop"), data_dir=tmp_path)
    port = free_port()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    server = subprocess.Popen([sys.executable, "-m", "server", "--data-dir", str(tmp_path), "serve", "--port",
                               str(port), "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert {k: body[k] for k in ("status", "backend", "persons", "feedPosition")} == {
            "status": "ok", "backend": "sqlite", "persons": 800, "feedPosition": 0}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=2)
        assert err.value.code == 404
        err.value.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=30)
