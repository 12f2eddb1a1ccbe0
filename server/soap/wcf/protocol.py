"""spyne protocols of the Grunndata faces: whole lxml responses, GenericFault details, WS-Addressing on 1.2.

* Responses are built whole by the face's adapter and appended as they are (server.soap.anyxml).
* ``type_namespace`` (optional): appending into spyne's envelope rebinds the contract's default namespace
  to spyne's ``tns`` prefix, which would leave an ``i:type="Organization"`` pointing at no namespace; given
  the namespace its ``i:type`` values belong to, every ``i:type`` is re-qualified after serialisation (one
  XPath pass). Contracts without polymorphic members leave it out.
* Faults have WCF's shape: no empty ``faultactor``/``Role``; a fault raised with a ``generic_fault``
  attribute (an lxml ``GenericFault`` element) gets it as its ``detail`` (SOAP 1.1) or ``Detail``
  (SOAP 1.2); spyne's Soap12 accepts only dict details.
* The SOAP 1.2 port is WCF's WSHttpBinding with ``wsam:Addressing``/``AnonymousResponses``: every answer
  carries ``wsa:Action`` (``mustUnderstand="1"``, as WCF writes it) with the operation's output action from
  the WSDL (the GenericFault action for a GenericFault; the WS-Addressing fault action otherwise), and
  ``wsa:RelatesTo`` with the request's ``wsa:MessageID`` when it had one. A reply needs no
  ``wsa:MessageID`` of its own (WS-Addressing 1.0 §3.4 requires it only when a reply is expected; WCF does
  not send one on a reply), so none is added.
"""

from __future__ import annotations

from typing import Any, Final

from lxml import etree
from spyne.protocol.soap import Soap11, Soap12

from adapters.wcf import XSI
from server.soap.anyxml import WholeElementMixin
from server.soap.wcf.contract import WcfContract

__all__ = ["WSA", "WcfSoap11", "WcfSoap12"]

WSA: Final = "http://www.w3.org/2005/08/addressing"
_WSA_FAULT: Final = f"{WSA}/soap/fault"
_TYPED = etree.XPath("//*[@xsi:type]", namespaces={"xsi": XSI})
_XSI_TYPE: Final = f"{{{XSI}}}type"


def _requalify_types(document: Any, namespace: str) -> None:
    for el in _TYPED(document):
        local = el.get(_XSI_TYPE).rpartition(":")[2]
        el.set(_XSI_TYPE, etree.QName(namespace, local))


def _append_detail(parent: Any, inst: Any, tag: str, actor: str) -> None:
    if not len(parent):
        return
    fault = parent[-1]
    empty_actor = fault.find(actor)
    if empty_actor is not None and not (empty_actor.text or "").strip():
        fault.remove(empty_actor)  # WCF writes no faultactor/Role; spyne an empty one
    detail = getattr(inst, "generic_fault", None)
    if detail is not None:
        etree.SubElement(fault, tag).append(detail)


class WcfSoap11(WholeElementMixin, Soap11):  # type: ignore[misc]
    def __init__(self, *args: Any, contract: WcfContract, type_namespace: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.contract = contract
        self.type_namespace = type_namespace

    def serialize(self, ctx: Any, message: Any) -> None:
        super().serialize(ctx, message)
        if (self.type_namespace and message is self.RESPONSE and ctx.out_document is not None
                and ctx.out_error is None):
            _requalify_types(ctx.out_document, self.type_namespace)

    def fault_to_parent(self, ctx: Any, cls: Any, inst: Any, parent: Any, ns: str, **kw: Any) -> Any:
        result = super().fault_to_parent(ctx, cls, inst, parent, ns, **kw)
        _append_detail(parent, inst, "detail", "faultactor")
        return result


class WcfSoap12(WholeElementMixin, Soap12):  # type: ignore[misc]
    def __init__(self, *args: Any, contract: WcfContract, type_namespace: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.contract = contract
        self.type_namespace = type_namespace

    def fault_to_parent(self, ctx: Any, cls: Any, inst: Any, parent: Any, ns: str, **kw: Any) -> Any:
        result = super().fault_to_parent(ctx, cls, inst, parent, ns, **kw)
        _append_detail(parent, inst, f"{{{self.ns_soap_env}}}Detail", f"{{{self.ns_soap_env}}}Role")
        return result

    def serialize(self, ctx: Any, message: Any) -> None:
        super().serialize(ctx, message)
        if message is self.RESPONSE and ctx.out_document is not None:
            if self.type_namespace and ctx.out_error is None:
                _requalify_types(ctx.out_document, self.type_namespace)
            self._address(ctx)

    def _address(self, ctx: Any) -> None:
        operation = (ctx.method_request_string or "").rpartition("}")[2]
        if ctx.out_error is not None:
            generic = getattr(ctx.out_error, "generic_fault", None) is not None
            out_action = (self.contract.fault_action(operation) if generic and operation else "") or _WSA_FAULT
        else:
            out_action = self.contract.output_action(operation)
        message_id = None
        for header in ctx.in_header_doc or ():
            if getattr(header, "tag", None) == f"{{{WSA}}}MessageID":
                message_id = (header.text or "").strip()
        envelope = ctx.out_document
        header_el = envelope.find(f"{{{self.ns_soap_env}}}Header")
        if header_el is None:
            header_el = etree.Element(f"{{{self.ns_soap_env}}}Header")
            envelope.insert(0, header_el)
        act = etree.SubElement(header_el, f"{{{WSA}}}Action", nsmap={"a": WSA})
        act.set(f"{{{self.ns_soap_env}}}mustUnderstand", "1")
        act.text = out_action
        if message_id:
            etree.SubElement(header_el, f"{{{WSA}}}RelatesTo", nsmap={"a": WSA}).text = message_id
