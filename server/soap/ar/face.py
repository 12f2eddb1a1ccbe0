"""The AR operations: authorise, validate, query the store (store/ar.py), encode (adapters/ar.py), audit.

Transport-thin: the app (app.py) has already authenticated the caller (HTTP Basic, refused with 401 before
SOAP); spyne (service.py) hands each call here as the request element plus the WSGI environ. Every call,
answered or refused, writes one audit record with face ``soap-ar``: the account, the operation, the
HER-ids (or organisation numbers) asked for and the HER-ids returned, and the outcome (``ok`` or the
GenericFault ErrorCode). Every read runs under the statement deadline (:func:`store.engine.deadline`,
``[store] statement_timeout``): past it the store is answered as unavailable, never as an internal error.

Operations: the read operations an EPJ uses are answered from the store (:data:`READ_OPERATIONS`); the
contract's write operations and the remaining administrative reads answer GenericFault
``OperationNotSupported`` (docs/ar.md).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from lxml import etree
from sqlalchemy import Connection, Engine

from adapters.ar import ArEncoder, Related, request_ints, request_text, search_pairs
from server.access import AccessProfile, AuditWriter
from server.soap.ar.errors import InvalidHerId, InvalidOrganizationNumber, InvalidRequest
from server.soap.wcf.contract import WcfContract
from server.soap.wcf.face import ACCOUNT_KEY, Call, Handler, WcfFace
from store import ar
from store.engine import deadline, read_connection
from store.errors import InvalidInput

__all__ = ["ACCOUNT_KEY", "READ_OPERATIONS", "WRITE_OPERATIONS", "ArFace"]

READ_OPERATIONS: Final = (
    "Ping", "GetCommunicationPartyDetails", "GetOrganizationDetails", "GetServiceDetails",
    "GetOrganizationPersonDetails", "SearchById", "Search", "GetChangedCommunicationPartiesInfo",
    "GetOrganizationsOwnedBy", "GetAssosiatedIKSChildOrganizations", "GetAssosiatedIKSParentOrganizations",
    "GetCertificateDetailsForEncryption", "GetCertificateDetailsForValidatingSignature",
    "GetCertificateForEncryption", "GetCertificateForValidatingSignature",
    "GetCertificateForEncryptionByOrganizationNumber", "GetCertificateForValidatingSignatureByOrganizationNumber",
)
WRITE_OPERATIONS: Final = (
    "UpdateOrganizationPersonDetails", "UpdateServiceDetails", "UpdateOrganizationDetails",
    "UpdateOrganizationIKSAssociations", "CreateOrganizationPerson", "CreateService", "CreateOrganization",
    "EnableTransportOnOrganization", "SetCommunicationPartyValid", "AddCustomAttribute", "RemoveCustomAttribute",
    "UpdateCoverageAreas",
)
DEFAULT_PAGE_SIZE: Final = 20
MAX_PAGE_SIZE: Final = 100
MAX_HER_IDS: Final = 1000
FACET_NAMES: Final = {"type": ("Type", "Type"), "business_type": ("BusinessType", "Virksomhetstype"),
                      "kommune": ("Municipality", "Kommune")}
_USAGE: Final = {"Encryption": "encryption", "ValidatingSignature": "signing"}


_Call = Call  # the name the AR benchmark's static face uses


class ArFace(WcfFace):
    audit_face = "soap-ar"

    def __init__(self, engine: Engine, contract: WcfContract, profiles: Mapping[str, AccessProfile],
                 audit: AuditWriter, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        super().__init__(engine, contract, profiles, audit, clock=clock)
        for op in READ_OPERATIONS:
            self.handlers[op] = getattr(self, "_op_" + op, None) or self._dispatch_certificate(op)

    def not_offered(self, operation: str) -> str:
        if operation in WRITE_OPERATIONS:
            return f"{operation}: pregbridge offers AR for reading only; write operations are not offered"
        return f"{operation} is not offered by pregbridge (docs/ar.md lists the operations offered)"

    # -- helpers ----------------------------------------------------------------------------------

    def _encoder(self, related: Related | None = None) -> ArEncoder:
        return ArEncoder(self.clock(), related)

    @staticmethod
    def _her_id(body: etree._Element, call: Call, name: str = "herId") -> int:
        text = request_text(body, name)
        if text is None:
            raise InvalidHerId()
        call.asked.append(text[:11])
        return int(text)

    def _party(self, conn: Connection, her_id: int, kind: str | None = None) -> dict[str, Any]:
        doc = ar.get(conn, her_id)
        if doc is None or (kind is not None and doc.get("type") != kind):
            raise InvalidHerId()
        return doc

    @staticmethod
    def _related_for_list(conn: Connection, docs: Sequence[Mapping[str, Any]]) -> Related:
        return Related(hpr=ar.hpr_records(conn, [d["hprNumber"] for d in docs if d.get("hprNumber") is not None]))

    @staticmethod
    def _related_for(conn: Connection, doc: Mapping[str, Any]) -> Related:
        """What encoding ``doc`` whole needs: an organisation's children, a person's office, HPR records."""
        her_id = int(doc["herId"])
        kids: dict[int, list[dict[str, Any]]] = {}
        parties: dict[int, dict[str, Any]] = {}
        if doc.get("type") == "Organization":
            kids = ar.children(conn, [her_id])
        elif doc.get("type") == "Person" and isinstance(doc.get("parentHerId"), int):
            parties = ar.get_many(conn, [doc["parentHerId"]])
        people = [doc, *kids.get(her_id, [])]
        hpr = ar.hpr_records(conn, [p["hprNumber"] for p in people if p.get("hprNumber") is not None])
        return Related(hpr=hpr, children=kids, parties=parties)

    def _details(self, op: str, body: etree._Element, call: Call, kind: str | None) -> etree._Element:
        her_id = self._her_id(body, call)
        with read_connection(self.engine) as conn, deadline(conn):
            doc = self._party(conn, her_id, kind)
            related = self._related_for(conn, doc)
        call.returned.append(str(her_id))
        enc = self._encoder(related)
        r = enc.response(op)
        enc.party(r, f"{op}Result", doc, typed=kind is None)
        return r

    def _organizations(self, op: str, docs: Sequence[Mapping[str, Any]], conn: Connection, call: Call
                       ) -> etree._Element:
        enc = self._encoder(self._related_for_list(conn, docs))
        r = enc.response(op)
        enc.parties(r, f"{op}Result", "Organization", docs)
        call.returned.extend(str(d["herId"]) for d in docs)
        return r

    # -- operations -------------------------------------------------------------------------------

    def _op_Ping(self, body: etree._Element, call: Call) -> etree._Element:
        r = ArEncoder.response("Ping")
        ArEncoder.result(r, "Ping", "Pong")
        return r

    def _op_GetCommunicationPartyDetails(self, body: etree._Element, call: Call) -> etree._Element:
        return self._details("GetCommunicationPartyDetails", body, call, None)

    def _op_GetOrganizationDetails(self, body: etree._Element, call: Call) -> etree._Element:
        return self._details("GetOrganizationDetails", body, call, "Organization")

    def _op_GetServiceDetails(self, body: etree._Element, call: Call) -> etree._Element:
        return self._details("GetServiceDetails", body, call, "Service")

    def _op_GetOrganizationPersonDetails(self, body: etree._Element, call: Call) -> etree._Element:
        return self._details("GetOrganizationPersonDetails", body, call, "Person")

    def _op_SearchById(self, body: etree._Element, call: Call) -> etree._Element:
        asked = (request_text(body, "id") or "").strip()
        call.asked.append(asked[:11])
        with read_connection(self.engine) as conn, deadline(conn):
            docs: list[dict[str, Any]] = []
            if asked.isdigit() and len(asked) <= 10:
                if len(asked) == 9:
                    docs.extend(ar.by_organization_number(conn, asked))
                if int(asked) <= 2**31 - 1:
                    found = ar.get(conn, int(asked))
                    if found is not None and all(d["herId"] != found["herId"] for d in docs):
                        docs.append(found)
            enc = self._encoder(self._related_for_list(conn, docs))
        r = enc.response("SearchById")
        enc.parties(r, "SearchByIdResult", "CommunicationParty", docs)
        call.returned.extend(str(d["herId"]) for d in docs)
        return r

    def _op_Search(self, body: etree._Element, call: Call) -> etree._Element:
        page, size, pairs = search_pairs(body)
        page_size = DEFAULT_PAGE_SIZE if not size or size < 1 else min(size, MAX_PAGE_SIZE)
        try:
            query = ar.parse_constraints(pairs, page=page, page_size=page_size)
        except InvalidInput as exc:
            raise InvalidRequest(str(exc)) from None
        call.asked.extend(v[:11] for k, v in pairs if v and k.lower() in ("herid", "organizationnumber"))
        with read_connection(self.engine) as conn, deadline(conn):
            found = ar.search(conn, query)
            enc = self._encoder(self._related_for_list(conn, found.parties))
        r = enc.response("Search")
        enc.search_result(r, "SearchResult", found.total, found.parties, found.facets, found.texts, FACET_NAMES)
        call.returned.extend(str(d["herId"]) for d in found.parties)
        return r

    def _op_GetChangedCommunicationPartiesInfo(self, body: etree._Element, call: Call) -> etree._Element:
        her_ids = request_ints(body, "herIds")
        if len(her_ids) > MAX_HER_IDS:
            raise InvalidRequest(f"at most {MAX_HER_IDS} HER-ids per call")
        with read_connection(self.engine) as conn, deadline(conn):
            rows = ar.last_changed(conn, her_ids)
        r = ArEncoder.response("GetChangedCommunicationPartiesInfo")
        ArEncoder.last_changed(r, "GetChangedCommunicationPartiesInfoResult", rows)
        return r

    def _op_GetOrganizationsOwnedBy(self, body: etree._Element, call: Call) -> etree._Element:
        her_id = self._her_id(body, call)
        with read_connection(self.engine) as conn, deadline(conn):
            self._party(conn, her_id)
            return self._organizations("GetOrganizationsOwnedBy", ar.owned_by(conn, her_id), conn, call)

    def _op_GetAssosiatedIKSChildOrganizations(self, body: etree._Element, call: Call) -> etree._Element:
        return self._iks("GetAssosiatedIKSChildOrganizations", body, call)

    def _op_GetAssosiatedIKSParentOrganizations(self, body: etree._Element, call: Call) -> etree._Element:
        return self._iks("GetAssosiatedIKSParentOrganizations", body, call)

    def _iks(self, op: str, body: etree._Element, call: Call) -> etree._Element:
        """IKS (inter-municipal company) associations: the store holds none, so a known HER-id has none."""
        her_id = self._her_id(body, call)
        with read_connection(self.engine) as conn, deadline(conn):
            self._party(conn, her_id)
            return self._organizations(op, [], conn, call)

    def _dispatch_certificate(self, op: str) -> Handler:
        if not op.startswith(("GetCertificateFor", "GetCertificateDetailsFor")):
            raise AssertionError(f"no handler for {op}")
        details = op.startswith("GetCertificateDetailsFor")
        by_org = op.endswith("ByOrganizationNumber")
        purpose = op.removeprefix("GetCertificateDetailsFor").removeprefix("GetCertificateFor")
        usage = _USAGE[purpose.removesuffix("ByOrganizationNumber")]

        def handler(body: etree._Element, call: Call) -> etree._Element:
            with read_connection(self.engine) as conn:
                if by_org:
                    number = request_text(body, "organizationNumber") or ""
                    call.asked.append(number[:11])
                    docs = ar.by_organization_number(conn, number.lstrip("0") or "0")
                    if not docs:
                        raise InvalidOrganizationNumber()
                    doc = docs[0]
                else:
                    doc = self._party(conn, self._her_id(body, call))
                cert = ar.certificate_for(conn, doc, usage)
            call.returned.append(str(doc["herId"]))
            r = ArEncoder.response(op)
            if cert is None:
                ArEncoder.nil_result(r, op)
            elif details:
                ArEncoder.certificate_details(r, f"{op}Result", ar.certificate_der(cert), cert.get("ldapUrl"))
            else:
                ArEncoder.result(r, op, base64.b64encode(ar.certificate_der(cert)).decode("ascii"))
            return r

        return handler
