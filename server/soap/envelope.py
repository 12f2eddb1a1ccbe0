"""The SOAP guard's checks of an envelope's structure and header blocks (pure: a parsed element in, a verdict out).

:func:`envelope_problem` looks at a parsed SOAP 1.1 or 1.2 ``Envelope`` (the SOAP guard has already
checked that it is one, of a version it serves, and that it is well-formed and DTD-free) and says what
is wrong with it, if anything, so that the guard answers a fault before spyne runs:

* **Structure.** An Envelope holds an optional ``Header`` and then exactly one ``Body`` (SOAP 1.1 §4,
  SOAP 1.2 part 1 §5). No Body, a second Body, a second Header, a Header after the Body, or another
  element of the envelope namespace is ``Client.InvalidRequest``; so is any element after the Body in
  SOAP 1.2, which allows none (SOAP 1.1 allows namespace-qualified ones there; they are left alone).
  spyne read only the first Body of two and ignored the rest, so a second one was silently dropped.
* **Body.** It must hold exactly one element, the operation's: every contract served here is
  document/literal wrapped, whose Body has exactly one child (WS-I Basic Profile 1.1, R2201/R2210).
  An empty Body (spyne answered it with an internal ``Server`` fault) and a Body with a second element
  (spyne dropped it) are ``Client.InvalidRequest``.
* **mustUnderstand.** A header block addressed to this node (SOAP 1.1: no ``actor``, or ``…/actor/next``;
  SOAP 1.2: no ``role``, ``…/role/next`` or ``…/role/ultimateReceiver``) with ``mustUnderstand`` true
  (``1`` or ``true``) must be one the face processes; otherwise the message must not be processed
  (SOAP 1.1 §4.2.3, SOAP 1.2 part 1 §5.2.3) and the answer is a ``MustUnderstand`` fault — in SOAP 1.2
  with one ``NotUnderstood`` header block per such header (§5.4.8). Each face says what it understands
  (``understood``: Clark names ``{ns}local``, or ``{ns}*`` for every block of a namespace): PREG the
  WS-Security ``Security`` header it reads UsernameToken from; AR the WS-Addressing 1.0 headers of
  its SOAP 1.2 port.

The messages name elements, never their content.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from server.soap.faults import SOAP11_ENV, SOAP12_ENV, SoapVersion

__all__ = ["EnvelopeProblem", "envelope_problem"]

_FOR_US: Final[dict[SoapVersion, tuple[str, frozenset[str]]]] = {
    "1.1": ("actor", frozenset({"", "http://schemas.xmlsoap.org/soap/actor/next"})),
    "1.2": ("role", frozenset({"", f"{SOAP12_ENV}/role/next", f"{SOAP12_ENV}/role/ultimateReceiver"})),
}
_TRUE: Final = frozenset({"1", "true"})
_NAME_LIMIT: Final = 200


@dataclass(frozen=True, slots=True)
class EnvelopeProblem:
    """A fault to answer: ``code`` and ``message`` for the client, ``reason`` (fixed) for the log, and the
    ``(namespace, local name)`` of each header block that was not understood."""

    code: str
    message: str
    reason: str
    not_understood: tuple[tuple[str, str], ...] = ()


def _invalid(message: str, reason: str) -> EnvelopeProblem:
    return EnvelopeProblem("Client.InvalidRequest", message, reason)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _elements(parent: Any) -> list[Any]:
    return [child for child in parent if isinstance(child.tag, str)]  # no comments, no processing instructions


def envelope_problem(root: Any, version: SoapVersion, understood: Collection[str] = ()) -> EnvelopeProblem | None:
    """What is wrong with the envelope ``root`` of SOAP ``version`` (module docstring), or None."""
    env = SOAP11_ENV if version == "1.1" else SOAP12_ENV
    header_tag, body_tag = f"{{{env}}}Header", f"{{{env}}}Body"
    header = body = None
    for child in _elements(root):
        tag = child.tag
        if tag == body_tag:
            if body is not None:
                return _invalid("the SOAP envelope has more than one Body", "two Bodies")
            body = child
        elif tag == header_tag:
            if header is not None or body is not None:
                return _invalid("the SOAP envelope must have at most one Header, before the Body", "misplaced Header")
            header = child
        elif _split(tag)[0] == env:
            return _invalid(f"unexpected element {_split(tag)[1][:_NAME_LIMIT]} in the SOAP envelope",
                            "unknown envelope element")
        elif body is None or version == "1.2":
            return _invalid("the SOAP envelope may hold only a Header and a Body", "element outside Header and Body")
    if body is None:
        return _invalid("the SOAP envelope has no Body", "no Body")
    entries = _elements(body)
    if not entries:
        return _invalid("the SOAP Body is empty: it must hold the operation's element", "empty Body")
    if len(entries) > 1:
        return _invalid("the SOAP Body must hold exactly one element, the operation's", "several Body elements")
    if header is not None:
        return _not_understood(header, env, version, understood)
    return None


def _not_understood(header: Any, env: str, version: SoapVersion, understood: Collection[str]) -> EnvelopeProblem | None:
    target_attribute, for_us = _FOR_US[version]
    must, target = f"{{{env}}}mustUnderstand", f"{{{env}}}{target_attribute}"
    missing: list[tuple[str, str]] = []
    for block in _elements(header):
        if (block.get(must) or "").strip() not in _TRUE or (block.get(target) or "").strip() not in for_us:
            continue
        namespace, local = _split(block.tag)
        if block.tag not in understood and f"{{{namespace}}}*" not in understood:
            missing.append((namespace, local))
    if not missing:
        return None
    names = ", ".join(f"{{{ns}}}{local}" if ns else local for ns, local in missing)
    return EnvelopeProblem("MustUnderstand", f"header block(s) not understood: {names[:_NAME_LIMIT]}",
                           "mustUnderstand header not understood", tuple(missing))
