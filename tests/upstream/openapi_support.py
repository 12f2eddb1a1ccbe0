"""Every answer of the fake Persontjenesten checked against the OpenAPI contract (openapi-core).

:class:`ContractCheck` is a WSGI middleware around the fake: it lets each request through, then validates the
request (the client's side of the contract: parameters, form body, version header) and the response (status,
content type, body schema) against upstream/contract/persontjenesten-openapi-v2.yaml. Two adjustments, both
because the file is older than the service it describes:

- v3 paths are checked against the same operation of v2 (the schemas are the same; SOURCE.md);
- the contract's security scheme is ``http bearer``; HelseID now issues DPoP-bound tokens, sent as
  ``Authorization: DPoP …``, so the validator is shown the same token as ``Bearer`` (and a placeholder when
  the fake runs without authentication).

Statuses the contract does not list (429, 500, 503: injected faults) are counted in ``unlisted``, not
validated. The contract's regular expressions use ``\\p{L}`` and ``\\p{N}``, which Python's ``re`` lacks: the
two patterns are given in ``re``'s terms (same characters), and the spec file itself is not meta-validated
(``spec_validator_cls=None``); instances still are.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from openapi_core.templating.paths.exceptions import PathNotFound
from werkzeug.wrappers import Request, Response

from upstream.spec import contract_path

LISTED = {200, 400, 401, 403, 404}
_V3 = {"/api/v3/full-access": "/api/legal-basis", "/api/v3/restricted-access": "/api/no-legal-basis"}


# The contract's Unicode property classes in Python's re (which has no \p{…}): the same sets of characters.
_PATTERNS = {r"[\p{L}\s\-]+": r"(?:[^\W\d_]|[\s\-])+",  # letters, white space, hyphen
             r"[\p{L}\s\p{N}]+": r"(?:[^\W_]|\s)+"}  # letters, digits, white space


def _python_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _PATTERNS.get(v, v) if k == "pattern" and isinstance(v, str) else _python_patterns(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_python_patterns(v) for v in node]
    return node


@cache
def contract() -> OpenAPI:
    raw = yaml.load(contract_path().read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    spec = _python_patterns(raw)
    assert "\\p{" not in repr(spec), "a \\p{…} pattern the table does not translate"
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


class ContractCheck:
    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.checked: list[tuple[str, int]] = []  # (path, status) validated
        self.unlisted: list[tuple[str, int]] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        response = Response.from_app(self.app, environ, buffered=True)
        path = environ.get("PATH_INFO", "")
        if path.startswith("/api/"):
            self._check(environ, body, response)
        return response(environ, start_response)

    def _check(self, environ: dict[str, Any], body: bytes, response: Response) -> None:
        env = dict(environ)
        env["wsgi.input"] = io.BytesIO(body)
        for v3, v2 in _V3.items():
            if env["PATH_INFO"].startswith(v3):
                env["PATH_INFO"] = v2 + env["PATH_INFO"][len(v3):]
        scheme, _, token = str(env.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme == "DPoP":
            env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        elif not scheme:  # the fake without authentication: the contract's scheme is still asked for
            env["HTTP_AUTHORIZATION"] = "Bearer unauthenticated-fake"
        request = WerkzeugOpenAPIRequest(Request(env))
        where = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} -> {response.status_code}"
        errors = []
        if response.status_code not in LISTED:
            with self._lock:
                self.unlisted.append((environ["PATH_INFO"], response.status_code))
            return
        try:
            contract().validate_response(request, WerkzeugOpenAPIResponse(response))
        except PathNotFound:  # not an operation of the contract (the tests' own probes): nothing to check
            with self._lock:
                self.unlisted.append((environ["PATH_INFO"], response.status_code))
            return
        except Exception as exc:  # noqa: BLE001 - every validation failure is reported as one
            found = getattr(exc.__cause__, "schema_errors", None) or [exc.__cause__ or exc]
            errors += [f"response: {type(exc).__name__} at {'/'.join(map(str, getattr(e, 'absolute_path', [])))}: "
                       f"{getattr(e, 'message', str(e))[:300]}" for e in found]
        if response.status_code == 200:  # requests the fake refused are the tests' own bad requests
            try:
                contract().validate_request(request)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"request: {exc} {exc.__cause__ or ''}")
        with self._lock:
            self.checked.append((environ["PATH_INFO"], response.status_code))
            self.failures += [f"{where}: {e}" for e in errors]
