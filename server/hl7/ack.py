"""Acknowledgements: MSA, ERR and QAK segments, reply MSH, and the original/enhanced acknowledgement modes.

Also the value types every handler speaks: :class:`Request` (a parsed message with its sender) and
:class:`Reply` (the application response: its type, MSA-1 code, ERR entries and body segments).

Codes, exactly per HL7 v2.5 chapter 2:

- MSA-1 (table 0008): ``AA`` accepted, ``AE`` error (processing failed; the sender may retry), ``AR``
  reject (bad message, unsupported type/version/processing id, sender not allowed; do not retry).
  Enhanced mode commit codes: ``CA`` accepted, ``CE`` error, ``CR`` reject.
- QAK-2 (table 0208): ``OK`` data found, ``NF`` no data found, ``AE`` application error, ``AR`` reject.
- ERR-3 (table 0357): 0, 100–104, 200–207 with their table texts (:data:`TABLE_0357`). From v2.5 the
  location is ERR-2 (ERL ``QPD^1^3^1^1``), the code ERR-3 (CWE ``204^Unknown key identifier^HL70357``),
  the severity ERR-4 (``E``) and the text ERR-8; for v2.3/2.4 senders the same goes into ERR-1 (ELD
  ``QPD^1^3^204&Unknown key identifier&HL70357``), the only ERR field those versions have.

Acknowledgement modes (:class:`AckMode`):

- **Original mode** (MSH-15 and MSH-16 both empty): exactly one reply, the application response
  (RSP/ADR/ACK) with MSA-1 AA, AE or AR.
- **Enhanced mode** (either field valued): first a commit ACK, ``ACK^<trigger>^ACK`` with MSA-1 CA,
  CE or CR, sent when MSH-15 says so; then the application response, sent when MSH-16 says so. Both
  fields take AL (always), NE (never), ER (only on error/reject) or SU (only on success); an empty
  field in enhanced mode means AL. The commit code is CR when the message is rejected (the
  application reply would be AR), CE when it could not be processed for an internal reason (table 0357
  code 207 with AE), else CA. Both replies go back on the same connection, commit first: this receiver
  answers synchronously, so "accept" and "application" happen together. With AL/NE the sender gets only
  the CA — for a query that means no result, which is what it asked for. Any other MSH-15/16 value is
  rejected (AR, ERR ``MSH^1^15`` / ``MSH^1^16``, code 103).
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
from dataclasses import dataclass, field

from adapters.hl7 import escape, segment
from server.access import AccessProfile
from server.hl7.listener import Peer
from server.hl7.reader import Message, Segment

__all__ = ["ACK_VALUES", "SUPPORTED_VERSIONS", "TABLE_0357", "AckMode", "Hl7Error", "Msh", "Reply", "Request",
           "build_reply", "err_segment", "msa_segment", "qak_segment", "reply_msh"]

TABLE_0357 = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}
ACK_VALUES = frozenset({"AL", "NE", "ER", "SU"})
SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6")
_COMMIT = {"AA": "CA", "AE": "CA", "AR": "CR"}
_QAK = {"AA": "OK", "AE": "AE", "AR": "AR"}
_counter = itertools.count(1)
_PREFIX = f"{os.getpid() % 100000:05d}"


_last_stamp: tuple[int, str] = (-1, "")


def _stamp() -> str:
    """Local time as MSH-7 (``YYYYMMDDHHMMSS``); formatted once per second."""
    global _last_stamp
    second = int(time.time())
    if _last_stamp[0] != second:
        _last_stamp = (second, dt.datetime.fromtimestamp(second).strftime("%Y%m%d%H%M%S"))
    return _last_stamp[1]


def control_id() -> str:
    """A new MSH-10: process-unique and increasing (pid prefix, counter), at most 20 characters."""
    return f"PB{_PREFIX}{next(_counter):010d}"


@dataclass(frozen=True, slots=True)
class Msh:
    """The MSH fields a receiver reads (unescaped text)."""

    field_separator: str
    encoding_characters: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    trigger: str
    structure: str
    control_id: str
    processing_id: str
    version: str
    accept_ack: str
    application_ack: str
    charset: str

    @property
    def short_version(self) -> bool:
        """v2.3/2.4 (ERR-1 only; v2.3 has a two-component MSH-9)."""
        return self.version in ("2.3", "2.3.1", "2.4")


@dataclass(frozen=True, slots=True)
class Hl7Error:
    """One ERR segment: table 0357 ``code``, ``location`` (ERL ``SEG^1^field^rep^comp``) and a text (ERR-8)."""

    code: str
    text: str = ""
    location: str = ""
    severity: str = "E"


@dataclass
class Request:
    """A message as the handlers see it. ``asked``/``returned`` collect identity numbers for the audit."""

    message: Message
    msh: Msh
    peer: Peer
    account: str
    profile: AccessProfile
    asked: list[str] = field(default_factory=list)
    returned: list[str] = field(default_factory=list)

    def segment(self, name: str) -> Segment | None:
        """The first segment ``name``, or None."""
        return self.message.segment(name)

    def raw_segment(self, name: str) -> str:
        """The segment re-encoded with the standard delimiters (for echoing QPD/QRD/QRF), or ''."""
        seg = self.message.segment(name)
        if seg is None:
            return ""
        if self.msh.field_separator == "|" and self.msh.encoding_characters[:4] == "^~\\&":
            return str(seg)
        return seg.reencoded(self.msh.field_separator + self.msh.encoding_characters[:4])


@dataclass
class Reply:
    """An application response before encoding: MSH-9 parts, MSA-1, ERR entries, the segments after them."""

    message_type: str
    trigger: str
    structure: str
    ack_code: str = "AA"
    errors: list[Hl7Error] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    text: str = ""
    internal: bool = False  # failed for an internal reason (commit CE in enhanced mode)


@dataclass(frozen=True, slots=True)
class AckMode:
    enhanced: bool
    accept: str
    application: str

    @classmethod
    def of(cls, msh15: str, msh16: str) -> AckMode:
        """The mode MSH-15/16 ask for; raises ValueError naming the field for a value outside table 0155."""
        a, b = msh15.strip().upper(), msh16.strip().upper()
        for value, name in ((a, "15"), (b, "16")):
            if value and value not in ACK_VALUES:
                raise ValueError(name)
        if not a and not b:
            return cls(False, "", "")
        return cls(True, a or "AL", b or "AL")

    @staticmethod
    def _wanted(rule: str, success: bool) -> bool:
        return rule == "AL" or (rule == "SU" and success) or (rule == "ER" and not success)

    def commit_code(self, reply: Reply) -> str:
        return "CE" if reply.internal else _COMMIT[reply.ack_code]

    def send_commit(self, reply: Reply) -> bool:
        return self.enhanced and self._wanted(self.accept, self.commit_code(reply) == "CA")

    def send_application(self, reply: Reply) -> bool:
        return not self.enhanced or self._wanted(self.application, reply.ack_code == "AA")


def reply_msh(msh: Msh | None, message_type: str, trigger: str, structure: str, *, application: str,
              facility: str, charset: str, version: str = "2.5", now: dt.datetime | None = None) -> str:
    """The MSH of a reply: sender and receiver swapped, MSH-11/12 copied, MSH-18 in the reply's charset."""
    stamp = now.strftime("%Y%m%d%H%M%S") if now is not None else _stamp()
    sender = (msh.receiving_application, msh.receiving_facility, msh.sending_application, msh.sending_facility,
              msh.processing_id, msh.version) if msh is not None else None
    key = (sender, message_type, trigger, structure, application, facility, charset, version)
    parts = _MSH_PARTS.get(key)
    if parts is None:
        parts = _msh_parts(msh, message_type, trigger, structure, application, facility, charset, version)
        if len(_MSH_PARTS) >= 1024:  # a sender's MSH differs per message only in MSH-7 and MSH-10: keys are few
            _MSH_PARTS.clear()
        _MSH_PARTS[key] = parts
    return f"{parts[0]}{stamp}|{parts[1]}|{control_id()}{parts[2]}"


