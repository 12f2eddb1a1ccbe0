"""Adresseregisteret (AR) queries over ``ar_party``: lookups, children, search, changes and certificates.

Every query goes through an index: the primary key (HER-id), ``parent_her_id``, ``organization_number``,
``ar_name_word`` (one row per name word, searched by prefix range), ``kommune``/``party_type``/
``business_type`` and ``last_changed`` (store/schema.py, migration 0003). A search must name at least one
constraint, so that its count and facets are computed over an indexed subset, never the whole table.

Parties are returned as their documents (docs/registers.md, ``ar.jsonl``); turning them into the AR wire
types is adapters/ar.py's business. Organisation persons are linked to their HPR record
(:func:`hpr_records`) for ``Person.HPRInformation``.

Certificates: the demo register holds certificate *metadata* (serial, subject, issuer, validity, LDAP URL)
and no certificate bytes. :func:`certificate_der` makes a syntactically valid X.509 certificate from that
metadata, self-signed with an Ed25519 key derived from the serial number: deterministic (the same bytes in
every process, for every call), parseable by any X.509 library, and plainly fake (the issuer says
"NOT A REAL CERTIFICATE"). A site with real certificates stores their DER in the document
(``certificates[].der``, base64) and that is returned instead.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, func, select

from store import schema as s
from store.errors import InvalidInput
from store.normalize import name_tokens

__all__ = [
    "FACETS",
    "PARTY_TYPES",
    "SEARCH_KEYS",
    "SearchPage",
    "SearchQuery",
    "by_organization_number",
    "certificate_der",
    "certificate_for",
    "children",
    "get",
    "get_many",
    "hpr_records",
    "last_changed",
    "owned_by",
    "parse_constraints",
    "search",
]

# AR's CommunicationPartyType names as stored (an organisation person is "Person")
PARTY_TYPES: Final = ("Organization", "Service", "Person")
_TYPE_ALIASES: Final = {
    "organization": "Organization", "organisation": "Organization", "org": "Organization",
    "service": "Service", "tjeneste": "Service",
    "person": "Person", "organizationperson": "Person", "organisationperson": "Person",
}

# Search constraint key (lower-cased, as asked) -> the field it filters (docs/ar.md)
SEARCH_KEYS: Final = {
    "name": "name", "navn": "name", "displayname": "name",
    "type": "type", "communicationpartytype": "type",
    "businesstype": "business_type", "businesstypecode": "business_type",
    "municipality": "kommune", "municipalitycode": "kommune", "kommune": "kommune", "kommunenummer": "kommune",
    "herid": "her_id",
    "organizationnumber": "organization_number", "orgnumber": "organization_number",
    "organisationnumber": "organization_number", "orgno": "organization_number",
    "parentherid": "parent_her_id",
}
FACETS: Final = ("type", "business_type", "kommune")
MAX_NAME_WORDS: Final = 6


@dataclass(frozen=True)
class SearchQuery:
    """AND of the constraints given; ``page`` is 1-based."""

    name_words: tuple[str, ...] = ()
    party_type: str | None = None
    business_type: str | None = None
    kommune: str | None = None
    her_id: int | None = None
    organization_number: str | None = None
    parent_her_id: int | None = None
    page: int = 1
    page_size: int = 20


@dataclass(frozen=True)
class SearchPage:
    total: int
    parties: list[dict[str, Any]]
    # facet field -> [(value, hits)], most hits first
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    # facet value -> a display text (kommune name, business type text)
    texts: dict[tuple[str, str], str] = field(default_factory=dict)


def _int(value: str, key: str) -> int:
    v = value.strip()
    if not v.isdigit() or len(v) > 10:
        raise InvalidInput(f"search constraint {key} must be a number")
    return int(v)


def parse_constraints(pairs: Iterable[tuple[str, str | None]], *, page: int, page_size: int) -> SearchQuery:
    """A :class:`SearchQuery` from AR ``SearchConstraints`` key/value pairs (keys case-insensitive).

    Raises :class:`InvalidInput` for an unknown key or a malformed value. No constraint at all (a search
    with only ``Page`` and ``PageSize``, as real clients send to list the register) is the empty query:
    every party, one page of them.
    """
    values: dict[str, Any] = {}
    for raw_key, raw_value in pairs:
        key = (raw_key or "").strip()
        target = SEARCH_KEYS.get(key.lower().replace("_", "").replace("-", ""))
        if target is None:
            raise InvalidInput(f"unknown search constraint {key[:40]!r}; see docs/ar.md")
        value = (raw_value or "").strip()
        if not value:
            continue
        if target == "name":
            words = tuple(dict.fromkeys(values.get("name_words", ()) + tuple(name_tokens(value))))
            if len(words) > MAX_NAME_WORDS:
                raise InvalidInput(f"a name constraint may have at most {MAX_NAME_WORDS} words")
            values["name_words"] = words
        elif target == "type":
            party_type = _TYPE_ALIASES.get(value.lower().replace(" ", ""))
            if party_type is None:
                raise InvalidInput("search constraint Type must be Organization, Service or Person")
            values["party_type"] = party_type
        elif target in ("her_id", "parent_her_id"):
            values[target] = _int(value, key)
        elif target == "organization_number":
            values[target] = str(_int(value, key))
        elif target == "kommune":
            values[target] = value.zfill(4) if value.isdigit() else value
        else:
            values[target] = value[:10]
    return SearchQuery(page=max(page, 1), page_size=page_size, **values)


def _prefix_range(word: str) -> ColumnElement[bool]:
    upper = word[:-1] + chr(ord(word[-1]) + 1)
    return and_(s.ar_name_word.c.word >= word, s.ar_name_word.c.word < upper)


def _where(q: SearchQuery) -> list[ColumnElement[bool]]:
    p = s.ar_party.c
    clauses: list[ColumnElement[bool]] = []
    for word in q.name_words:
        clauses.append(p.her_id.in_(select(s.ar_name_word.c.her_id).where(_prefix_range(word))))
    if q.party_type is not None:
        clauses.append(p.party_type == q.party_type)
    if q.business_type is not None:
        clauses.append(p.business_type == q.business_type)
    if q.kommune is not None:
        clauses.append(p.kommune == q.kommune)
    if q.her_id is not None:
        clauses.append(p.her_id == q.her_id)
    if q.organization_number is not None:
        clauses.append(p.organization_number == q.organization_number)
    if q.parent_her_id is not None:
        clauses.append(p.parent_her_id == q.parent_her_id)
    return clauses


def search(conn: Connection, q: SearchQuery) -> SearchPage:
    """One page of the parties matching ``q`` (ordered by name, then HER-id), the total and the facets."""
    p = s.ar_party.c
    where = _where(q)
    total = conn.execute(select(func.count()).select_from(s.ar_party).where(*where)).scalar_one()
    rows = conn.execute(select(p.doc).where(*where).order_by(p.name, p.her_id)
                        .limit(q.page_size).offset((q.page - 1) * q.page_size)).scalars().all()
    facets: dict[str, list[tuple[str, int]]] = {}
    columns = {"type": p.party_type, "business_type": p.business_type, "kommune": p.kommune}
    for name in FACETS:
        col = columns[name]
        counted = conn.execute(select(col, func.count()).where(*where, col.is_not(None)).group_by(col)).all()
        facets[name] = sorted(((str(v), int(n)) for v, n in counted), key=lambda vn: (-vn[1], vn[0]))
    texts: dict[tuple[str, str], str] = {}
    for doc in rows:
        _remember_texts(doc, texts)
    return SearchPage(total=int(total), parties=[dict(d) for d in rows], facets=facets, texts=texts)


def _remember_texts(doc: Mapping[str, Any], texts: dict[tuple[str, str], str]) -> None:
    for key, facet in (("municipality", "kommune"), ("businessType", "business_type"),
                       ("parentBusinessType", "business_type")):
        code = doc.get(key)
        if isinstance(code, Mapping) and code.get("value") is not None and code.get("text"):
            texts.setdefault((facet, str(code["value"])), str(code["text"]))


def get(conn: Connection, her_id: int) -> dict[str, Any] | None:
    doc = conn.execute(select(s.ar_party.c.doc).where(s.ar_party.c.her_id == her_id)).scalar_one_or_none()
    return dict(doc) if doc is not None else None


def get_many(conn: Connection, her_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    if not her_ids:
        return {}
    rows = conn.execute(select(s.ar_party.c.her_id, s.ar_party.c.doc)
                        .where(s.ar_party.c.her_id.in_(sorted(set(her_ids))))).all()
    return {int(h): dict(d) for h, d in rows}


def children(conn: Connection, parent_her_ids: Sequence[int], party_type: str | None = None
             ) -> dict[int, list[dict[str, Any]]]:
    """The parties under each of ``parent_her_ids`` (of ``party_type`` if given), by HER-id."""
    out: dict[int, list[dict[str, Any]]] = {h: [] for h in parent_her_ids}
    if not parent_her_ids:
        return out
    p = s.ar_party.c
    stmt = select(p.parent_her_id, p.doc).where(p.parent_her_id.in_(sorted(set(parent_her_ids))))
    if party_type is not None:
        stmt = stmt.where(p.party_type == party_type)
    for parent, doc in conn.execute(stmt.order_by(p.her_id)).all():
        out[int(parent)].append(dict(doc))
    return out


def owned_by(conn: Connection, her_id: int) -> list[dict[str, Any]]:
    """Organisations whose parent is ``her_id`` (AR ``GetOrganizationsOwnedBy``)."""
    return children(conn, [her_id], "Organization")[her_id]


def by_organization_number(conn: Connection, organization_number: str) -> list[dict[str, Any]]:
    p = s.ar_party.c
    rows = conn.execute(select(p.doc).where(p.organization_number == organization_number)
                        .order_by(p.her_id)).scalars().all()
    return [dict(d) for d in rows]


def last_changed(conn: Connection, her_ids: Sequence[int]) -> list[tuple[int, dt.datetime | None]]:
    """(HER-id, last changed, UTC naive) for each known HER-id of ``her_ids``, in the order asked."""
    if not her_ids:
        return []
    p = s.ar_party.c
    found = dict(conn.execute(select(p.her_id, p.last_changed).where(p.her_id.in_(sorted(set(her_ids))))).all())
    return [(h, found[h]) for h in dict.fromkeys(her_ids) if h in found]


def hpr_records(conn: Connection, hpr_numbers: Iterable[int | str]) -> dict[str, dict[str, Any]]:
    """HPR documents by HPR number (as a string), for organisation persons' ``HPRInformation``."""
    wanted = sorted({str(n) for n in hpr_numbers if n is not None})
    if not wanted:
        return {}
    rows = conn.execute(select(s.hpr_person.c.hpr_number, s.hpr_person.c.doc)
                        .where(s.hpr_person.c.hpr_number.in_(wanted))).all()
    return {str(n): dict(d) for n, d in rows}


