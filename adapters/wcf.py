"""WCF DataContract building blocks shared by the Grunndata adapters (AR, FLR, HPR, KRK): pure, no I/O.

NHN's Grunndata services are WCF services whose types are written by the DataContractSerializer. The rules
every adapter follows, and the helpers here that implement them:

* members of a type go out in DataContract order: base-type members first, then the derived type's, each
  group sorted ordinally (``"GPContract"`` before ``"GPContractId"`` before ``"GPHerId"``);
  :func:`members` writes a mapping in that order;
* each member lives in the namespace of the type that declares it (not of the element that holds it);
* a null reference is a present element with ``i:nil="true"`` (:func:`nil`, :func:`text`); an empty list is
  an empty ``ArrayOfX`` element; list items are named after the item type;
* primitive arrays (``ArrayOfint``, ``ArrayOfstring``, ``ArrayOflong``) use the serialisation Arrays
  namespace (:data:`ARRAYS`);
* a fault's detail is ``GenericFault{ErrorCode, Message}`` in ``http://register.nhn.no/Common``
  (:func:`generic_fault`), the type every Grunndata WSDL declares.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

from lxml import etree

__all__ = [
    "ARRAYS",
    "COMMON",
    "XSI",
    "child_text",
    "datetime_text",
    "generic_fault",
    "members",
    "nil",
    "sub",
    "text",
    "values",
]

COMMON: Final = "http://register.nhn.no/Common"
ARRAYS: Final = "http://schemas.microsoft.com/2003/10/Serialization/Arrays"
XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
NIL: Final = f"{{{XSI}}}nil"
OPEN_END: Final = "9999-12-31T23:59:59.997"

Builder = Callable[[etree._Element], None]


def sub(parent: etree._Element, ns: str, name: str, value: object = None) -> etree._Element:
    """A child element ``{ns}name``; ``value`` (bool as ``true``/``false``) as its text when given."""
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    if value is None:
        return el
    if isinstance(value, bool):
        el.text = "true" if value else "false"
    else:
        el.text = str(value)
    return el


def nil(parent: etree._Element, ns: str, name: str) -> etree._Element:
    """A present, nil child: ``<name i:nil="true"/>``."""
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    el.set(NIL, "true")
    return el


def text(parent: etree._Element, ns: str, name: str, value: object) -> None:
    """A child with ``value`` as text, or nil when ``value`` is None."""
    if value is None:
        nil(parent, ns, name)
    else:
        sub(parent, ns, name, value)


def members(parent: etree._Element, ns: str, items: Mapping[str, object]) -> None:
    """Write a type's members in DataContract (ordinal) order: ``None`` → nil, a callable builds the
    member's content into the element it is given, an element is appended as it is (it must be named
    ``{ns}name``; a prebuilt member), anything else is the member's text."""
    for name in sorted(items):
        value = items[name]
        if value is None:
            nil(parent, ns, name)
        elif isinstance(value, etree._Element):
            parent.append(value)
        elif callable(value):
            value(sub(parent, ns, name))
        else:
            sub(parent, ns, name, value)


def datetime_text(value: Any) -> str:
    """xs:dateTime as WCF writes it: UTC times with ``Z``, dates at midnight; an open end (``None`` or
    ``9999-12-31``) as DateTime.MaxValue (``9999-12-31T23:59:59.997``)."""
    if value is None:
        return OPEN_END
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return str(value.isoformat(timespec="seconds")) + "Z"
    if isinstance(value, dt.date):
        value = value.isoformat()
    out: str = str(value)
    if out.startswith("9999-12-31"):
        return OPEN_END
    if len(out) == 10:
        return out + "T00:00:00"
    return out


def generic_fault(error_code: str, message: str) -> etree._Element:
    """``GenericFault{ErrorCode, Message}`` in the Common namespace, for a SOAP fault's detail."""
    fault = etree.Element(f"{{{COMMON}}}GenericFault", nsmap={None: COMMON, "i": XSI})
    sub(fault, COMMON, "ErrorCode", error_code)
    sub(fault, COMMON, "Message", message)
    return fault


def child_text(body: etree._Element, ns: str, name: str) -> str | None:
    """The stripped text of the request's child ``{ns}name``; None if absent or nil."""
    el = body.find(f"{{{ns}}}{name}")
    if el is None or el.get(NIL) == "true":
        return None
    return (el.text or "").strip()


def values(body: etree._Element, ns: str, name: str, item: str) -> list[str]:
    """The texts of the ``{ARRAYS}item`` children of an ``ArrayOfX`` child ``{ns}name`` (absent: empty)."""
    el = body.find(f"{{{ns}}}{name}")
    if el is None:
        return []
    return [(i.text or "").strip() for i in el.iterfind(f"{{{ARRAYS}}}{item}")]

