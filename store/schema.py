"""The store's SQLAlchemy schema (Core tables; Alembic migrations in store/migrations follow it).

A person is stored as Folkeregisteret serves one: its whole validated person document (every element
with its history, docs/data-formats.md) in ``person.doc``, plus relational index tables that every
query goes through: ``person_identifier`` (every number the person has had, with type, status and the
history columns of :class:`store.model.Meta`) and ``person_search`` (one row of current, normalised
search keys: the blocking keys of search and identification) with ``person_given_word`` (one row per word
of the current given names: a given name searched as the prefix of any of them is seeked, store/search.py),
plus ``person_brief`` (one row: the current values a Filematch wash reads, flattened by store/brief.py) and
``person_current`` (one row: the current values an HL7 PID shows, store/current.py). The repository
rewrites all six together, in one transaction; the five derived tables, their builders and layout versions
are registered in store/derived.py.

Why documents and not a table per element: a person has ~13 element items; one row each made the bulk
load 2.4× slower than raw inserts of those rows would allow and a lookup cost 7 statements (~2 ms at
100k persons on SQLite, measured by benchmarks/bench_store.py), while no query ever needed an element
table that the two index tables do not serve. The index tables answer every lookup and search; the
document answers what the person looks like, history included.

Feeding: ``feed_event`` records every applied or rejected change-feed event (idempotency, resume,
gap detection), ``store_state`` the last applied sequence number, ``reject`` every record a load or
an ingest could not take (with its reason), so nothing is lost silently.

Access: ``account`` (argon2 password hashes, the access profile, an encrypted secret only for accounts
that may use WS-Security PasswordDigest), ``auth_throttle`` (failed logins per account, per source
address and per (address, account), and the addresses an account has succeeded from; shared by every
worker process), ``ws_nonce`` (UsernameToken nonces seen, for replay refusal),
``audit_event`` + ``audit_person`` (one record per call, and the person numbers it asked for or returned,
indexed for ``pregbridge audit --person``). Audit rows are never deleted by the application unless an
operator runs ``pregbridge audit purge``, which deletes only what ``audit export`` wrote to a file first
(``audit_export`` records each export's range; server/access/audit_export.py). ``hl7_peer`` holds the HL7
senders added with ``pregbridge hl7 peers add`` (read by running listeners; server/hl7/peers.py).

The registers of the same population (HPR personnel, AR communication parties, FLR GP contracts and
patient lists) are kept as documents with their key columns indexed. AR adds the columns its search and
change queries filter on (business type, last changed) and ``ar_name_word`` (one row per name word) so
that no AR query scans the table (store/ar.py); HPR likewise its lookup and search columns (number,
name keys, birth date, last update) and ``hpr_approval`` (store/hpr.py). The KRK contact register
(``krk_contact``, ``krk_coverage``, ``krk_hpr``) is loaded from its own file format (store/krk.py).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

__all__ = [
    "account",
    "ar_name_word",
    "ar_party",
    "audit_event",
    "audit_export",
    "audit_person",
    "auth_throttle",
    "feed_event",
    "flr_contract",
    "fh_request",
    "filematch_chunk",
    "filematch_job",
    "flr_patient",
    "hl7_peer",
    "hpr_approval",
    "hpr_person",
    "krk_contact",
    "krk_coverage",
    "krk_hpr",
    "linkage_parameters",
    "metadata",
    "person",
    "person_brief",
    "person_current",
    "person_given_word",
    "person_identifier",
    "person_search",
    "reject",
    "store_state",
    "ws_nonce",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Search keys are compared bytewise (prefix ranges): the C collation on PostgreSQL; SQLite's default.
_Key = String(200).with_variant(String(200, collation="C"), "postgresql")

# BIGINT on PostgreSQL, but INTEGER on SQLite so that the key is the rowid (autoincrement works).
_Id = BigInteger().with_variant(Integer(), "sqlite")


def _meta_columns() -> list[Column[object]]:
    return [
        Column("is_current", Boolean, nullable=False),
        Column("valid_from", Date),
        Column("valid_to", Date),
        Column("registered_at", DateTime),
        Column("source", String(40)),
    ]


def _person_fk() -> Column[int]:
    return Column("person_id", _Id, ForeignKey("person.id", ondelete="CASCADE"), nullable=False, index=True)


person = Table(
    "person",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=False),
    Column("person_key", String(64), nullable=False, unique=True),
    # the validated person document, history included, compressed (store.document.dump_stored; its first byte
    # names the format, rows in the older JSON text stay readable): bytea on PostgreSQL; on SQLite the column
    # keeps its declared TEXT, an affinity that stores a BLOB as it is given (migration 0031 needs no copy of
    # the table, whose children a DROP TABLE would empty through their ON DELETE CASCADE)
    Column("doc", Text().with_variant(LargeBinary(), "postgresql"), nullable=False),
    Column("last_seq", BigInteger),
    Column("updated_at", DateTime, nullable=False),
)

person_identifier = Table(
    "person_identifier",
    metadata,
    Column("id", _Id, primary_key=True),
    _person_fk(),
    Column("number", String(11), nullable=False),
    Column("kind", String(4), nullable=False),
    Column("status", String(10), nullable=False),
    *_meta_columns(),
    Index(None, "number", "person_id"),  # covering: a lookup by number reads no table row to find the person
)

person_search = Table(
    "person_search",
    metadata,
    Column("person_id", _Id, ForeignKey("person.id", ondelete="CASCADE"), primary_key=True),
    Column("family_key", _Key, nullable=False),
    Column("given_key", _Key, nullable=False),
    Column("birth_date", Date),
    Column("birth_year", SmallInteger),
    Column("gender", String(6)),
    Column("kommune", String(4)),
    Column("postnummer", String(4)),
    Column("street_key", _Key),
    Column("status", String(20)),
    # the protection level at which the address keys above are released (store.repository.search_row)
    Column("address_protection", String(20)),
    # covering for identification's narrowest block (store.matching: every column it scores), so a birth
    # date's candidates are read from one run of index pages instead of one table page each
    Index("ix_person_search_birth_date_covering", "birth_date", "family_key", "given_key", "gender", "postnummer",
          "kommune", "street_key", "birth_year", "address_protection"),
    # birth year first: a family/given name *prefix* is a range, so it must be the last column used as a range;
    # the given name after it is read from the index (given + family + year filters index entries, not rows)
    Index(None, "birth_year", "family_key", "given_key"),
    # covering for identification's "birth year + given" pass (store.matching: its extra conditions and every
    # column it scores are read from the index, not ~60 table pages a record at a million persons; migration 0034),
    # and the (birth_year, given_key) range any other query seeks
    Index("ix_person_search_birth_year_given_covering", "birth_year", "given_key", "gender", "family_key",
          "birth_date", "postnummer", "kommune", "street_key", "address_protection"),
    Index(None, "kommune", "family_key"),
    Index(None, "postnummer", "family_key"),
    # identification's "postnummer + given" passes (store.matching): the given name's range within a postnummer,
    # the birth year read from the index (migration 0032)
    Index(None, "postnummer", "given_key", "birth_year"),
    Index(None, "street_key", "family_key"),
)

# one row per distinct word of a person's current given names (person_search.given_key's words), with the keys of the
# block it is searched in, for the persons with a birth year (store.derived.given_word_rows, migration 0033): a given
# name is matched as the prefix of *any* given name, which no index on given_key serves, so given + family + birth
# year tested the given name on every entry of the (year, family) block (~600 at 5.6 million persons); here the
# word is seeked within each family key of the block, or the family within each given word (store.search)
person_given_word = Table(
    "person_given_word",
    metadata,
    Column("id", _Id, primary_key=True),
    _person_fk(),
    Column("birth_year", SmallInteger, nullable=False),
    Column("family_key", _Key, nullable=False),
    Column("word", _Key, nullable=False),
    # covering, both orders: the search enumerates the keys of the longer name asked and seeks the other's range
    Index(None, "birth_year", "family_key", "word", "person_id"),
    Index(None, "birth_year", "word", "family_key", "person_id"),
)

person_brief = Table(
    "person_brief",
    metadata,
    Column("person_id", _Id, ForeignKey("person.id", ondelete="CASCADE"), primary_key=True),
    Column("brief", Text, nullable=False),  # store.brief: the current values a wash reads, flattened
)

person_current = Table(
    "person_current",
    metadata,
    Column("person_id", _Id, ForeignKey("person.id", ondelete="CASCADE"), primary_key=True),
    Column("current", Text, nullable=False),  # store.current: the current values a PID shows, as JSON
)

# identification's Fellegi–Sunter parameters, one row per estimation, the newest in force (store/linkage/params.py)
linkage_parameters = Table(
    "linkage_parameters",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("estimated_at", DateTime, nullable=False),
    Column("persons", BigInteger, nullable=False),
    Column("params", Text, nullable=False),  # JSON: m, u, prior, term frequencies
)

store_state = Table(
    "store_state",
    metadata,
    Column("key", String(40), primary_key=True),
    Column("value", String(200), nullable=False),
)

feed_event = Table(
    "feed_event",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("person_key", String(64), nullable=False, index=True),
    Column("event_type", String(80), nullable=False),
    Column("registered_at", DateTime),
    Column("applied_at", DateTime, nullable=False),
    Column("checksum", String(64), nullable=False),
    Column("outcome", String(10), nullable=False),  # applied | rejected
)

reject = Table(
    "reject",
    metadata,
    Column("id", _Id, primary_key=True),
    Column("origin", String(10), nullable=False),  # load | ingest
    Column("file", String(400), nullable=False),
    Column("line", Integer),
    Column("seq", BigInteger),
    Column("record_key", String(64)),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

hpr_person = Table(
    "hpr_person",
    metadata,
    Column("hpr_number", String(12), primary_key=True),
    Column("person_key", String(64), index=True),
    Column("doc", JSON, nullable=False),
    # the HPR face's lookups and search (store/hpr.py); filled from the document by store/registers.py
    Column("nin", String(11), index=True),
    Column("family_key", _Key),  # store.normalize.family_key of familyName
    Column("given_key", _Key),  # store.normalize.name_key of givenName
    Column("birth_date", Date),
    Column("last_updated", DateTime, index=True),  # lastUpdated, UTC
    Index(None, "family_key", "given_key"),
)

# One row per HPR approval (Godkjenning), for HentGodkjenning by id and search by category.
hpr_approval = Table(
    "hpr_approval",
    metadata,
    Column("hpr_number", String(12), ForeignKey("hpr_person.hpr_number", ondelete="CASCADE"), primary_key=True),
    Column("approval_id", BigInteger, primary_key=True, autoincrement=False, index=True),
    Column("category", String(10), nullable=False),
    Index(None, "category", "hpr_number"),
)

# KRK, the contact register of the kommuneoverlege function (store/krk.py): one contact per kommune or
# bydel ("area"), the kommuner each kommune-level contact covers (its own and, in an inter-municipal
# arrangement, others), and the HPR numbers of the doctors registered on it.
krk_contact = Table(
    "krk_contact",
    metadata,
    Column("area", String(6), primary_key=True),  # the kommunenummer, or the bydelsnummer
    Column("kommune", String(4), nullable=False, index=True),
    Column("bydel", String(6)),
    Column("bydel_name", String(100)),
    Column("email", String(254), nullable=False),
    Column("phone", String(20), nullable=False),
    Column("issi", String(8)),
    Column("updated_at", DateTime, nullable=False),
)

krk_coverage = Table(
    "krk_coverage",
    metadata,
    Column("kommune", String(4), primary_key=True),
    Column("area", String(6), ForeignKey("krk_contact.area", ondelete="CASCADE"), nullable=False, index=True),
)

krk_hpr = Table(
    "krk_hpr",
    metadata,
    Column("area", String(6), ForeignKey("krk_contact.area", ondelete="CASCADE"), primary_key=True),
    Column("hpr_number", String(12), primary_key=True, index=True),
)

ar_party = Table(
    "ar_party",
    metadata,
    Column("her_id", BigInteger, primary_key=True, autoincrement=False),
    Column("parent_her_id", BigInteger, index=True),
    Column("party_type", String(24), nullable=False),
    Column("organization_number", String(9), index=True),
    Column("name", String(300), nullable=False),
    Column("kommune", String(4)),
    Column("doc", JSON, nullable=False),
    # AR search and change queries (store/ar.py); filled from the document by store/registers.py
    Column("business_type", String(10), index=True),  # BusinessType (own, else the parent's) CodeValue
    Column("last_changed", DateTime, index=True),  # LastChanged, UTC
    Index(None, "kommune", "party_type"),
    Index(None, "party_type", "business_type"),
)

# One row per word of an AR party's name (store.normalize.name_tokens), for word-prefix name search.
ar_name_word = Table(
    "ar_name_word",
    metadata,
    Column("word", _Key, primary_key=True),
    Column("her_id", BigInteger, ForeignKey("ar_party.her_id", ondelete="CASCADE"), primary_key=True, index=True),
)

flr_contract = Table(
    "flr_contract",
    metadata,
    Column("contract_id", String(40), primary_key=True),
    Column("gp_hpr_number", String(12), index=True),
    Column("office_her_id", BigInteger),
    Column("kommune", String(4)),
    Column("doc", JSON, nullable=False),
)

flr_patient = Table(
    "flr_patient",
    metadata,
    Column("id", _Id, primary_key=True),
    Column("contract_id", String(40), ForeignKey("flr_contract.contract_id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("person_number", String(11), nullable=False, index=True),
    Column("valid_from", Date),
    Column("valid_to", Date),
)

account = Table(
    "account",
    metadata,
    Column("id", _Id, primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),  # argon2id
    Column("digest_secret", Text),  # encrypted password, only for PasswordDigest-enabled accounts
    Column("profile", String(40), nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("key", String(200), primary_key=True),  # "pair:<address> <account>", "account:<account>", "addr:<address>"
    Column("account", String(100), index=True),  # the account of pair and account keys (``users unlock``)
    Column("failures", Integer, nullable=False),  # verified failures since the last success or unlock
    Column("last_failure", DateTime),  # failures are forgotten a window after the last one
    Column("next_allowed", DateTime),  # attempts before this are refused without looking at the password
    Column("trusted_until", DateTime),  # pair keys: a success from this address for this account, until then
)

ws_nonce = Table(
    "ws_nonce",
    metadata,
    Column("nonce", String(200), primary_key=True),
    Column("seen_at", DateTime, nullable=False, index=True),
)

audit_event = Table(
    "audit_event",
    metadata,
    Column("id", _Id, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("account", String(100), index=True),
    Column("face", String(20), nullable=False),
    Column("operation", String(80), nullable=False),
    Column("source", String(100)),
    Column("purpose", String(200)),
    Column("outcome", String(60), nullable=False),
    Column("asked", JSON),
    Column("returned", JSON),
)

audit_person = Table(
    "audit_person",
    metadata,
    Column("id", _Id, primary_key=True),
    Column("audit_id", _Id, ForeignKey("audit_event.id"), nullable=False),
    Column("number", String(11), nullable=False),
    Column("role", String(8), nullable=False),  # asked | returned
    Column("gen", Integer, nullable=False, server_default="0"),  # generation of audit_id (store/audit_index.py)
    # a person's events: one seek per generation, read from the index alone; rows are written a generation
    # at a time in key order (store/audit_index.py)
    Index(None, "gen", "number", "audit_id"),
)

# One row per ``pregbridge audit export``: the range written to a file, and what ``audit purge`` later deleted of it.
audit_export = Table(
    "audit_export",
    metadata,
    Column("id", _Id, primary_key=True),
    Column("exported_at", DateTime, nullable=False),
    Column("until", DateTime, nullable=False),  # every event with at < until and id <= last_id is in the file
    Column("first_id", _Id),
    Column("last_id", _Id),
    Column("records", BigInteger, nullable=False),
    Column("file", String(1000), nullable=False),
    Column("sha256", String(64), nullable=False),  # of the compressed file as written
    Column("purged_at", DateTime),
    Column("purged_until", DateTime),
    Column("purged_records", BigInteger),
)

# HL7 senders kept in the store (``pregbridge hl7 peers``), beside ``hl7.peers`` of the configuration file.
hl7_peer = Table(
    "hl7_peer",
    metadata,
    Column("peer", String(200), primary_key=True),  # an IP address or CIDR network, or MSH-3^MSH-4 / MSH-3
    Column("account", String(100), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Read-through mode (issue 18): when a person was last asked about, for retention. A person without a row here
# was never asked about (a replica's persons, or one stored by a search that no face answered with).
person_asked = Table(
    "person_asked",
    metadata,
    Column("person_id", _Id, ForeignKey("person.id", ondelete="CASCADE"), primary_key=True),
    Column("asked_at", DateTime, nullable=False, index=True),
)

# Idempotency of felles hjelpenummer allocation: a repeated identical request answers the same number.
fh_request = Table(
    "fh_request",
    metadata,
    Column("request_key", String(64), primary_key=True),  # sha256 of the normalised request
    Column("number", String(11), nullable=False, unique=True),
    Column("person_key", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# Filematch jobs (filematch/jobs.py): one row per submitted file, one per chunk of its records. A chunk's
# input (its parsed records) and output (its encoded result records) are kept here, compressed, so that any
# worker process on any host can take any chunk, and a chunk's output is committed in the same transaction
# that marks it done (exactly once, even after a crash). Rows are deleted when the job expires.
filematch_job = Table(
    "filematch_job",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("account", String(100)),
    Column("profile", String(40), nullable=False),
    Column("status", String(12), nullable=False, index=True),  # receiving queued running done failed cancelled
    Column("format", String(10), nullable=False),
    Column("options", JSON, nullable=False),
    Column("records", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("done_chunks", Integer, nullable=False),
    Column("done_records", Integer, nullable=False),
    Column("counts", JSON),
    Column("error", String(400)),
    Column("created_at", DateTime, nullable=False),
    Column("started_at", DateTime),
    Column("finished_at", DateTime),
    Column("expires_at", DateTime, nullable=False, index=True),
)

filematch_chunk = Table(
    "filematch_chunk",
    metadata,
    Column("job_id", String(32), ForeignKey("filematch_job.id", ondelete="CASCADE"), primary_key=True),
    Column("chunk_no", Integer, primary_key=True),
    Column("first_record", Integer, nullable=False),
    Column("last_record", Integer, nullable=False),
    Column("status", String(12), nullable=False),  # pending running done failed cancelled
    Column("input", LargeBinary, nullable=False),  # zlib(JSON records)
    Column("output", LargeBinary),  # zlib(encoded result records, in the job's output format)
    Column("counts", JSON),
    Column("persons", Text),  # the numbers returned, space-separated, for the job's audit record
    Column("attempts", Integer, nullable=False),
    Column("locked_by", String(80)),
    Column("locked_at", DateTime),
    Column("error", String(400)),
    Index("ix_filematch_chunk_status_locked_at", "status", "locked_at"),
)
