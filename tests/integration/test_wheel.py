"""The wheel carries everything the server reads at run time: built from a copy of the sources, installed into a
virtualenv outside the tree, started on a free loopback port over a tiny demo population, and asked getPerson.

The virtualenv's dependencies are cached between runs (keyed by Python version and ``install_requires``) under
``$XDG_CACHE_HOME/pregbridge-tests`` (default ``~/.cache``): the first run installs them (about a minute),
later runs reinstall only pregbridge itself (``--force-reinstall --no-deps``), so no file of an earlier build
survives. The server runs with a working directory and ``PYTHONPATH`` that do not reach the checkout.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

pytestmark = [pytest.mark.wheel, pytest.mark.xdist_group("wheel")]

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("store", "adapters", "server", "filematch", "upstream", "wsdl", "xsd", "setup.cfg", "pyproject.toml",
           "README.md")
PREG_NS = "urn:no:pregbridge:personregister:v1"
PASSWORD = "wheel-test-password-1"


def _run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pregbridge-tests"


def _venv_key() -> str:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    requires = cfg["options"]["install_requires"]
    return hashlib.sha256(f"{sys.version}\n{requires}".encode()).hexdigest()[:16]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin`` directory of a virtualenv holding the freshly built wheel."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(source, src / name)
    dist = work / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(src)], cwd=work)
    (wheel,) = dist.glob("pregbridge-*.whl")
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"venv-{_venv_key()}"
    with (cache / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of the cached virtualenv at a time (xdist, two CI runs)
        python = venv / "bin" / "python"
        if not (venv / "complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            _run([base, "-m", "venv", str(venv)], cwd=work)
            _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=work)
            (venv / "complete").touch()
        else:
            _run([str(python), "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps", str(wheel)],
                 cwd=work)
        _run([str(python), "-m", "pip", "check"], cwd=work)  # every install_requires is there
        yield venv / "bin"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PREGBRIDGE_", "VIRTUAL_ENV"))}
    return {**env, "PREGBRIDGE_DATA_DIR": str(data_dir)}


def test_the_installed_wheel_reports_its_version_and_imports_nothing_from_the_checkout(installed: Path,
                                                                                        tmp_path: Path) -> None:
    assert _run([str(installed / "pregbridge"), "--version"], cwd=tmp_path, env=_env(tmp_path)).strip() \
        == "pregbridge 0.1.0"
    where = _run([str(installed / "python"), "-c", "import server, wsdl; print(server.__file__); "
                  "print(list(wsdl.__path__))"], cwd=tmp_path, env=_env(tmp_path))
    assert str(ROOT) not in where and "site-packages" in where


def test_the_installed_wheel_serves_get_person(installed: Path, tmp_path: Path) -> None:
    env = _env(tmp_path / "var")
    cli = str(installed / "pregbridge")
    _run([cli, "demo-data", "--persons", "20", "--seed", "3", "--days", "1", "--out", str(tmp_path / "demo")],
         cwd=tmp_path, env=env)
    _run([cli, "load", str(tmp_path / "demo")], cwd=tmp_path, env=env)
    done = subprocess.run([cli, "users", "add", "wheel", "--profile", "full", "--password-stdin"], cwd=tmp_path,
                          env=env, input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first = json.loads((tmp_path / "demo" / "persons.jsonl").read_text(encoding="utf-8").splitlines()[0])
    number = next(i["number"] for i in first["identifiers"] if i["current"])

    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen([cli, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    assert json.loads(r.read())["persons"] == 20
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, (tmp_path / "serve.log").read_text(errors="replace")
                assert time.monotonic() < deadline, "the installed server did not answer /health"
                time.sleep(0.3)
        envelope = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:p="{PREG_NS}">'
                    f"<soap:Body><p:getPerson><p:personnummer>{number}</p:personnummer></p:getPerson>"
                    "</soap:Body></soap:Envelope>").encode()
        request = urllib.request.Request(f"{base}/preg/v1/Personregister", data=envelope, method="POST", headers={
            "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"getPerson"',
            "Authorization": "Basic " + base64.b64encode(f"wheel:{PASSWORD}".encode()).decode()})
        with urllib.request.urlopen(request, timeout=30) as r:
            answer = etree.fromstring(r.read(), etree.XMLParser(resolve_entities=False, no_network=True))
        assert answer.findtext(f".//{{{PREG_NS}}}person/{{{PREG_NS}}}personnummer") == number
        with urllib.request.urlopen(f"{base}/preg/v1/Personregister?xsd", timeout=30) as r:  # xsd/preg.xsd
            schema = etree.fromstring(r.read(), etree.XMLParser(resolve_entities=False, no_network=True))
        assert schema.tag == "{http://www.w3.org/2001/XMLSchema}schema"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        log.close()
