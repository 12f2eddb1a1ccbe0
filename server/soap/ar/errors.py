"""The AR face's faults: the shared WCF faults (server/soap/wcf/errors.py) and AR's own leaves.

    PregbridgeError
    └── WcfFault                         GenericFault on the wire (SOAP Client/Sender unless noted)
        ├── InvalidRequest               ErrorCode InvalidRequest (schema-invalid body, bad search)
        ├── OperationNotSupported        ErrorCode OperationNotSupported (writes; reads not offered)
        └── ArFault
            ├── InvalidHerId             ErrorCode InvalidHerIdSupplied (the real AR's code and text)
            └── InvalidOrganizationNumber  ErrorCode InvalidOrganizationNumberSupplied

Foreign exceptions become a GenericFault at the shared seam, :func:`server.soap.wcf.errors.generic_fault_for`.
"""

from __future__ import annotations

from server.soap.wcf.errors import InvalidRequest, OperationNotSupported, WcfFault, generic_fault_for

__all__ = [
    "ArFault",
    "InvalidHerId",
    "InvalidOrganizationNumber",
    "InvalidRequest",
    "OperationNotSupported",
    "generic_fault_for",
]


class ArFault(WcfFault):
    pass


class InvalidHerId(ArFault):
    error_code = "InvalidHerIdSupplied"

    def __init__(self) -> None:
        super().__init__("Kommunikasjonspart med oppgitt HER-id eksisterer ikke.")


class InvalidOrganizationNumber(ArFault):
    error_code = "InvalidOrganizationNumberSupplied"

    def __init__(self) -> None:
        super().__init__("Virksomhet med oppgitt organisasjonsnummer eksisterer ikke.")
