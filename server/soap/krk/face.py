"""The KRK operations: GetAreasForHPRNumber, GetHPRNumbersForArea, SearchKommuneOverlegeInfo; audited as ``soap-krk``.

Built on the shared Grunndata seam (server/soap/wcf/face.py: authorisation, schema validation, one audit record
per call). NHN's contract documents only that the two lookups may throw ``ArgumentException``; the texts here
follow the ``ArgumentException: …`` pattern of NHN's other Grunndata services (GenericFault ErrorCode ``Feil``):

* ``GetAreasForHPRNumber``: a number that is not positive → ``HPR-nummer må oppgis``; a doctor registered
  nowhere gets an empty list (a valid answer: the doctor takes part in no kommuneoverlege function);
* ``GetHPRNumbersForArea``: not a 2024 kommunenummer (4 digits) or a bydelsnummer of Oslo, Bergen, Trondheim,
  Stavanger or Drammen (6 digits) → ``Ukjent kommune- eller bydelsnummer``;
* ``SearchKommuneOverlegeInfo``: a term of fewer than two characters → InvalidRequest (it would list the whole
  country); no match → an empty list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Final

from lxml import etree
from sqlalchemy import Engine

from adapters.krk import KRK, KrkEncoder
from adapters.wcf import child_text
from server.access import AccessProfile, AuditWriter
from server.soap.wcf.contract import WcfContract
from server.soap.wcf.errors import InvalidRequest, WcfFault
from server.soap.wcf.face import Call, WcfFace
from store import geo, krk
from store.engine import deadline, read_connection

__all__ = ["OPERATIONS", "KrkArgumentError", "KrkFace"]

OPERATIONS: Final = ("GetAreasForHPRNumber", "GetHPRNumbersForArea", "SearchKommuneOverlegeInfo")


class KrkArgumentError(WcfFault):
    error_code = "Feil"

    def __init__(self, what: str) -> None:
        super().__init__(f"ArgumentException: {what}")


class KrkFace(WcfFace):
    audit_face = "soap-krk"

    def __init__(self, engine: Engine, contract: WcfContract, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(engine, contract, profiles, audit, clock=clock)
        for op in OPERATIONS:
            self.handlers[op] = getattr(self, "_op_" + op)

    def _op_GetAreasForHPRNumber(self, body: etree._Element, call: Call) -> etree._Element:
        text = child_text(body, KRK, "hprNumber")
        number = int(text) if text else 0
        if number <= 0:
            raise KrkArgumentError("HPR-nummer må oppgis")
        call.asked.append(str(number))
        with read_connection(self.engine) as conn, deadline(conn):
            areas = krk.areas_for_hpr(conn, number)
        call.returned.extend(areas)
        return KrkEncoder.strings("GetAreasForHPRNumber", areas)

    def _op_GetHPRNumbersForArea(self, body: etree._Element, call: Call) -> etree._Element:
        area = child_text(body, KRK, "areaNumber") or ""
        call.asked.append(area[:6])
        known = (len(area) == 4 and geo.kommune(area) is not None) or (
            len(area) == 6 and area.isdigit() and area[:4] in krk.BYDEL_KOMMUNER)
        if not known:
            raise KrkArgumentError("Ukjent kommune- eller bydelsnummer")
        with read_connection(self.engine) as conn, deadline(conn):
            numbers = krk.hpr_for_area(conn, area)
        call.returned.extend(numbers)
        return KrkEncoder.strings("GetHPRNumbersForArea", numbers)

    def _op_SearchKommuneOverlegeInfo(self, body: etree._Element, call: Call) -> etree._Element:
        term = child_text(body, KRK, "searchTerm") or ""
        if len(term.strip()) < 2:
            raise InvalidRequest("searchTerm needs at least two characters")
        with read_connection(self.engine) as conn, deadline(conn):
            hits = krk.search(conn, term[:100])
        call.returned.extend(h.kommune.nummer for h in hits)
        return KrkEncoder.search("SearchKommuneOverlegeInfo", hits)
