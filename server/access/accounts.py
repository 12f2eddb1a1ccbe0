"""Service accounts: argon2id password hashes, and an encrypted secret for WS-Security PasswordDigest.

Every face authenticates against the ``account`` table through :class:`AccountStore`. Passwords are
hashed with argon2-cffi's :class:`~argon2.PasswordHasher` (argon2id, the library's defaults) and
rehashed on a successful verify when those defaults have changed. :meth:`AccountStore.verify` runs one
argon2 verification whether or not the account exists (against a dummy hash for unknown names), and the
same for disabled accounts, so neither timing nor the error tells which accounts exist.

PasswordDigest and its trade-off. WS-Security UsernameToken's PasswordDigest is
``Base64(SHA-1(nonce + created + password))``: to check it the server must know the *cleartext*
password, which a one-way argon2 hash cannot give. So an account may be added with ``digest=True``;
only such accounts also keep the password encrypted with AES-256-GCM (``account.digest_secret``,
authenticated with the username as associated data, so a secret copied to another row does not
decrypt) under a server key in a key file (``access.key_path``; created with mode 0600 when the first
digest account is added, or by :meth:`AccountStore.generate_key`). The cost: anyone holding both the
database and the key file can recover those passwords, which argon2 alone would prevent; a database
dump alone still cannot. Keep the key file off database backups, and prefer PasswordText over TLS (or
HTTP Basic) for clients that can send it: their accounts store no recoverable secret at all. Losing the
key file disables digest login for those accounts until their passwords are set again.

Usernames are 1–100 characters of ``A-Z a-z 0-9 . _ @ -``; passwords at least 12 characters (at most
1024). Exceptions and logs name accounts (service accounts, not persons) but never passwords.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import os
import re
import secrets
import stat
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from server.access.errors import AuthenticationFailed
from store import schema as s
from store.engine import read_connection
from store.errors import InvalidInput, NotFound, PregbridgeError

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "Account", "AccountStore", "Credentials", "DigestKeyError"]

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
_PROFILE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
_SECRET_VERSION = "v1"
_KEY_BYTES = 32


class DigestKeyError(PregbridgeError):
    """The PasswordDigest key file is missing, unreadable, malformed or not the key a secret was made with."""


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    profile: str
    disabled: bool
    digest: bool  # may authenticate with WS-Security PasswordDigest
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """An account with what verifies it: the argon2 hash and, for digest accounts, the encrypted secret."""

    account: Account
    password_hash: str
    digest_secret: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def valid_username(username: str) -> bool:
    return bool(_USERNAME.match(username))


def _check_username(username: str) -> None:
    if not valid_username(username):
        raise InvalidInput("username must be 1-100 characters of A-Z a-z 0-9 . _ @ -")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must be at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD} characters")


def _check_profile(profile: str) -> None:
    if not _PROFILE.match(profile):
        raise InvalidInput("profile name must be 1-40 characters of A-Z a-z 0-9 . _ -")


class AccountStore:
    """Accounts in the store: add, change password, disable/enable, list, get, verify.

    ``key_path`` is the PasswordDigest key file (needed only for digest accounts); ``hasher`` defaults to
    argon2-cffi's :class:`PasswordHasher` with its defaults.
    """

    def __init__(self, engine: Engine, *, key_path: Path | None = None, hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        self.key_path = key_path
        self.hasher = hasher or PasswordHasher()
        self._aead: AESGCM | None = None
        self._key_id = ""
        self._key_lock = threading.Lock()
        self._dummy_hash: str | None = None  # made by the first verify, whoever it is for

    # -- key file ---------------------------------------------------------------------------------------

    @staticmethod
    def generate_key(path: Path, *, overwrite: bool = False) -> Path:
        """Write a new random AES-256 key (base64 text) to ``path`` with mode 0600.

        Refuses to replace an existing key unless ``overwrite`` (which makes every stored digest secret
        undecryptable). Safe against a concurrent creator: exactly one key wins, the others read it.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii") + "\n")
                f.flush()
                os.fsync(f.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)  # atomic, and fails if the key exists
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def _cipher(self, *, create: bool) -> tuple[AESGCM, str]:
        with self._key_lock:
            if self._aead is None:
                if self.key_path is None:
                    raise DigestKeyError("no key file is configured for PasswordDigest accounts (access.key_path)")
                if not self.key_path.exists():
                    if not create:
                        raise DigestKeyError(f"the PasswordDigest key file {self.key_path} does not exist")
                    try:
                        self.generate_key(self.key_path)
                    except FileExistsError:
                        pass  # another process made it first
                key = _read_key(self.key_path)
                self._aead = AESGCM(key)
                self._key_id = hashlib.sha256(key).hexdigest()[:8]
            return self._aead, self._key_id

    def _encrypt(self, username: str, password: str) -> str:
        aead, kid = self._cipher(create=True)
        nonce = secrets.token_bytes(12)
        sealed = aead.encrypt(nonce, password.encode("utf-8"), _aad(username))
        return f"{_SECRET_VERSION}:{kid}:{base64.b64encode(nonce + sealed).decode('ascii')}"

    def decrypt_secret(self, username: str, secret: str) -> str:
        """The cleartext password of a digest account, from its stored secret. Raises DigestKeyError."""
        aead, kid = self._cipher(create=False)
        try:
            version, secret_kid, body = secret.split(":", 2)
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            raise DigestKeyError("a stored PasswordDigest secret is malformed") from None
        if version != _SECRET_VERSION:
            raise DigestKeyError(f"unknown PasswordDigest secret version {version!r}")
        if secret_kid != kid:
            raise DigestKeyError("a PasswordDigest secret was made with another key file")
        try:
            return aead.decrypt(raw[:12], raw[12:], _aad(username)).decode("utf-8")
        except InvalidTag:
            raise DigestKeyError("a PasswordDigest secret does not decrypt with the key file") from None

    # -- administration ---------------------------------------------------------------------------------

    def add(self, username: str, password: str, profile: str, *, digest: bool = False) -> Account:
        """Create an account. ``digest=True`` also keeps the password encrypted for PasswordDigest."""
        _check_username(username)
        _check_password(password)
        _check_profile(profile)
        now = _now()
        secret = self._encrypt(username, password) if digest else None
        row = dict(username=username, password_hash=self.hasher.hash(password), digest_secret=secret,
                   profile=profile, disabled=False, created_at=now, updated_at=now)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(s.account), row)
        except IntegrityError:
            raise InvalidInput(f"an account named {username} already exists") from None
        return Account(username, profile, False, digest, now, now)

    def passwd(self, username: str, password: str) -> Account:
        """Set a new password (and re-encrypt the digest secret of a digest account)."""
        _check_password(password)
        current = self._require(username)
        secret = self._encrypt(username, password) if current.digest else None
        values = dict(password_hash=self.hasher.hash(password), digest_secret=secret, updated_at=_now())
        return self._update(username, values)

    def disable(self, username: str) -> Account:
        return self._update(username, dict(disabled=True, updated_at=_now()))

    def enable(self, username: str) -> Account:
        return self._update(username, dict(disabled=False, updated_at=_now()))

    def set_profile(self, username: str, profile: str) -> Account:
        _check_profile(profile)
        return self._update(username, dict(profile=profile, updated_at=_now()))

    def delete(self, username: str) -> Account:
        """Remove an account and its failed-login counters; its audit records stay (they name it by text)."""
        account = self._require(username)
        with self.engine.begin() as conn:
            conn.execute(delete(s.auth_throttle).where(s.auth_throttle.c.account == username))
            if conn.execute(delete(s.account).where(s.account.c.username == username)).rowcount != 1:
                raise NotFound(f"no account named {username}")
        return account

    def _update(self, username: str, values: Mapping[str, object]) -> Account:
        with self.engine.begin() as conn:
            n = conn.execute(update(s.account).where(s.account.c.username == username).values(**values)).rowcount
        if n != 1:
            raise NotFound(f"no account named {username}")
        return self._require(username)

    def _require(self, username: str) -> Account:
        account = self.get(username)
        if account is None:
            raise NotFound(f"no account named {username}")
        return account

    def get(self, username: str) -> Account | None:
        creds = self.credentials(username)
        return creds.account if creds else None

    def list(self) -> builtins.list[Account]:
        with read_connection(self.engine) as conn:
            rows = conn.execute(select(s.account).order_by(s.account.c.username)).all()
        return [_account(r) for r in rows]

    def credentials(self, username: str) -> Credentials | None:
        """The account with its hash and digest secret, or None (also for names that break the rules)."""
        if not valid_username(username):
            return None
        with read_connection(self.engine) as conn:
            row = conn.execute(select(s.account).where(s.account.c.username == username)).first()
        if row is None:
            return None
        return Credentials(_account(row), row.password_hash, row.digest_secret)

    # -- verification -----------------------------------------------------------------------------------

    def verify(self, username: str, password: str) -> Account:
        """The account, if ``password`` is its password and it is enabled; else AuthenticationFailed."""
        return self.verify_credentials(username, password).account

    def verify_credentials(self, username: str, password: str) -> Credentials:
        """As :meth:`verify`, returning the credentials as stored after the check (rehashed if needed)."""
        dummy = self._dummy()
        creds = self.credentials(username) if len(password) <= MAX_PASSWORD else None
        ok = self._argon2_ok(creds.password_hash if creds else dummy, password)
        if creds is None or not ok or creds.account.disabled:
            raise AuthenticationFailed()
        if self.hasher.check_needs_rehash(creds.password_hash):
            creds = self._rehash(creds, password)
        return creds

    def _dummy(self) -> str:
        """A hash verified in place of a missing account's, so an unknown name costs what a known one does.
        Made on the first verify whatever the name, so even that first call does not tell them apart."""
        if self._dummy_hash is None:
            with self._key_lock:
                if self._dummy_hash is None:
                    self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(24))
        return self._dummy_hash

    def _argon2_ok(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password[:MAX_PASSWORD])
        except (VerificationError, InvalidHashError):
            return False

    def _rehash(self, creds: Credentials, password: str) -> Credentials:
        new = self.hasher.hash(password)
        with self.engine.begin() as conn:  # compare-and-set: a concurrent passwd wins
            conn.execute(update(s.account)
                         .where(s.account.c.username == creds.account.username,
                                s.account.c.password_hash == creds.password_hash)
                         .values(password_hash=new))
        return Credentials(creds.account, new, creds.digest_secret)


def _aad(username: str) -> bytes:
    return b"pregbridge-digest:" + username.encode("utf-8")


def _read_key(path: Path) -> bytes:
    info = path.stat()
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise DigestKeyError(f"the key file {path} is accessible to others; chmod 600 {path}")
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError):
        raise DigestKeyError(f"the key file {path} is not a base64 key") from None
    if len(key) != _KEY_BYTES:
        raise DigestKeyError(f"the key file {path} does not hold a {_KEY_BYTES}-byte key")
    return key


def _account(r: Row[Any]) -> Account:
    return Account(username=r.username, profile=r.profile, disabled=bool(r.disabled),
                   digest=r.digest_secret is not None, created_at=r.created_at, updated_at=r.updated_at)
