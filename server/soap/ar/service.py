"""The spyne service of the AR contract (the shared WCF one, server/soap/wcf/service.py, named CommunicationParty)."""

from __future__ import annotations

from typing import Final

from spyne import ServiceBase

from server.soap.wcf.face import WcfFace
from server.soap.wcf.service import build_service as build_wcf_service
from server.soap.wcf.service import fault_of

__all__ = ["SERVICE_NAME", "build_service", "fault_of"]

SERVICE_NAME: Final = "CommunicationParty"


def build_service(face: WcfFace) -> type[ServiceBase]:
    return build_wcf_service(face, SERVICE_NAME)