# (MSH-1 … MSH-6, MSH-8 … MSH-9, MSH-11 … MSH-18) of a reply, escaped, per the request's MSH fields it copies
# and the reply's type: the escaping was a tenth of a PIX answer.
_MSH_PARTS: dict[tuple[object, ...], tuple[str, str, str]] = {}


def _msh_parts(msh: Msh | None, message_type: str, trigger: str, structure: str, application: str, facility: str,
               charset: str, version: str) -> tuple[str, str, str]:
    v = msh.version if msh and msh.version in SUPPORTED_VERSIONS else version
    short = v == "2.3"
    mtype = f"{message_type}^{trigger}" + ("" if short or not structure else f"^{structure}")
    head = [
        "^~\\&",
        escape(msh.receiving_application if msh and msh.receiving_application else application),
        escape(msh.receiving_facility if msh and msh.receiving_facility else facility),
        escape(msh.sending_application) if msh else "",
        escape(msh.sending_facility) if msh else "",
    ]
    tail = [
        escape(msh.processing_id) if msh and msh.processing_id else "P",
        escape(v),
        "", "", "", "", "",
        escape(charset),
    ]
    # MSH-10 (a control id) is never empty, so trailing empty fields end after it at most
    return "MSH|" + "|".join(head) + "|", "|" + mtype, ("|" + "|".join(tail)).rstrip("|")


