"""spyne protocols for a contract whose bodies are built with lxml (adapters.preg).

spyne wraps an ``AnyXml`` return value in an element named after the output message, so a response
element built whole by the adapter would come out doubled (``<getPersonResponse><getPersonResponse>``).
These subclasses append an element that already has the expected name as it is. Request bodies are
read from ``ctx.in_body_doc`` (spyne hands a bare ``AnyXml`` argument only the first child).
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from spyne.protocol.soap import Soap11, Soap12

__all__ = ["PregSoap11", "PregSoap12"]


def _append_whole(self: Any, ctx: Any, cls: Any, inst: Any, parent: Any, ns: str, name: str, **kw: Any) -> None:
    if isinstance(inst, etree._Element) and inst.tag == f"{{{ns}}}{name}":
        parent.append(inst)
    else:
        super(type(self), self).any_xml_to_parent(ctx, cls, inst, parent, ns, name, **kw)


class PregSoap11(Soap11):  # type: ignore[misc]
    any_xml_to_parent = _append_whole


class PregSoap12(Soap12):  # type: ignore[misc]
    any_xml_to_parent = _append_whole
