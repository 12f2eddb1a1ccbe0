"""Canonical XML comparison of a recorded SOAP answer with a replayed one.

Both documents are parsed with a safe parser (no entity resolution, no DTD loading, no network, no huge
trees) after a byte scan that refuses any ``<!DOCTYPE`` or ``<!ENTITY`` outright (SOAP forbids DTDs;
lxml C14N). Then each is normalised: comments and processing instructions dropped,
whitespace-only text removed, and QName *values* (``xsi:type`` and element text such as
``soap11env:Client.NotFound``) rewritten to ``{namespace}local`` so that the prefix a server chose never
matters. Equality is decided by lxml's C14N 2.0 serialisation with ``rewrite_prefixes=True`` (prefixes,
default namespaces versus prefixed ones, attribute order and namespace declaration placement all vanish)
rather than by a hand-written canonicaliser.

Ignore rules are XPath expressions (with the prefixes of :data:`NAMESPACES` plus the corpus' own),
applied to both sides: every matched element is removed with its subtree, a matched attribute is
removed, a matched text node is emptied. So the presence of an ignored node does not count either
(pregbridge sends no reply ``wsa:MessageID`` where WCF sometimes does).

The outcome is ``identical`` (canonically equal as recorded), ``equalAfterIgnores`` (equal once the
ignore rules are applied) or ``differs``, with a field-level diff: one line per differing node, named by
a readable path of local names (``/Envelope/Body/getPersonResponse/person/navn/fornavn``, with
``[k]`` where siblings share a name), the expected and actual value, missing and unexpected elements,
and element order differences reported once at their parent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from server.replay.result import Comparison, Difference, Outcome

__all__ = ["DEFAULT_XML_IGNORES", "NAMESPACES", "UnsafeXml", "compare_xml", "parse_xml"]

NAMESPACES: dict[str, str] = {
    "soap11": "http://schemas.xmlsoap.org/soap/envelope/",
    "soap12": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "preg": "urn:no:pregbridge:personregister:v1",
    "cp": "http://register.nhn.no/CommunicationParty",
    "common": "http://register.nhn.no/Common",
}

# Volatile values of the faces pregbridge answers. PREG's own elements are named by local-name() so the
# rules hold for any configured preg.namespace.
DEFAULT_XML_IGNORES: tuple[str, ...] = (
    "//wsa:MessageID",
    "//wsa:RelatesTo",
    "//wsu:Timestamp",
    "//*[local-name()='pingResponse']/*[local-name()='tidspunkt']",
    "//*[local-name()='requestHjelpenummerResponse']/*[local-name()='hjelpenummer']",
    "//*[local-name()='ServerTime']",
)

_XSI_TYPE = f"{{{NAMESPACES['xsi']}}}type"
_QNAME = re.compile(r"^([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)$")
_FORBIDDEN = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class UnsafeXml(ValueError):
    """The document carries a DTD or entity declaration; it is never parsed."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
                           remove_comments=True, remove_pis=True, dtd_validation=False)


def parse_xml(data: bytes) -> etree._Element:
    """Parse untrusted XML safely; :class:`UnsafeXml` for DTDs/entities, ``etree.XMLSyntaxError`` if malformed."""
    if _FORBIDDEN.search(data):
        raise UnsafeXml("the document carries a DTD or entity declaration; refused")
    return etree.fromstring(data, _parser())


def _resolve_qname(value: str, nsmap: Mapping[str | None, str]) -> str:
    m = _QNAME.match(value.strip())
    if m and m.group(1) in nsmap and m.group(1) != "xml":
        return f"{{{nsmap[m.group(1)]}}}{m.group(2)}"
    return value


def _normalise(root: etree._Element) -> etree._Element:
    """A copy without whitespace-only text, with QName values written as ``{ns}local``."""
    copy = etree.fromstring(etree.tostring(root), _parser())
    for el in copy.iter():
        if not isinstance(el.tag, str):
            continue
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if el.text is not None and len(el) == 0:
            el.text = _resolve_qname(el.text, el.nsmap)
        xsi_type = el.get(_XSI_TYPE)
        if xsi_type is not None:
            el.set(_XSI_TYPE, _resolve_qname(xsi_type, el.nsmap))
    return copy


def _apply_ignores(root: etree._Element, ignores: Sequence[str], namespaces: Mapping[str, str]) -> etree._Element:
    copy = etree.fromstring(etree.tostring(root), _parser())
    for xpath in ignores:
        found = copy.xpath(xpath, namespaces=dict(namespaces))
        for node in found if isinstance(found, list) else []:
            if isinstance(node, etree._Element):
                parent = node.getparent()
                if parent is not None:
                    parent.remove(node)
                else:
                    node.clear()
            elif isinstance(node, etree._ElementUnicodeResult):
                owner = node.getparent()
                if owner is None:
                    continue
                if node.is_attribute and node.attrname is not None:
                    del owner.attrib[node.attrname]
                elif node.is_text:
                    owner.text = None
                elif node.is_tail:
                    owner.tail = None
    return copy


