"""The replay corpus: a directory of recorded request/answer pairs and the manifest that describes them.

Layout (docs/replay.md)::

    corpus/
      manifest.json             (or manifest.toml when written by hand)
      <case-id>.request.xml     SOAP envelope exactly as the client sent it
      <case-id>.response.xml    the answer exactly as the service gave it
      <case-id>.request.hl7     HL7 v2 message, segments ended by CR
      <case-id>.response.hl7    every reply frame to it, in order (commit ACK first in enhanced mode)

Per case the manifest holds: ``id``, ``face`` (``soap`` | ``hl7``), ``endpoint`` (the path for SOAP,
``host:port`` of the recorded upstream for HL7), ``soapVersion``, ``soapAction`` and ``contentType``
(SOAP), ``account`` (a *name*, resolved to credentials by :class:`Secrets` from a separate file or the
environment, never stored in the corpus), ``request``/``response`` (file names), ``expected``
(``status``: HTTP status; ``outcome``: ``answer``, ``fault`` or ``upstreamError``; ``error``: what
failed when recording), and optional per-case ``ignore`` rules and a ``description``. Corpus-wide:
``ignore.xml`` (XPaths), ``ignore.hl7`` (fields) and ``namespaces`` (prefixes for the XPaths); a
manifest without ``ignore.xml``/``ignore.hl7`` gets the defaults of the comparers.

Writing is deterministic (sorted keys, cases in recording order) so a regenerated corpus diffs cleanly.
"""

from __future__ import annotations

import json
import os
import re
import threading
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from server.replay.compare_hl7 import DEFAULT_HL7_IGNORES
from server.replay.compare_xml import DEFAULT_XML_IGNORES
from store.errors import InvalidInput

__all__ = ["FORMAT", "Case", "Corpus", "Credentials", "Expected", "Secrets", "case_id"]

FORMAT = "pregbridge-replay/1"
FACES = ("soap", "hl7")
OUTCOMES = ("answer", "fault", "upstreamError")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


