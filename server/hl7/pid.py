"""PID segments straight from a person's stored current view (store/current.py), masked by a profile's Release.

PDQ answers a page of persons, each as one PID. Through the general path (decode the document into a
:class:`store.model.Person`, :func:`server.access.apply_profile`, :func:`adapters.hl7.pid_segment`) a person
cost ~47 µs on the 1M benchmark store: ~18 to decode, ~12 to mask, ~17 to encode (docs/hl7.md). Here the
stored view (the current values only, ~0.4 KB instead of the ~2.2 KB document) is read with one
``orjson.loads`` and encoded field by field under the profile's :class:`adapters.policy.Release`
(``server.access.release_of``: the same release ``apply_profile`` and the Filematch wash read), the masking
decisions taken once per profile: no objects per item, no view, and no escaping at all for a person whose
view holds none of HL7's delimiters (the usual case; checked once on the JSON text).

This is a second encoder of the same PID, written by hand for speed, so it is held to the general one:
tests/integration/test_hl7_pid_current.py requires :func:`pid_from_current` to give exactly
``pid_segment(apply_profile(person, profile), set_id, kinds=kinds)`` for every person of a synthetic
population with a change feed applied and for hand-made edge cases (every protection level, ceased and
several numbers, deaths without status, addresses of lines, delimiters in values), under every built-in
profile and custom ones with and without history, identifiers, status, death and addresses, and with
``kinds`` filters. A change to either encoder or to the masking policy fails that test until both agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from adapters.hl7 import GENDER_CODES, Escape, cx_text, escape, masked_xad_text, segment, xad_text, xpn_text
from adapters.policy import Release
from server.access import AccessProfile, release_of
from store.current import CurrentView, read_current
from store.model import IDENTIFIER_KIND_ORDER, IdentifierStatus, stricter

__all__ = ["identifiers_pid", "pid_from_current", "pid_release"]

_DELIMITERS = ("\\", "|", "^", "&", "~")  # in JSON text CR and LF appear as \r \n: the backslash covers them


pid_release: Callable[[AccessProfile], Release] = release_of
"""The release of a profile: :func:`server.access.release_of` itself (cached; no wrapper call per message).
Its placeholders hold no HL7 delimiter (tested), so the view's escaping covers them."""


def _date(iso: str | None) -> str:
    return iso.replace("-", "") if iso else ""


def _cx(number: str, kind: str, status: str, valid_to: str | None, esc: Escape) -> str:
    return cx_text(esc(number), kind, _date(valid_to) if status == IdentifierStatus.CEASED else "")


def _xad(a: list[Any], floor: str, release: Release, esc: Escape) -> str:
    (type_, street, house_number, house_letter, lines, co, poststed, postnummer, country, bydel, kommune,
     protection) = a[:12]
    masked = release.masked.get(stricter(protection, floor))  # at the effective level (Release.masked_at, inline)
    if masked is not None:
        placeholder, keeps_kommune = masked
        return masked_xad_text(placeholder, type_, kommune if keeps_kommune else None, esc)
    contract = a[12:14] or (None, None)  # a shared residence's contract period (store.current)
    return xad_text(type_, street, house_number, house_letter, lines, co, poststed, postnummer, country, bydel,
                    kommune, esc, effective=_date(contract[0]), expires=_date(contract[1]))


def _plain(value: object) -> str:  # escape() for a view without delimiters
    return "" if value is None else str(value)


def pid_from_current(text: str, release: Release, set_id: int = 1,
                     kinds: Iterable[str] | None = None) -> tuple[str, str | None]:
    """The PID of a stored current view under ``release`` (PID-3 ``kinds`` only, if given), and the number in
    use that the PID's person is known by (None when the release shows no identifier in use)."""
    view = read_current(text)
    esc = escape if any(d in text for d in _DELIMITERS) else _plain
    fields = [""] * 30
    fields[0] = str(set_id)
    ids, number = _identifiers(view, release, kinds)
    fields[2] = "~".join(_cx(i[0], i[1], i[2], i[4], esc) for i in ids)
    name = view.name
    if release.name and name:
        given, middle, family = name
        fields[4] = xpn_text(family, given, middle, esc)
    birth = view.birth
    if release.birth and birth:
        fields[6] = _date(birth[0]) if birth[0] else (str(birth[1]) if birth[1] else "")
    if release.gender and view.gender is not None:
        fields[7] = GENDER_CODES.get(view.gender, "U")
    if release.addresses and view.addresses:
        fields[10] = "~".join(_xad(a, view.floor, release, esc) for a in view.addresses)
    fields[28], fields[29] = _death(view, release)
    return segment("PID", *fields), number


def _identifiers(view: CurrentView, release: Release,
                 kinds: Iterable[str] | None) -> tuple[list[list[Any]], str | None]:
    """The identifiers PID-3 shows, in its order (the number in use first, then others in use, then ceased
    ones: adapters.hl7.sorted_identifiers), and the number in use the person is known by (or None)."""
    if not release.identifiers:
        return [], None
    ids = view.ids if release.history else [i for i in view.ids if i[3]]
    in_use = [i for i in ids if i[2] == IdentifierStatus.IN_USE]
    number = min(in_use, key=lambda i: IDENTIFIER_KIND_ORDER.get(i[1], 9))[0] if in_use else None
    if kinds is not None:
        wanted = set(kinds)
        ids = [i for i in ids if i[1] in wanted]
    return sorted(ids, key=lambda i: (i[2] != IdentifierStatus.IN_USE, IDENTIFIER_KIND_ORDER.get(i[1], 9))), number


def identifiers_pid(text: str, release: Release, kinds: Iterable[str] | None = None) -> tuple[str | None, list[str]]:
    """PIX's PID of a stored current view: PID-1 ``1`` and PID-3 only (what :func:`pid_from_current` gives
    without demographics), None when ``release`` shows no identifier in ``kinds``; and the numbers it shows."""
    view = read_current(text)
    ids, _ = _identifiers(view, release, kinds)
    if not ids:
        return None, []
    esc = escape if any(d in text for d in _DELIMITERS) else _plain
    return "PID|1||" + "~".join(_cx(i[0], i[1], i[2], i[4], esc) for i in ids), [i[0] for i in ids]


def _death(view: CurrentView, release: Release) -> tuple[str, str]:
    deaths = (view.death if release.history else [d for d in view.death if d[1]]) if release.death else []
    statuses = (view.status if release.history else [s for s in view.status if s[1]]) if release.status else []
    if not deaths and not statuses:
        return "", ""
    death = next((d for d in deaths if d[1]), None)
    status = next((s for s in statuses if s[1]), None)
    dead = bool(death and death[0]) or bool(status and status[0] == "doed")
    return (_date(death[0]) if death and death[0] else ""), ("Y" if dead else "N")
