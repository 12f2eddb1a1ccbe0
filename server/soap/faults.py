"""SOAP 1.1 and 1.2 fault envelopes, built with lxml alone.

The SOAP guard (:mod:`server.soap.middleware`) must answer even when spyne never runs (an empty body, a
DTD, a body too large, an exception escaping spyne), so this module does not import spyne. It renders a
fault in exactly the shape spyne 2.14 renders one (``spyne/protocol/soap/soap11.py`` ``fault_to_parent``
and ``soap12.py`` ``_fault_to_parent_impl``), so a client cannot tell which of the two wrote it:

* the same envelope prefixes, ``soap11env`` and ``soap12env``, and the same XML declaration;
* SOAP 1.1: ``<faultcode>soap11env:Client.InvalidRequest</faultcode>``, the dotted code qualified with the
  envelope prefix as one QName, then ``faultstring``, an empty ``faultactor`` and an optional ``detail``;
* SOAP 1.2: the part before the first dot picks the Code value (``Client`` → ``soap12env:Sender``,
  ``Server`` → ``soap12env:Receiver``), each further part becomes a nested ``Subcode`` whose ``Value`` is
  an *unprefixed* QName (``InvalidRequest``: spyne writes it so, and zeep reads it so), then
  ``Reason/Text xml:lang="en"``, an empty ``Role`` and an optional ``Detail``.

``VersionMismatch`` (and ``MustUnderstand``) are also accepted as top-level codes; with ``upgrade=`` the
envelope carries the SOAP 1.2 ``Upgrade`` header block listing the envelopes this server accepts, in
order of preference (SOAP 1.2 part 1 §5.4.7, and appendix A for the SOAP 1.1 form of the same fault).

HTTP status: every fault goes out with ``500 Internal Server Error``. SOAP 1.1's HTTP binding requires 500
for any fault. SOAP 1.2's binding (part 2 §7.5.1.2) says ``400`` for a ``Sender`` fault, but spyne sends
500 for both versions, and the legacy .NET (WCF ``HttpChannel``) and Java (JAX-WS) stacks behind the
registers' clients parse the fault envelope reliably only on a 500; on other statuses they raise a
transport error and drop the envelope, so the client loses the fault code. One status for every fault
also means a client sees the same thing whether spyne or the guard answered. ``fault_response`` takes a
``status`` for the day a client needs something else.

:func:`fault_for_exception` is the one table from exceptions to fault codes: a
:class:`~store.errors.PregbridgeError` carries its own ``soap_fault_code`` and a message free of patient
data; SQLAlchemy's connection-level errors become ``Server.Unavailable``; anything else is a bare
``Server`` fault saying ``internal error``, never the exception's text.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, Final, Literal

from lxml import etree
from sqlalchemy import exc as sa_exc

from store.errors import PregbridgeError

__all__ = [
    "CONTENT_TYPES",
    "ENVELOPE_NS",
    "FAULT_STATUS",
    "MEDIA_TYPES",
    "SOAP11_CONTENT_TYPE",
    "SOAP11_ENV",
    "SOAP12_CONTENT_TYPE",
    "SOAP12_ENV",
    "SUPPORTED",
    "SoapVersion",
    "fault_envelope",
    "fault_for_exception",
    "fault_response",
    "media_type",
    "soap_version",
    "version_mismatch_envelope",
    "version_mismatch_response",
]

SoapVersion = Literal["1.1", "1.2"]

SOAP11_ENV: Final = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV: Final = "http://www.w3.org/2003/05/soap-envelope"
SOAP11_CONTENT_TYPE: Final = "text/xml; charset=utf-8"
SOAP12_CONTENT_TYPE: Final = "application/soap+xml; charset=utf-8"
FAULT_STATUS: Final = "500 Internal Server Error"

SUPPORTED: Final[tuple[SoapVersion, ...]] = ("1.1", "1.2")
ENVELOPE_NS: Final[dict[SoapVersion, str]] = {"1.1": SOAP11_ENV, "1.2": SOAP12_ENV}
CONTENT_TYPES: Final[dict[SoapVersion, str]] = {"1.1": SOAP11_CONTENT_TYPE, "1.2": SOAP12_CONTENT_TYPE}
MEDIA_TYPES: Final[dict[SoapVersion, str]] = {"1.1": "text/xml", "1.2": "application/soap+xml"}

Headers = list[tuple[str, str]]

_PREFIX: Final[dict[SoapVersion, str]] = {"1.1": "soap11env", "1.2": "soap12env"}  # spyne's prefixes
_XML_LANG: Final = "{http://www.w3.org/XML/1998/namespace}lang"
_SOAP12_CODE: Final = {
    "Client": "Sender",
    "Server": "Receiver",
    "VersionMismatch": "VersionMismatch",
    "MustUnderstand": "MustUnderstand",
}
_CODE_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")  # an NCName without dots: one Subcode value
# Characters XML 1.0 cannot carry (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SNIFF_BYTES = 1024
_SOAP11_BYTES = SOAP11_ENV.encode()
_SOAP12_BYTES = SOAP12_ENV.encode()


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lower-cased, without parameters (``""`` when absent)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def soap_version(content_type: str | None, body_head: bytes | None = None) -> SoapVersion:
    """The SOAP version a request speaks, for answering it in kind.

    ``application/soap+xml`` is SOAP 1.2 and any other media type SOAP 1.1 (both HTTP bindings fix the
    type), but for ``multipart/related`` (attachments, MTOM), whose root part's type (the ``type`` or,
    for XOP, the ``start-info`` parameter) decides. With no Content-Type at all, the envelope namespace
    found first in ``body_head`` (only its first KiB is looked at) decides, and 1.1 when neither appears.
    """
    mtype = media_type(content_type)
    if mtype == "multipart/related":
        return _multipart_version(content_type or "")
    if mtype:
        return "1.2" if mtype == "application/soap+xml" else "1.1"
    if body_head:
        head = body_head[:_SNIFF_BYTES]
        at11, at12 = head.find(_SOAP11_BYTES), head.find(_SOAP12_BYTES)
        if at12 >= 0 and (at11 < 0 or at12 < at11):
            return "1.2"
    return "1.1"


def _multipart_version(content_type: str) -> SoapVersion:
    # SOAP with attachments and MTOM name the root part's type in the ``type`` parameter, MTOM (XOP) in
    # ``start-info`` (SOAP 1.2 part 2 §7.1.4; XOP §4.1; the SOAP 1.1 SwA note uses text/xml).
    params: dict[str, str] = {}
    for param in content_type.split(";")[1:]:
        name, sep, value = param.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip("\"'").strip().lower()
    root = params.get("type", "")
    if root == "application/xop+xml":
        root = params.get("start-info", "")
    return "1.2" if media_type(root) == "application/soap+xml" else "1.1"


def _split_code(code: str) -> tuple[str, list[str]]:
    top, *subcodes = code.split(".")
    if top not in _SOAP12_CODE:
        raise ValueError(f"a SOAP fault code starts with Client, Server, VersionMismatch or MustUnderstand: {code!r}")
    if not all(_CODE_PART.match(part) for part in subcodes):
        raise ValueError(f"each part of a dotted fault code must be a name: {code!r}")
    return top, subcodes


def _xml_text(text: str) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _add_upgrade(header: Any, version: SoapVersion, supported: Sequence[SoapVersion]) -> None:
    # In a SOAP 1.2 envelope the soap12env prefix is already bound; in a SOAP 1.1 one bind "upg" as in
    # SOAP 1.2 part 1 appendix A. A SupportedEnvelope's qname uses a prefix in scope where there is one
    # and declares its own (ns1, ns2) where there is none.
    nsmap = None if version == "1.2" else {"upg": SOAP12_ENV}
    upgrade = etree.SubElement(header, f"{{{SOAP12_ENV}}}Upgrade", nsmap=nsmap)
    in_scope = {namespace: prefix for prefix, namespace in upgrade.nsmap.items() if prefix}
    for number, supported_version in enumerate(supported, 1):
        namespace = ENVELOPE_NS[supported_version]
        prefix = in_scope.get(namespace)
        declare = None
        if prefix is None:
            prefix = f"ns{number}"
            declare = {prefix: namespace}
        envelope = etree.SubElement(upgrade, f"{{{SOAP12_ENV}}}SupportedEnvelope", nsmap=declare)
        envelope.set("qname", f"{prefix}:Envelope")


def fault_envelope(
    version: SoapVersion,
    code: str,
    message: str,
    *,
    detail: etree._Element | None = None,
    lang: str = "en",
    upgrade: Sequence[SoapVersion] | None = None,
    not_understood: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A SOAP ``version`` envelope holding one fault, as UTF-8 bytes with an XML declaration.

    ``code`` is spyne's dotted form (``Client.InvalidRequest``, ``Server.Unavailable``, ``Server``);
    ``detail`` an lxml element, copied into ``detail``/``Detail`` (the caller's tree is left alone);
    ``upgrade`` the envelope versions for an ``Upgrade`` header block (for ``VersionMismatch``);
    ``not_understood`` the (namespace, local name) of header blocks for SOAP 1.2 ``NotUnderstood`` header
    blocks (for ``MustUnderstand``; SOAP 1.2 part 1 §5.4.8; SOAP 1.1 has no such block).
    Characters XML cannot carry are replaced by U+FFFD in ``message``.
    """
    top, subcodes = _split_code(code)
    env_ns, prefix = ENVELOPE_NS[version], _PREFIX[version]
    envelope = etree.Element(f"{{{env_ns}}}Envelope", nsmap={prefix: env_ns})
    if upgrade or (not_understood and version == "1.2"):
        header = etree.SubElement(envelope, f"{{{env_ns}}}Header")
        if upgrade:
            _add_upgrade(header, version, upgrade)
        if version == "1.2":
            for number, (namespace, local) in enumerate(not_understood, 1):
                block = etree.SubElement(header, f"{{{SOAP12_ENV}}}NotUnderstood",
                                         nsmap={f"nu{number}": namespace} if namespace else None)
                block.set("qname", f"nu{number}:{local}" if namespace else local)
    fault = etree.SubElement(etree.SubElement(envelope, f"{{{env_ns}}}Body"), f"{{{env_ns}}}Fault")
    if version == "1.1":
        etree.SubElement(fault, "faultcode").text = f"{prefix}:{code}"
        etree.SubElement(fault, "faultstring").text = _xml_text(message)
        etree.SubElement(fault, "faultactor").text = ""
        detail_tag = "detail"
    else:
        parent = etree.SubElement(fault, f"{{{env_ns}}}Code")
        etree.SubElement(parent, f"{{{env_ns}}}Value").text = f"{prefix}:{_SOAP12_CODE[top]}"
        for subcode in subcodes:
            parent = etree.SubElement(parent, f"{{{env_ns}}}Subcode")
            etree.SubElement(parent, f"{{{env_ns}}}Value").text = subcode
        text = etree.SubElement(etree.SubElement(fault, f"{{{env_ns}}}Reason"), f"{{{env_ns}}}Text")
        text.set(_XML_LANG, lang)
        text.text = _xml_text(message)
        etree.SubElement(fault, f"{{{env_ns}}}Role").text = ""
        detail_tag = f"{{{env_ns}}}Detail"
    if detail is not None:
        etree.SubElement(fault, detail_tag).append(copy.deepcopy(detail))
    data: bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
    return data