def _canonical(root: etree._Element) -> str:
    return str(etree.canonicalize(root, rewrite_prefixes=True))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _name(tag: str) -> str:
    return tag if not tag.startswith("{") else f"{_local(tag)} ({tag[1:].split('}')[0]})"


@dataclass
class _Walk:
    differences: list[Difference]

    def element(self, exp: etree._Element, act: etree._Element, path: str) -> None:
        if exp.tag != act.tag:
            self.differences.append(Difference(path, None, None, f"element differs: expected {_name(str(exp.tag))} "
                                                                 f"got {_name(str(act.tag))}"))
            return
        for key in sorted(set(exp.attrib) | set(act.attrib)):
            ev, av = exp.get(key), act.get(key)
            if ev != av:
                self.differences.append(Difference(f"{path}/@{_local(str(key))}", ev, av))
        if (exp.text or None) != (act.text or None):
            self.differences.append(Difference(path, exp.text, act.text))
        ek = [c for c in exp if isinstance(c.tag, str)]
        ak = [c for c in act if isinstance(c.tag, str)]
        et, at = [str(c.tag) for c in ek], [str(c.tag) for c in ak]
        if et != at and sorted(et) == sorted(at):
            self.differences.append(Difference(
                path, None, None, "element order differs: expected " + ", ".join(_local(t) for t in et) +
                " got " + ", ".join(_local(t) for t in at)))
        by_e: dict[str, list[etree._Element]] = {}
        by_a: dict[str, list[etree._Element]] = {}
        for c in ek:
            by_e.setdefault(str(c.tag), []).append(c)
        for c in ak:
            by_a.setdefault(str(c.tag), []).append(c)
        for tag in dict.fromkeys(et + at):
            es, as_ = by_e.get(tag, []), by_a.get(tag, [])
            many = max(len(es), len(as_)) > 1
            for k in range(max(len(es), len(as_))):
                child = f"{path}/{_local(tag)}" + (f"[{k + 1}]" if many else "")
                if k >= len(as_):
                    self.differences.append(Difference(child, None, None, "missing element"
                                                       + _summary(es[k])))
                elif k >= len(es):
                    self.differences.append(Difference(child, None, None, "unexpected element"
                                                       + _summary(as_[k])))
                else:
                    self.element(es[k], as_[k], child)


def _summary(el: etree._Element) -> str:
    if len(el) == 0 and el.text:
        return f" (value {el.text[:80]!r})"
    return f" ({len(el)} child element(s))" if len(el) else ""


def _diff(exp: etree._Element, act: etree._Element) -> list[Difference]:
    walk = _Walk([])
    walk.element(exp, act, "/" + _local(str(exp.tag)))
    return walk.differences


def compare_xml(expected: bytes, actual: bytes, ignore: Iterable[str] = DEFAULT_XML_IGNORES,
                namespaces: Mapping[str, str] | None = None) -> Comparison:
    """Compare two XML documents canonically; ``ignore`` XPaths are applied to both sides."""
    ns = {**NAMESPACES, **(namespaces or {})}
    try:
        exp = _normalise(parse_xml(expected))
    except (UnsafeXml, etree.XMLSyntaxError) as exc:
        return Comparison(Outcome.ERROR, message=f"the recorded answer is not usable XML: {exc}")
    try:
        act = _normalise(parse_xml(actual))
    except (UnsafeXml, etree.XMLSyntaxError) as exc:
        return Comparison(Outcome.DIFFERS, (Difference("/", None, None, f"the answer is not usable XML: {exc}"),),
                          "1 difference(s)")
    if _canonical(exp) == _canonical(act) or not _diff(exp, act):
        return Comparison(Outcome.IDENTICAL)
    rules = list(ignore)
    try:
        exp_i, act_i = _apply_ignores(exp, rules, ns), _apply_ignores(act, rules, ns)
    except etree.XPathError as exc:
        return Comparison(Outcome.ERROR, message=f"an ignore rule is not a valid XPath: {exc}")
    if _canonical(exp_i) == _canonical(act_i):
        return Comparison(Outcome.EQUAL_AFTER_IGNORES, ignored=len(_diff(exp, act)))
    differences = _diff(exp_i, act_i)
    if not differences:
        return Comparison(Outcome.EQUAL_AFTER_IGNORES, ignored=len(_diff(exp, act)))
    return Comparison(Outcome.DIFFERS, tuple(differences), f"{len(differences)} difference(s)")