def certificate_for(conn: Connection, doc: Mapping[str, Any], usage: str) -> dict[str, Any] | None:
    """The ``usage`` ("encryption" or "signing") certificate of a party: its own, else the nearest
    ancestor's (a service or organisation person inherits its office's, as its E_DS address does)."""
    seen: set[int] = set()
    current: Mapping[str, Any] | None = doc
    while current is not None:
        for cert in current.get("certificates") or ():
            if isinstance(cert, Mapping) and cert.get("usage") == usage:
                return dict(cert)
        parent = current.get("parentHerId")
        if not isinstance(parent, int) or parent <= 0 or parent in seen:
            return None
        seen.add(parent)
        current = get(conn, parent)
    return None


def certificate_der(cert: Mapping[str, Any]) -> bytes:
    """The DER bytes of a certificate document (see the module docstring)."""
    stored = cert.get("der")
    if isinstance(stored, str) and stored:
        return base64.b64decode(stored)
    return _synthetic_der(str(cert.get("serialNumber") or "0"), str(cert.get("subject") or "CN=unknown"),
                          str(cert.get("issuer") or "CN=unknown"), str(cert.get("notBefore") or "2000-01-01"),
                          str(cert.get("notAfter") or "2000-01-02"), str(cert.get("usage") or "encryption"))


