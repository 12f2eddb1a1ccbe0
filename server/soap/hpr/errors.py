"""The HPR face's faults: GenericFault ``ErrorCode`` ``Feil`` with ``ArgumentException: …`` texts.

    PregbridgeError
    └── WcfFault                          (server/soap/wcf/errors.py: InvalidRequest, OperationNotSupported, …)
        └── HprArgumentError              ErrorCode Feil, message "ArgumentException: <what>"
            ├── HprNumberNotFound         "HPR-nummer ikke funnet"        (NHN's own text)
            ├── PersonNumberNotFound      "Personnummer ikke funnet"      (NHN's own text)
            ├── HprNumberMissing          "HPR-nummer må oppgis"          (NHN's own text)
            └── ApprovalNotFound          "Godkjenning ikke funnet"

The three texts marked are the ones a public HPR client (navikt/syfohelsenettproxy) matches NHN's fault
messages against (docs/hpr.md); the last follows their pattern. The ErrorCode HPR sends is not public; ``Feil``
is what NHN's FLR, built on the same platform, sends with the same kind of message. Messages never carry
person data.
"""

from __future__ import annotations

from server.soap.wcf.errors import WcfFault

__all__ = ["ApprovalNotFound", "HprArgumentError", "HprNumberMissing", "HprNumberNotFound", "PersonNumberNotFound"]


class HprArgumentError(WcfFault):
    error_code = "Feil"

    def __init__(self, what: str) -> None:
        super().__init__(f"ArgumentException: {what}")


class HprNumberNotFound(HprArgumentError):
    def __init__(self) -> None:
        super().__init__("HPR-nummer ikke funnet")


class PersonNumberNotFound(HprArgumentError):
    def __init__(self) -> None:
        super().__init__("Personnummer ikke funnet")


class HprNumberMissing(HprArgumentError):
    def __init__(self) -> None:
        super().__init__("HPR-nummer må oppgis")


class ApprovalNotFound(HprArgumentError):
    def __init__(self) -> None:
        super().__init__("Godkjenning ikke funnet")
