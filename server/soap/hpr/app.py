"""The HPR WSGI application: ``/v2/HPR/Basic`` (SOAP 1.1) and ``/v2/HPR`` (SOAP 1.2 + WS-Addressing).

The shared Grunndata application (server/soap/wcf/app.py) around :class:`~server.soap.hpr.face.HprFace`,
behind one repair of HPR's own: the contract's names are not ASCII (``Søk``, ``påTidspunkt``, ``Kjønn``), and
a known real client declares ``charset=ISO-8859-1`` while it sends UTF-8 (navikt/syfohelsenettproxy, whose
CXF client adds interceptors for exactly this mismatch). Read as ISO-8859-1 such a body names ``SÃ¸k``, an
operation that does not exist. :func:`utf8_declared_latin1` therefore re-labels a body as UTF-8 when it
declares ISO-8859-1 (in the ``Content-Type`` or the XML declaration) but is valid UTF-8 with at least one
multi-byte sequence. A body really written in ISO-8859-1 with a Norwegian letter is never valid UTF-8
(``ø`` is the lone byte 0xF8), so it keeps its label; the only text that could be mistaken is ISO-8859-1
that spells out UTF-8 sequences (``Ã¸``), which no HPR request contains.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from sqlalchemy import Engine

from server.access import AccessProfile, AuditWriter, Authenticator
from server.soap.contract_files import contract_file
from server.soap.hpr.face import HprFace
from server.soap.middleware import DEFAULT_MAX_BODY
from server.soap.wcf.app import WsgiApp, build_wcf_app
from server.soap.wcf.contract import WcfContract, load_contract

__all__ = ["PATH", "REALM", "SERVICE_NAME", "WSDL_FILE", "build_hpr_app", "build_hpr_app_for", "hpr_contract",
           "utf8_declared_latin1"]

REALM: Final = "pregbridge HPR"
SERVICE_NAME: Final = "HPRService2"
PATH: Final = "/v2/HPR"
WSDL_FILE: Final = contract_file("wsdl", "helsepersonellregisteret.wsdl")
_LATIN1: Final = re.compile(rb"^\s*(iso-?8859-1|latin-?1|l1|iso_8859-1|cp819|windows-1252|cp1252)\s*$", re.I)
_DECLARATION: Final = re.compile(rb"^(\xef\xbb\xbf)?(<\?xml[^>]*?encoding\s*=\s*[\"'])([^\"']*)([\"'])")


def hpr_contract(public_base_url: str) -> WcfContract:
    return load_contract(WSDL_FILE, public_base_url, PATH)


def utf8_declared_latin1(content_type: str, body: bytes) -> tuple[str, bytes] | None:
    """``(content type, body)`` re-labelled as UTF-8 when the body declares ISO-8859-1 (or windows-1252) but is
    UTF-8 (module docstring); None when nothing needs changing."""
    media, _, params = content_type.partition(";")
    kept: list[str] = []
    header_latin1 = False
    for param in params.split(";"):
        key, sep, value = param.strip().partition("=")
        if sep and key.strip().lower() == "charset" and _LATIN1.match(value.strip().strip('"').encode()):
            header_latin1 = True
            continue
        if param.strip():
            kept.append(param.strip())
    declared = _DECLARATION.match(body)
    declared_latin1 = bool(declared and _LATIN1.match(declared.group(3)))
    if not (header_latin1 or declared_latin1) or body.isascii():
        return None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None  # real ISO-8859-1
    if declared_latin1 and declared is not None:
        body = body[:declared.start(3)] + b"UTF-8" + body[declared.end(3):]
    if header_latin1:
        content_type = "; ".join([media.strip(), *kept, "charset=utf-8"])
    return content_type, body


def _relabel(app: WsgiApp, max_body: int) -> WsgiApp:
    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD", "GET").upper() == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = -1
            if 0 < length <= max_body:
                body = environ["wsgi.input"].read(length)
                fixed = utf8_declared_latin1(str(environ.get("CONTENT_TYPE") or ""), body)
                if fixed is not None:
                    environ["CONTENT_TYPE"], body = fixed
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
        return app(environ, start_response)

    return wrapped


def build_hpr_app(engine: Engine, authenticator: Authenticator, profiles: Mapping[str, AccessProfile],
                  audit: AuditWriter, *, public_base_url: str, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    """The HPR application; ``public_base_url`` (``https://host:port``) goes into the served WSDL."""
    return build_hpr_app_for(HprFace(engine, hpr_contract(public_base_url), profiles, audit), authenticator,
                             max_body=max_body)


def build_hpr_app_for(face: HprFace, authenticator: Authenticator, *, max_body: int = DEFAULT_MAX_BODY) -> WsgiApp:
    return _relabel(build_wcf_app(face, authenticator, realm=REALM, service_name=SERVICE_NAME, max_body=max_body),
                    max_body)