def msa_segment(code: str, control: str, text: str = "") -> str:
    return segment("MSA", code, escape(control), escape(text))


def err_segment(e: Hl7Error, *, short_version: bool) -> str:
    name = TABLE_0357.get(e.code, "")
    if short_version:
        loc = ([*e.location.split("^"), "", "", ""])[:3] if e.location else ["", "", ""]
        return segment("ERR", "^".join([*loc, f"{e.code}&{escape(name)}&HL70357"]))
    return segment("ERR", "", e.location, f"{e.code}^{escape(name)}^HL70357", e.severity, "", "", "",
                   escape(e.text))


def qak_segment(tag: str, status: str, query_name: str, total: int | None = None, payload: int | None = None,
                remaining: int | None = None) -> str:
    counts = [str(x) if x is not None else "" for x in (total, payload, remaining)]
    return segment("QAK", escape(tag), status, query_name, *counts)


def qak_status(ack_code: str, found: bool) -> str:
    return "OK" if ack_code == "AA" and found else "NF" if ack_code == "AA" else _QAK[ack_code]


def build_reply(msh: Msh | None, reply: Reply, mode: AckMode, *, application: str, facility: str,
                charset: str) -> list[str]:
    """The reply messages (ER7 text, CR-terminated segments) ``mode`` calls for: [commit ACK][application reply]."""
    control = msh.control_id if msh else ""
    short = msh.short_version if msh else False
    out: list[str] = []
    if mode.send_commit(reply):
        code = mode.commit_code(reply)
        segs = [reply_msh(msh, "ACK", msh.trigger if msh else "", "ACK", application=application, facility=facility,
                          charset=charset), msa_segment(code, control)]
        if code != "CA":
            segs += [err_segment(e, short_version=short) for e in reply.errors]
        out.append("\r".join(segs) + "\r")
    if mode.send_application(reply):
        segs = [reply_msh(msh, reply.message_type, reply.trigger, reply.structure, application=application,
                          facility=facility, charset=charset),
                msa_segment(reply.ack_code, control, reply.text)]
        segs += [err_segment(e, short_version=short) for e in reply.errors]
        segs += reply.body
        out.append("\r".join(segs) + "\r")
    return out
