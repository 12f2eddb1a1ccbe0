"""A second SOAP stack for the Grunndata faces: node's ``soap`` package (npm), generated from the served WSDL.

:func:`node_soap` installs ``soap`` once per pytest cache (``.pytest_cache/d/node-soap``, test-local, never in the
project) and returns a caller; it skips with the reason when node or npm is missing or the install fails (no
registry, no network), so a machine without them still runs everything else.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["SOAP_VERSION", "node_soap"]

SOAP_VERSION = "1.13.0"
SCRIPT = Path(__file__).parent / "node" / "soap_call.js"
Caller = Callable[..., dict[str, Any]]


def node_soap(config: pytest.Config) -> Caller:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the second SOAP stack (npm soap); not on this machine")
    cache = getattr(config, "cache", None)  # None with -p no:cacheprovider
    home = cache.mkdir("node-soap") if cache is not None else Path(".node-soap").resolve()
    if not (home / "node_modules" / "soap" / "package.json").is_file():
        try:
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(home),
                                   f"soap@{SOAP_VERSION}"], capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"npm install soap@{SOAP_VERSION} failed ({type(exc).__name__})")
        if proc.returncode != 0:
            pytest.skip(f"npm install soap@{SOAP_VERSION} failed: {proc.stderr.strip()[-300:]}")

    def call(wsdl_url: str, endpoint: str, auth: tuple[str, str], operation: str, args: dict[str, Any],
             version: str = "1.1") -> dict[str, Any]:
        """``{"result", "xml"}`` of the call, or ``{"fault": {"code", "message"}}`` for a GenericFault; SOAP 1.2
        (``version="1.2"``) for the WSHttpBinding port."""
        proc = subprocess.run([node, str(SCRIPT), wsdl_url, endpoint, auth[0], auth[1], operation, json.dumps(args),
                               version],
                              capture_output=True, text=True, timeout=60,
                              env={"NODE_PATH": str(home / "node_modules"), "PATH": str(Path(node).parent)})
        assert proc.returncode == 0, f"node soap {operation} failed: {proc.stderr[-1000:]}"
        answer: dict[str, Any] = json.loads(proc.stdout)
        return answer

    return call
