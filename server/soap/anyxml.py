"""A spyne protocol mixin for contracts whose response bodies are built whole with lxml.

spyne wraps an ``AnyXml`` return value in an element named after the output message, so a response element
built whole by an adapter would come out doubled (``<PingResponse><PingResponse>``). Mixed in before a
spyne ``Soap11``/``Soap12`` class, :class:`WholeElementMixin` appends an element that already has the
expected name as it is, and leaves anything else to spyne. (The PREG face has the same rule in
server/soap/preg/protocol.py; this is the general form, for the AR face and the faces after it.)
"""

from __future__ import annotations

from typing import Any

from lxml import etree

__all__ = ["WholeElementMixin"]


class WholeElementMixin:
    def any_xml_to_parent(self, ctx: Any, cls: Any, inst: Any, parent: Any, ns: str, name: str, **kw: Any) -> Any:
        if isinstance(inst, etree._Element) and inst.tag == f"{{{ns}}}{name}":
            parent.append(inst)
            return None
        return super().any_xml_to_parent(ctx, cls, inst, parent, ns, name, **kw)  # type: ignore[misc]
