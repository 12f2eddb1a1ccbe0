"""HL7 v2 field-by-field comparison of a recorded answer with a replayed one.

Each message is read with its own encoding characters (MSH-1 field separator, MSH-2 component,
repetition, escape and subcomponent characters), split into segments, fields, repetitions, components
and subcomponents, and every leaf is unescaped (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\`` and ``\\Xhh…\\``)
*after* splitting, so an escaped delimiter compares equal to the same character sent by a sender with
other delimiters. Segment separators CR, LF and CRLF are one. Trailing empty fields, repetitions,
components and subcomponents carry no meaning in HL7 (``PID|1||x`` = ``PID|1||x|``) and are dropped.
Fields named in an ignore list (``MSH-7``, ``MSH-10`` by default; ``SEG-n``, ``SEG-n.c``, ``SEG-n.c.s``)
are skipped in every occurrence and repetition. MSH-1 and MSH-2 are syntax, not content, and are not
compared. A file may hold several messages (the commit ACK and the
application response of enhanced mode): each starts at an ``MSH`` segment, and they are paired in order.

Differences are named ``SEG[k]-f[r].c.s`` (k: occurrence of the segment, r: repetition; the component
and subcomponent only where the field has them): ``PID[1]-5[1].2: expected 'Åse' got 'Aase'``.

Hand-written rather than python-hl7 (installed, used by the tests): python-hl7 collapses a level when it
holds one item (a field without components is a ``str``, with components a list), so a uniform walk
needs type checks at every level; it numbers MSH fields as its own special case; and its ``unescape``
turns ``\\Xhh\\`` into one Latin-1 character per byte, which is wrong for UTF-8 messages (``\\XC3A5\\``
must be ``å``). The split itself is thirty lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from server.hl7.charsets import CHARSETS
from server.replay.result import Comparison, Difference, Outcome

__all__ = ["DEFAULT_HL7_IGNORES", "Hl7Message", "IgnoreField", "compare_hl7", "parse_hl7", "parse_ignore"]

DEFAULT_HL7_IGNORES = ("MSH-7", "MSH-10")

Leaf = str
Component = list[Leaf]  # subcomponents
Repetition = list[Component]  # components
Field = list[Repetition]  # repetitions

_IGNORE = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


@dataclass(frozen=True, slots=True)
class IgnoreField:
    segment: str
    field: int
    component: int | None = None
    subcomponent: int | None = None

    def __str__(self) -> str:
        tail = "".join(f".{n}" for n in (self.component, self.subcomponent) if n is not None)
        return f"{self.segment}-{self.field}{tail}"


def parse_ignore(spec: str) -> IgnoreField:
    """``MSH-7``, ``PID-5.2`` or ``PID-3.4.2`` → :class:`IgnoreField`; ValueError otherwise."""
    m = _IGNORE.match(spec.strip().upper())
    if not m:
        raise ValueError(f"not an HL7 field reference (SEG-n[.c[.s]]): {spec!r}")
    seg, f, c, s = m.groups()
    return IgnoreField(seg, int(f), int(c) if c else None, int(s) if s else None)


@dataclass(frozen=True, slots=True)
class Hl7Message:
    """A message as (segment name, fields) pairs; ``fields[n]`` is field n (``fields[0]`` unused)."""

    segments: tuple[tuple[str, tuple[Field, ...]], ...]

    def names(self) -> list[str]:
        return [name for name, _ in self.segments]


def _charset_of(raw: bytes) -> str:
    """The codec of MSH-18, read from the raw (ASCII) header; UTF-8 when empty or unknown."""
    head = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
    if head[:3] != b"MSH" or len(head) < 4:
        return "utf-8"
    parts = head.split(head[3:4])
    value = parts[17].decode("ascii", "replace").strip() if len(parts) > 17 else ""
    return CHARSETS.get(value.split("^")[0].upper(), "utf-8")


def _trim(items: list[object]) -> None:
    while items and items[-1] in ("", [], [[]], [[""]], [[[""]]]):
        items.pop()


class _Codec:
    """The delimiters of one message, splitting and unescaping its fields."""

    def __init__(self, field_sep: str, encoding: str, charset: str) -> None:
        enc = (encoding + "^~\\&")[:4] if len(encoding) < 4 else encoding[:4]
        self.field_sep = field_sep
        self.component, self.repetition, self.escape, self.subcomponent = enc[0], enc[1], enc[2], enc[3]
        self.charset = charset

    def unescape(self, text: str) -> str:
        e = self.escape
        if e not in text:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            ch = text[i]
            end = text.find(e, i + 1) if ch == e else -1
            if end < 0:
                out.append(ch)
                i += 1
                continue
            seq = text[i + 1:end]
            mapped = {"F": self.field_sep, "S": self.component, "T": self.subcomponent, "R": self.repetition,
                      "E": e}.get(seq)
            if mapped is not None:
                out.append(mapped)
            elif seq[:1] == "X" and len(seq) > 1 and len(seq) % 2 == 1 and _HEX.match(seq[1:]):
                out.append(bytes.fromhex(seq[1:]).decode(self.charset, "replace"))
            else:  # formatting (\.br\, \H\ …) and charset switches are kept as written
                out.append(text[i:end + 1])
            i = end + 1
        return "".join(out)

    def field(self, raw: str) -> Field:
        reps: Field = []
        for rep in raw.split(self.repetition):
            comps: Repetition = []
            for comp in rep.split(self.component):
                subs: Component = [self.unescape(s) for s in comp.split(self.subcomponent)]
                _trim(subs)  # type: ignore[arg-type]
                comps.append(subs)
            _trim(comps)  # type: ignore[arg-type]
            reps.append(comps)
        _trim(reps)  # type: ignore[arg-type]
        return reps


def _segments(text: str) -> list[str]:
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]


def parse_hl7(data: bytes | str) -> list[Hl7Message]:
    """Every message in ``data`` (bytes are decoded in the charset the first MSH-18 names)."""
    if isinstance(data, bytes):
        charset = _charset_of(data.lstrip(b"\x0b"))
        try:
            text = data.decode(charset)
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    else:
        charset, text = "utf-8", data
    text = text.replace("\x0b", "").replace("\x1c", "")
    messages: list[list[tuple[str, tuple[Field, ...]]]] = []
    codec = _Codec("|", "^~\\&", charset)
    for seg in _segments(text):
        name = seg[:3]
        if name == "MSH" and len(seg) >= 4:
            sep = seg[3]
            parts = seg.split(sep)
            codec = _Codec(sep, parts[1] if len(parts) > 1 else "", charset)
            # MSH-1 is the separator itself and MSH-2 the encoding characters: neither is split or unescaped
            fields: list[Field] = [[], [[[sep]]], [[[parts[1] if len(parts) > 1 else ""]]]]
            fields += [codec.field(p) for p in parts[2:]]
            messages.append([])
        else:
            if not messages:
                messages.append([])
            fields = [[]] + [codec.field(p) for p in seg.split(codec.field_sep)[1:]]
        _trim(fields)  # type: ignore[arg-type]
        messages[-1].append((name, tuple(fields)))
    return [Hl7Message(tuple(m)) for m in messages]


def _ignored(ignores: Sequence[IgnoreField], seg: str, f: int, c: int | None = None, s: int | None = None) -> bool:
    for ig in ignores:
        if ig.segment != seg or ig.field != f:
            continue
        if ig.component is None:
            return True
        if c is not None and ig.component == c and (ig.subcomponent is None or ig.subcomponent == s):
            return True
    return False


def _get(items: Sequence[object], i: int) -> object:
    return items[i] if i < len(items) else None


class _Walk:
    def __init__(self, ignores: Sequence[IgnoreField], prefix: str) -> None:
        self.ignores = ignores
        self.prefix = prefix
        self.differences: list[Difference] = []
        self.ignored = 0

    def diff(self, path: str, expected: str | None, actual: str | None, note: str = "") -> None:
        self.differences.append(Difference(self.prefix + path, expected, actual, note))

    def field(self, seg: str, label: str, f: int, exp: Field, act: Field) -> None:
        if exp == act:
            return
        if _ignored(self.ignores, seg, f):
            self.ignored += 1
            return
        for r in range(max(len(exp), len(act))):
            er, ar = _get(exp, r), _get(act, r)
            rep_path = f"{label}-{f}[{r + 1}]"
            if er is None or ar is None:
                self.diff(rep_path, _show(er), _show(ar), "" if er is not None and ar is not None else
                          ("missing repetition" if ar is None else "unexpected repetition") +
                          f" ({_show(er if ar is None else ar)})")
                continue
            assert isinstance(er, list) and isinstance(ar, list)
            multi_c = max(len(er), len(ar)) > 1
            for c in range(max(len(er), len(ar))):
                ec, ac = _get(er, c), _get(ar, c)
                ec_l = ec if isinstance(ec, list) else []
                ac_l = ac if isinstance(ac, list) else []
                if ec_l == ac_l:
                    continue
                if _ignored(self.ignores, seg, f, c + 1):
                    self.ignored += 1
                    continue
                multi_s = max(len(ec_l), len(ac_l)) > 1
                for s in range(max(len(ec_l), len(ac_l))):
                    es, as_ = _get(ec_l, s), _get(ac_l, s)
                    if (es or "") == (as_ or ""):
                        continue
                    if _ignored(self.ignores, seg, f, c + 1, s + 1):
                        self.ignored += 1
                        continue
                    path = rep_path + (f".{c + 1}" if multi_c or multi_s or c else "")
                    path += f".{s + 1}" if multi_s else ""
                    self.diff(path, str(es or ""), str(as_ or ""))

    def message(self, exp: Hl7Message, act: Hl7Message) -> None:
        en, an = exp.names(), act.names()
        if en != an and sorted(en) == sorted(an):
            self.diff("segments", None, None, f"segment order differs: expected {','.join(en)} got {','.join(an)}")
        seen_e: dict[str, list[tuple[Field, ...]]] = {}
        seen_a: dict[str, list[tuple[Field, ...]]] = {}
        for name, fields in exp.segments:
            seen_e.setdefault(name, []).append(fields)
        for name, fields in act.segments:
            seen_a.setdefault(name, []).append(fields)
        for name in list(dict.fromkeys(en + an)):
            es, as_ = seen_e.get(name, []), seen_a.get(name, [])
            for k in range(max(len(es), len(as_))):
                label = f"{name}[{k + 1}]"
                if k >= len(as_):
                    self.diff(label, None, None, "missing segment")
                    continue
                if k >= len(es):
                    self.diff(label, None, None, "unexpected segment")
                    continue
                ef, af = es[k], as_[k]
                for f in range(3 if name == "MSH" else 1, max(len(ef), len(af))):  # MSH-1/2 are syntax
                    e_field = ef[f] if f < len(ef) else []
                    a_field = af[f] if f < len(af) else []
                    self.field(name, label, f, e_field, a_field)


def _show(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return "^".join("&".join(str(s) for s in c) if isinstance(c, list) else str(c) for c in value)
    return str(value)


def _walk(expected: list[Hl7Message], actual: list[Hl7Message], ignores: Sequence[IgnoreField]) -> _Walk:
    many = max(len(expected), len(actual)) > 1
    total = _Walk(ignores, "")
    if len(expected) != len(actual):
        total.diff("messages", str(len(expected)), str(len(actual)), f"message count differs: expected "
                   f"{len(expected)} got {len(actual)}")
    for i, (e, a) in enumerate(zip(expected, actual, strict=False)):
        w = _Walk(ignores, f"message {i + 1}: " if many else "")
        w.message(e, a)
        total.differences += w.differences
        total.ignored += w.ignored
    return total


def compare_hl7(expected: bytes | str, actual: bytes | str,
                ignore: Iterable[str | IgnoreField] = DEFAULT_HL7_IGNORES) -> Comparison:
    """Compare two HL7 v2 texts (one or more messages each) field by field."""
    ignores = [i if isinstance(i, IgnoreField) else parse_ignore(i) for i in ignore]
    exp, act = parse_hl7(expected), parse_hl7(actual)
    if not act:
        return Comparison(Outcome.DIFFERS, (Difference("messages", None, None, "no HL7 message in the answer"),))
    strict = _walk(exp, act, [])
    if not strict.differences:
        return Comparison(Outcome.IDENTICAL)
    loose = _walk(exp, act, ignores)
    if not loose.differences:
        return Comparison(Outcome.EQUAL_AFTER_IGNORES, ignored=loose.ignored)
    return Comparison(Outcome.DIFFERS, tuple(loose.differences),
                      f"{len(loose.differences)} difference(s)", ignored=loose.ignored)
