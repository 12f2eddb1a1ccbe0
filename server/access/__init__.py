"""Access layer shared by every face: authentication, access profiles, masking and the audit trail.

Transport-agnostic on purpose (no spyne, no HTTP framework, no HL7): a face decodes its own wire
format, then calls

- :class:`Authenticator` (HTTP Basic, WS-Security UsernameToken text/digest, a cleartext password),
  backed by :class:`AccountStore` (argon2id hashes; encrypted secrets for PasswordDigest accounts),
  with throttling (:class:`Throttle`: growing delays, no lockout) shared through the database and a
  per-process verified-credential cache;
- :func:`client_address` with :class:`TrustedProxies`: the client's address behind trusted proxies;
- :func:`authorize` and :func:`resolve_profile` with the account's :class:`AccessProfile`;
- :func:`apply_profile` to turn a :class:`store.model.Person` into the :class:`MaskedPerson` it encodes,
  and :func:`release_of` for the profile's :class:`Release` that the fast paths (HL7 PIDs from current
  views, the Filematch wash) read — both from the one policy of :mod:`adapters.policy`;
- :class:`AuditWriter` to record the call, read back by :func:`query_audit`.

Errors are :class:`AuthenticationFailed` (and :class:`Throttled`) and :class:`AuthorizationFailed`,
leaves of :class:`store.errors.PregbridgeError` carrying their SOAP and HL7 wire codes.
"""

from server.access.accounts import Account, AccountStore, Credentials, DigestKeyError
from server.access.audit import AuditRecord, AuditWriter, close_all, query_audit, worker_exit
from server.access.authenticate import PASSWORD_DIGEST, PASSWORD_TEXT, Authenticator, basic_username
from server.access.errors import AuthenticationFailed, AuthorizationFailed, Throttled
from server.access.masking import (
    DSF_CODES,
    PLACEHOLDERS,
    AddressView,
    MaskedPerson,
    Release,
    apply_profile,
    dsf_code,
    release_of,
    search_scope,
    visible_address,
    visible_identifiers,
)
from server.access.profiles import (
    BUILTIN_PROFILES,
    ELEMENTS,
    AccessProfile,
    authorize,
    load_profiles,
    resolve_profile,
)
from server.access.proxies import CLIENT_ADDRESS_KEY, TrustedProxies, client_address, normalize_address
from server.access.settings import AccessSettings
from server.access.throttle import Throttle, ThrottlePolicy

__all__ = [
    "BUILTIN_PROFILES",
    "CLIENT_ADDRESS_KEY",
    "DSF_CODES",
    "ELEMENTS",
    "PASSWORD_DIGEST",
    "PASSWORD_TEXT",
    "PLACEHOLDERS",
    "AccessProfile",
    "AccessSettings",
    "Account",
    "AccountStore",
    "AddressView",
    "AuditRecord",
    "AuditWriter",
    "AuthenticationFailed",
    "Authenticator",
    "AuthorizationFailed",
    "Credentials",
    "DigestKeyError",
    "MaskedPerson",
    "Release",
    "Throttle",
    "ThrottlePolicy",
    "Throttled",
    "TrustedProxies",
    "apply_profile",
    "authorize",
    "basic_username",
    "client_address",
    "close_all",
    "dsf_code",
    "load_profiles",
    "normalize_address",
    "query_audit",
    "release_of",
    "resolve_profile",
    "search_scope",
    "visible_address",
    "visible_identifiers",
    "worker_exit",
]
