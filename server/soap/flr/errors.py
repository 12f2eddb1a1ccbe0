"""The FLR face's faults: GenericFault ``ErrorCode`` ``Feil`` with the ``ArgumentException: …`` texts FLR uses.

    PregbridgeError
    └── WcfFault                          (server/soap/wcf/errors.py: InvalidRequest, OperationNotSupported, …)
        └── FlrArgumentError              ErrorCode Feil, message "ArgumentException: <what>"
            ├── InvalidPatientNin         "patientNin er ugyldig"                          (NHN's own text)
            ├── NoGP                      "Personen er ikke tilknyttet fastlegekontrakt"   (NHN's own text)
            ├── ContractNotFound          "Fastlegeavtalen finnes ikke"
            └── …                         the rest of :class:`FlrArgumentError`'s uses in face.py

The two texts marked are as NHN's FLR answers them (captured responses in a public client's tests,
docs/flr.md); the others follow the same pattern, in the DTO contract's own words where it gives them.
Messages never carry person data.
"""

from __future__ import annotations

from server.soap.wcf.errors import WcfFault

__all__ = ["ContractNotFound", "FlrArgumentError", "InvalidPatientNin", "NoGP"]


class FlrArgumentError(WcfFault):
    error_code = "Feil"

    def __init__(self, what: str) -> None:
        super().__init__(f"ArgumentException: {what}")


class InvalidPatientNin(FlrArgumentError):
    def __init__(self) -> None:
        super().__init__("patientNin er ugyldig")


class NoGP(FlrArgumentError):
    def __init__(self) -> None:
        super().__init__("Personen er ikke tilknyttet fastlegekontrakt")


class ContractNotFound(FlrArgumentError):
    def __init__(self) -> None:
        super().__init__("Fastlegeavtalen finnes ikke")
