"""KRK register hits → the wire types of IKrkService (wsdl/nhn-krk.wsdl): pure, no I/O.

The contract (NHN's ``IKrkService``, published as C# data contracts only; docs/krk.md) puts
``KommuneoverlegeInfo`` (a ``[DataContract]``) in ``http://schemas.nhn.no/reg/krk`` and ``SearchResult``
and ``Area`` (plain classes, which WCF serialises in their CLR namespace) in
``http://schemas.datacontract.org/2004/07/NHN.DtoContracts.Krk.Data``; collections of strings are
``ArrayOfstring`` in the serialisation Arrays namespace. Members go out in ordinal order (adapters/wcf.py):
``SearchResult{CountyName, CoveredMunicipalities, KommuneoverlegeInfos, MunicipalityName}``,
``KommuneoverlegeInfo{District, EmailAddress, PhoneNumber, PublicSafetyNetworkNumber}``, ``Area{Id, Name}``.
``District`` is nil for a kommune's own contact and the bydel for a bydel's; the phone number goes out as
its 8 digits; a missing nødnett number is nil.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from lxml import etree

from adapters.wcf import ARRAYS, XSI, members, sub
from store.krk import Contact, KrkHit

__all__ = ["DATA", "KRK", "KrkEncoder"]

KRK: Final = "http://schemas.nhn.no/reg/krk"
DATA: Final = "http://schemas.datacontract.org/2004/07/NHN.DtoContracts.Krk.Data"
NSMAP: Final = {None: KRK, "i": XSI, "a": DATA, "b": ARRAYS}


def _area(el: etree._Element, number: str, name: str) -> None:
    members(el, DATA, {"Id": number, "Name": name})


def _info(el: etree._Element, c: Contact) -> None:
    district = (lambda d: _area(d, c.bydel or "", c.bydel_name or "")) if c.bydel else None
    members(el, KRK, {"District": district, "EmailAddress": c.email, "PhoneNumber": c.phone,
                      "PublicSafetyNetworkNumber": c.issi})


def _hit(el: etree._Element, hit: KrkHit) -> None:
    def covered(arr: etree._Element) -> None:
        for k in hit.covered:
            _area(sub(arr, DATA, "Area"), k.nummer, k.navn)

    def infos(arr: etree._Element) -> None:
        for c in hit.contacts:
            _info(sub(arr, KRK, "KommuneoverlegeInfo"), c)

    members(el, DATA, {"CountyName": hit.kommune.fylkesnavn, "CoveredMunicipalities": covered,
                       "KommuneoverlegeInfos": infos, "MunicipalityName": hit.kommune.navn})


class KrkEncoder:
    """Whole ``<Op>Response`` elements of the KRK contract."""

    @staticmethod
    def response(operation: str) -> etree._Element:
        return etree.Element(f"{{{KRK}}}{operation}Response", nsmap=NSMAP)  # type: ignore[dict-item]

    @classmethod
    def strings(cls, operation: str, values: Iterable[str]) -> etree._Element:
        r = cls.response(operation)
        result = sub(r, KRK, f"{operation}Result")
        for v in values:
            sub(result, ARRAYS, "string", v)
        return r

    @classmethod
    def search(cls, operation: str, hits: Sequence[KrkHit]) -> etree._Element:
        r = cls.response(operation)
        result = sub(r, KRK, f"{operation}Result")
        for hit in hits:
            _hit(sub(result, DATA, "SearchResult"), hit)
        return r