def version_mismatch_envelope(
    version: SoapVersion, message: str, *, supported: Sequence[SoapVersion] = SUPPORTED
) -> bytes:
    """A ``VersionMismatch`` fault in ``version`` with an ``Upgrade`` header listing ``supported``."""
    return fault_envelope(version, "VersionMismatch", message, upgrade=supported)


def _response(version: SoapVersion, body: bytes, status: str) -> tuple[str, Headers, bytes]:
    return status, [("Content-Type", CONTENT_TYPES[version]), ("Content-Length", str(len(body)))], body


def fault_response(
    version: SoapVersion,
    code: str,
    message: str,
    *,
    detail: etree._Element | None = None,
    lang: str = "en",
    upgrade: Sequence[SoapVersion] | None = None,
    not_understood: Sequence[tuple[str, str]] = (),
    status: str = FAULT_STATUS,
) -> tuple[str, Headers, bytes]:
    """``(status, headers, body)`` of a fault response: HTTP 500 (see the module docstring), the version's
    Content-Type and a Content-Length."""
    body = fault_envelope(version, code, message, detail=detail, lang=lang, upgrade=upgrade,
                          not_understood=not_understood)
    return _response(version, body, status)


def version_mismatch_response(
    version: SoapVersion, message: str, *, supported: Sequence[SoapVersion] = SUPPORTED, status: str = FAULT_STATUS
) -> tuple[str, Headers, bytes]:
    """``(status, headers, body)`` of a ``VersionMismatch`` fault (HTTP 500 in both bindings)."""
    return _response(version, version_mismatch_envelope(version, message, supported=supported), status)


_UNAVAILABLE = (sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.DisconnectionError)


def fault_for_exception(exc: BaseException) -> tuple[str, str]:
    """``(fault code, message)`` for an exception that reached a SOAP face.

    A :class:`PregbridgeError` brings its own code and message (never patient data, by that class's
    contract). SQLAlchemy's DBAPI errors (``OperationalError`` and the rest), pool time-outs and
    disconnections are ``Server.Unavailable``. Anything else is ``Server`` / ``internal error``: the text of
    a foreign exception may hold SQL parameters or request content, so it never reaches the client.
    """
    if isinstance(exc, PregbridgeError):
        return exc.soap_fault_code, str(exc)
    if isinstance(exc, _UNAVAILABLE):
        return "Server.Unavailable", "the register is temporarily unavailable"
    return "Server", "internal error"
