"""The WCF conventions every NHN Grunndata face shares (AR, FLR, HPR, KRK), in one place.

NHN's Grunndata services are WCF services, each with a ``BasicHttpBinding`` port (SOAP 1.1, ``…/Basic``) and a
``WSHttpBinding`` port (SOAP 1.2 + WS-Addressing), HTTP Basic at the transport, and ``GenericFault`` details.
This package holds all of that; a new face supplies only its own parts:

1. the contract: ``load_contract(wsdl_file, public_base_url, path)`` (:mod:`.contract`) of a WSDL kept in
   ``wsdl/`` (NHN's real one, or one written in the same conventions);
2. a :class:`WcfFace` subclass: ``audit_face`` (the audit trail's face name), one handler per answered
   operation in ``self.handlers`` (request element + :class:`Call` → response element, built whole by the
   face's adapter with :mod:`adapters.wcf`'s DataContract helpers), and optionally ``authorize`` (roles) and
   ``not_offered`` (the OperationNotSupported text);
3. its faults as :class:`WcfFault` leaves (``error_code`` and message as the real service words them);
4. ``build_wcf_app(face, authenticator, realm=…, service_name=…)``, mounted by server/bootstrap.py at both
   paths.

What the package does for it: the served WSDL with our addresses, schema validation of every request,
authentication (401 before SOAP), authorisation and one audit record per call, GenericFault faults in the
request's SOAP version, ``wsa:Action``/``wsa:RelatesTo`` on the SOAP 1.2 port, and the SOAP guard.
"""

from server.soap.wcf.app import WsgiApp, build_wcf_app
from server.soap.wcf.contract import WcfContract, compile_schemas, load_contract
from server.soap.wcf.errors import InvalidRequest, OperationNotSupported, WcfFault, generic_fault_for
from server.soap.wcf.face import ACCOUNT_KEY, Call, Handler, WcfFace
from server.soap.wcf.protocol import WSA, WcfSoap11, WcfSoap12
from server.soap.wcf.service import build_service, fault_of

__all__ = [
    "ACCOUNT_KEY",
    "WSA",
    "Call",
    "Handler",
    "InvalidRequest",
    "OperationNotSupported",
    "WcfContract",
    "WcfFace",
    "WcfFault",
    "WcfSoap11",
    "WcfSoap12",
    "WsgiApp",
    "build_service",
    "build_wcf_app",
    "compile_schemas",
    "fault_of",
    "generic_fault_for",
    "load_contract",
]