def case_id(text: str) -> str:
    """A file-safe case id made from ``text``."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "case"
    return cleaned[:120]


@dataclass(frozen=True, slots=True)
class Expected:
    outcome: str = "answer"  # answer | fault | upstreamError
    status: int | None = None  # HTTP status (SOAP); None for HL7
    error: str | None = None  # for upstreamError: what failed (connection refused, timeout, HTTP 502 …)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome}
        if self.status is not None:
            out["status"] = self.status
        if self.error:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    face: str  # soap | hl7
    endpoint: str  # SOAP: path (or absolute URL); HL7: host:port recorded from
    request: str  # file name in the corpus directory
    response: str | None
    expected: Expected = field(default_factory=Expected)
    soap_version: str | None = None  # "1.1" | "1.2"
    soap_action: str | None = None
    content_type: str | None = None
    account: str | None = None
    ignore: tuple[str, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "face": self.face, "endpoint": self.endpoint, "request": self.request,
                               "expected": self.expected.to_json()}
        if self.response:
            out["response"] = self.response
        for key, value in (("soapVersion", self.soap_version), ("soapAction", self.soap_action),
                           ("contentType", self.content_type), ("account", self.account),
                           ("description", self.description or None)):
            if value is not None:
                out[key] = value
        if self.ignore:
            out["ignore"] = list(self.ignore)
        return out

    @staticmethod
    def from_json(doc: Mapping[str, Any]) -> Case:
        try:
            cid, face, endpoint, request = (str(doc[k]) for k in ("id", "face", "endpoint", "request"))
        except KeyError as exc:
            raise InvalidInput(f"manifest: a case lacks {exc.args[0]!r}") from None
        if not _ID.match(cid):
            raise InvalidInput(f"manifest: case id {cid!r} must be 1-120 characters of A-Z a-z 0-9 . _ -")
        if face not in FACES:
            raise InvalidInput(f"manifest: case {cid}: face must be one of {', '.join(FACES)}")
        exp = doc.get("expected", {}) or {}
        outcome = str(exp.get("outcome", "answer"))
        if outcome not in OUTCOMES:
            raise InvalidInput(f"manifest: case {cid}: expected.outcome must be one of {', '.join(OUTCOMES)}")
        version = doc.get("soapVersion")
        if face == "soap" and version not in ("1.1", "1.2"):
            raise InvalidInput(f"manifest: case {cid}: soapVersion must be \"1.1\" or \"1.2\"")
        ignore = doc.get("ignore", [])
        if not isinstance(ignore, list):
            raise InvalidInput(f"manifest: case {cid}: ignore must be a list")
        return Case(cid, face, endpoint, request, str(doc["response"]) if doc.get("response") else None,
                    Expected(outcome, int(exp["status"]) if exp.get("status") is not None else None,
                             str(exp["error"]) if exp.get("error") else None),
                    str(version) if version else None,
                    str(doc["soapAction"]) if doc.get("soapAction") is not None else None,
                    str(doc["contentType"]) if doc.get("contentType") else None,
                    str(doc["account"]) if doc.get("account") else None,
                    tuple(str(i) for i in ignore), str(doc.get("description", "")))


@dataclass
class Corpus:
    """A corpus directory; cases are appended by the recorder (thread-safe) and saved with :meth:`save`."""

    directory: Path
    cases: list[Case] = field(default_factory=list)
    xml_ignores: list[str] = field(default_factory=lambda: list(DEFAULT_XML_IGNORES))
    hl7_ignores: list[str] = field(default_factory=lambda: list(DEFAULT_HL7_IGNORES))
    namespaces: dict[str, str] = field(default_factory=dict)
    description: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @staticmethod
    def load(directory: Path) -> Corpus:
        directory = Path(directory)
        json_path, toml_path = directory / "manifest.json", directory / "manifest.toml"
        try:
            if json_path.is_file():
                doc = json.loads(json_path.read_text(encoding="utf-8"))
            elif toml_path.is_file():
                doc = tomllib.loads(toml_path.read_text(encoding="utf-8"))
            else:
                raise InvalidInput(f"{directory}: no manifest.json or manifest.toml (is this a replay corpus?)")
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise InvalidInput(f"{directory}: the manifest does not parse: {exc}") from None
        if doc.get("format", FORMAT) != FORMAT:
            raise InvalidInput(f"{directory}: manifest format {doc.get('format')!r} is not {FORMAT}")
        ignore = doc.get("ignore", {}) or {}
        cases = [Case.from_json(c) for c in doc.get("cases", [])]
        seen: set[str] = set()
        for c in cases:
            if c.id in seen:
                raise InvalidInput(f"manifest: case id {c.id} is used twice")
            seen.add(c.id)
            for name in (c.request, c.response):
                if name and (Path(name).is_absolute() or ".." in Path(name).parts):
                    raise InvalidInput(f"manifest: case {c.id}: file {name!r} must lie inside the corpus")
        return Corpus(directory, cases, [str(x) for x in ignore.get("xml", DEFAULT_XML_IGNORES)],
                      [str(x) for x in ignore.get("hl7", DEFAULT_HL7_IGNORES)],
                      {str(k): str(v) for k, v in (doc.get("namespaces", {}) or {}).items()},
                      str(doc.get("description", "")))

    def path(self, name: str) -> Path:
        return self.directory / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def unique_id(self, wanted: str) -> str:
        base = case_id(wanted)
        taken = {c.id for c in self.cases}
        if base not in taken:
            return base
        n = 2
        while f"{base}-{n}" in taken:
            n += 1
        return f"{base}-{n}"

    def add(self, case: Case, request: bytes, response: bytes | None, *, suffix: str) -> Case:
        """Write the pair's files and append the case (its id made unique); the manifest is saved too."""
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            cid = self.unique_id(case.id)
            case = replace(case, id=cid, request=f"{cid}.request.{suffix}",
                           response=f"{cid}.response.{suffix}" if response is not None else None)
            self.path(case.request).write_bytes(request)
            if response is not None and case.response:
                self.path(case.response).write_bytes(response)
            self.cases.append(case)
            self._save_locked()
        return case

    def save(self) -> Path:
        with self._lock:
            return self._save_locked()

    def _save_locked(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {"format": FORMAT}
        if self.description:
            doc["description"] = self.description
        doc["ignore"] = {"xml": list(self.xml_ignores), "hl7": list(self.hl7_ignores)}
        if self.namespaces:
            doc["namespaces"] = dict(sorted(self.namespaces.items()))
        doc["cases"] = [c.to_json() for c in self.cases]
        out = self.directory / "manifest.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(out)
        return out


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str


def _env_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True, slots=True)
class Secrets:
    """Account name → credentials, from a TOML/JSON file (``[accounts.NAME] username, password``) and env.

    ``PREGBRIDGE_REPLAY_ACCOUNT_<NAME>_USERNAME`` and ``…_PASSWORD`` (NAME upper-cased, other characters
    as ``_``) win over the file. The corpus names accounts only; passwords never enter it.
    """

    accounts: Mapping[str, Credentials]

    @staticmethod
    def load(path: Path | None = None, env: Mapping[str, str] | None = None,
             names: Sequence[str] = ()) -> Secrets:
        env = os.environ if env is None else env
        accounts: dict[str, Credentials] = {}
        if path is not None:
            text = Path(path).read_text(encoding="utf-8")
            try:
                doc = json.loads(text) if Path(path).suffix == ".json" else tomllib.loads(text)
            except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
                raise InvalidInput(f"{path}: the secrets file does not parse: {exc}") from None
            for name, entry in (doc.get("accounts", {}) or {}).items():
                if not isinstance(entry, Mapping) or "username" not in entry or "password" not in entry:
                    raise InvalidInput(f"{path}: accounts.{name} needs username and password")
                accounts[str(name)] = Credentials(str(entry["username"]), str(entry["password"]))
        for name in names:
            key = f"PREGBRIDGE_REPLAY_ACCOUNT_{_env_key(name)}"
            user, password = env.get(f"{key}_USERNAME"), env.get(f"{key}_PASSWORD")
            if user is not None and password is not None:
                accounts[name] = Credentials(user, password)
        return Secrets(accounts)

    def get(self, name: str) -> Credentials:
        try:
            return self.accounts[name]
        except KeyError:
            key = f"PREGBRIDGE_REPLAY_ACCOUNT_{_env_key(name)}"
            raise InvalidInput(f"no credentials for account {name!r}: give them in the --secrets file "
                               f"([accounts.{name}]) or as {key}_USERNAME/{key}_PASSWORD") from None
