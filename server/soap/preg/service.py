"""The spyne service of the PREG contract: one bare document/literal method per operation, all thin.

Each method hands the request element (``ctx.in_body_doc``), the WSGI environ and the SOAP headers to
:class:`~server.soap.preg.face.PregFace` and returns the element it builds; a
:class:`~store.errors.PregbridgeError` becomes a spyne ``Fault`` with the error's own code (only
``Client.*``/``Server.*`` codes, which both SOAP versions can carry); a database failure becomes
``Server.Unavailable`` and anything else ``Server`` / "internal error" (server.soap.faults), logged by
type only: spyne would otherwise answer its own untyped ``Server`` fault.
"""

from __future__ import annotations

import logging
from typing import Any

from spyne import AnyXml, Fault, ServiceBase, rpc

from server.soap.faults import fault_for_exception
from server.soap.preg.face import OPERATIONS, PregFace

__all__ = ["build_service"]

log = logging.getLogger("server.soap.preg")


def build_service(face: PregFace) -> type[ServiceBase]:
    def method(op: str) -> Any:
        def handler(ctx: Any, _request: Any) -> Any:
            try:
                return face.call(op, ctx.in_body_doc, ctx.transport.req_env, ctx.in_header_doc)
            except Exception as exc:  # noqa: BLE001 - every failure must leave as a typed fault, never spyne's own
                code, message = fault_for_exception(exc)
                if code == "Server" or code == "Server.Unavailable":
                    log.warning("%s failed: %s (%s)", op, code, type(exc).__name__)
                raise Fault(faultcode=code, faultstring=message) from None

        handler.__name__ = op
        return rpc(AnyXml, _body_style="bare", _in_message_name=op, _returns=AnyXml,
                   _out_message_name=f"{op}Response")(handler)

    namespace = {op: method(op) for op in OPERATIONS}
    namespace["__service_name__"] = "Personregister"
    namespace["__namespace__"] = face.contract.namespace
    return type("PersonregisterService", (ServiceBase,), namespace)
