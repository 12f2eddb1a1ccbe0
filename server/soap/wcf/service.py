"""The spyne service of a Grunndata contract: one bare document/literal method per WSDL operation, all thin.

Each method hands the request element (``ctx.in_body_doc``) and the WSGI environ to the face
(:class:`~server.soap.wcf.face.WcfFace`) and returns the element it builds. Any exception becomes a spyne
``Fault`` carrying a ``GenericFault{ErrorCode, Message}`` detail (:func:`server.soap.wcf.errors.generic_fault_for`
decides the code; protocol.py writes the detail in the SOAP 1.1 or 1.2 shape), with ``Reason``/``faultstring``
in ``nb-NO`` as WCF answers. Unexpected failures are logged by type only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from spyne import AnyXml, Fault, ServiceBase, rpc

from adapters.wcf import generic_fault
from server.soap.wcf.errors import generic_fault_for

if TYPE_CHECKING:
    from server.soap.wcf.face import WcfFace

__all__ = ["build_service", "fault_of"]

log = logging.getLogger("server.soap.wcf")


def fault_of(exc: BaseException) -> Fault:
    code, error_code, message = generic_fault_for(exc)
    fault = Fault(faultcode=code, faultstring=message, lang="nb-NO")
    fault.generic_fault = generic_fault(error_code, message)
    return fault


def build_service(face: WcfFace, service_name: str) -> type[ServiceBase]:
    def method(op: str) -> Any:
        def handler(ctx: Any, _request: Any) -> Any:
            try:
                return face.call(op, ctx.in_body_doc, ctx.transport.req_env)
            except Exception as exc:  # noqa: BLE001 - every failure leaves as a GenericFault, never spyne's own
                fault = fault_of(exc)
                if fault.faultcode == "Server":
                    log.warning("%s %s failed: %s", face.audit_face, op, type(exc).__name__)
                raise fault from None

        handler.__name__ = op
        return rpc(AnyXml, _body_style="bare", _in_message_name=op, _returns=AnyXml,
                   _out_message_name=f"{op}Response")(handler)

    namespace: dict[str, Any] = {op: method(op) for op in face.contract.operations}
    namespace["__service_name__"] = service_name
    namespace["__namespace__"] = face.contract.namespace
    return type(f"{service_name}Service", (ServiceBase,), namespace)