def _name(dn: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "C": NameOID.COUNTRY_NAME,
            "SERIALNUMBER": NameOID.SERIAL_NUMBER, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME}
    attrs = []
    for part in dn.split(", "):
        key, _, value = part.partition("=")
        oid = oids.get(key.strip().upper())
        if oid is not None and value:
            attrs.append(x509.NameAttribute(oid, value[:2] if oid == NameOID.COUNTRY_NAME else value[:64]))
    return x509.Name(attrs or [x509.NameAttribute(NameOID.COMMON_NAME, "unknown")])


@functools.lru_cache(maxsize=4096)
def _synthetic_der(serial: str, subject: str, issuer: str, not_before: str, not_after: str, usage: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"pregbridge-demo:{serial}".encode()).digest())
    try:
        number = int(serial, 16)
    except ValueError:
        number = int.from_bytes(hashlib.sha256(serial.encode()).digest()[:16], "big")
    start = dt.datetime.fromisoformat(not_before[:10]).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(not_after[:10]).replace(tzinfo=dt.UTC)
    encryption = usage == "encryption"
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(max(number, 1)).not_valid_before(start)
               .not_valid_after(max(end, start + dt.timedelta(days=1)))
               .add_extension(x509.KeyUsage(digital_signature=not encryption, content_commitment=not encryption,
                                            key_encipherment=encryption, data_encipherment=encryption,
                                            key_agreement=False, key_cert_sign=False, crl_sign=False,
                                            encipher_only=False, decipher_only=False), critical=True))
    return builder.sign(key, None).public_bytes(serialization.Encoding.DER)
