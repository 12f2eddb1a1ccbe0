"""XML: ``xsd/filematch.xsd``, namespace ``urn:no:pregbridge:filematch:v1``, read as a stream.

Input::

    <filematch xmlns="urn:no:pregbridge:filematch:v1">
      <record ref="A-1">
        <number>…</number><given>…</given><family>…</family><birth>1980-05-17</birth>
        <gender>K</gender><street>Storgata 1</street><postnummer>0150</postnummer><poststed>OSLO</poststed>
      </record>
      …
    </filematch>

Every child of ``record`` is optional; ``ref`` is required. Output is ``<filematchResult>`` with one
``<result ref="…" code="…">`` per record carrying the elements of :data:`RESULT_FIELDS` that have a
value, in that order.

Safety: lxml ``iterparse`` with ``resolve_entities=False``, ``no_network=True``, ``load_dtd=False`` and
no huge-tree mode; a file that contains a DOCTYPE is refused before parsing (no entity is ever expanded).
Each ``record`` element is cleared after it is read and its earlier siblings deleted, so memory stays
flat whatever the file's size. The document's own encoding declaration is honoured (UTF-8 or
ISO-8859-1); the answer is UTF-8. A record with an unknown child element or a value longer than
``max_field`` characters (``[filematch] max_field``) is refused: answered ``INVALID`` with its record
number and line, never its content, and the other records are washed (records in = records washed +
records refused). A malformed or truncated document, NUL bytes or bytes not of its encoding refuse the
file, naming the line and column libxml2 stopped at (its end cannot be trusted).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from filematch.formats.text import TextOptions
from filematch.records import INPUT_FIELDS, RESULT_FIELDS, FileFormatError, InputRecord, Result

__all__ = ["NAMESPACE", "XmlFormat"]

NAMESPACE = "urn:no:pregbridge:filematch:v1"
_RECORD = f"{{{NAMESPACE}}}record"
_ROOT = f"{{{NAMESPACE}}}filematch"
_FIELDS = frozenset(INPUT_FIELDS) - {"ref"}
_HEAD = 64 * 1024
_MAX_REF = 200


class XmlFormat:
    name = "xml"
    media_type = "application/xml"
    suffix = ".xml"

    def detect(self, path: Path, encoding: str | None = None) -> TextOptions:
        with path.open("rb") as f:
            head = f.read(_HEAD)
        if not head.strip():
            raise FileFormatError("the file is empty")
        if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
            raise FileFormatError("a DOCTYPE or entity declaration is not allowed")
        return TextOptions("utf-8", False, "\n")

    def read(self, path: Path, options: TextOptions) -> Iterator[InputRecord]:
        seq = 0
        f = path.open("rb")
        context = etree.iterparse(f, events=("start", "end"), resolve_entities=False, no_network=True,
                                  load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)
        try:
            depth = 0
            for event, el in context:
                if event == "start":
                    depth += 1
                    if depth == 1 and el.tag != _ROOT:
                        raise FileFormatError(f"the root element must be filematch in namespace {NAMESPACE}")
                    continue
                depth -= 1
                if depth != 1:
                    continue
                seq += 1
                yield self._record(seq, el, options.max_field)
                el.clear()
                parent = el.getparent()
                while parent is not None and el.getprevious() is not None:
                    del parent[0]
        except etree.XMLSyntaxError as exc:
            line, column = exc.position if exc.position and exc.position[0] else (None, None)
            raise FileFormatError("the XML is not well-formed; nothing after this can be read", line,
                                  column or None) from None
        finally:
            del context
            f.close()
        if seq == 0:
            raise FileFormatError("the file has no records")

    @staticmethod
    def _record(seq: int, el: etree._Element, max_field: int) -> InputRecord:
        ref = (el.get("ref") or "").strip()
        where = f"record {seq} (line {el.sourceline})"
        if el.tag != _RECORD:
            return InputRecord(seq, ref=ref[:_MAX_REF],
                               error=f"{where}: element {etree.QName(el).localname[:30]} is not a record")
        if len(ref) > max_field:
            return InputRecord(seq, error=f"{where}: the ref attribute is longer than {max_field} characters")
        rec = InputRecord(seq, ref=ref)
        for child in el:
            if not isinstance(child.tag, str):
                continue
            q = etree.QName(child)
            if q.namespace != NAMESPACE or q.localname not in _FIELDS:
                rec.error = f"{where}: unknown element {q.localname[:30]}"
                continue
            text = (child.text or "").strip()
            if len(text) > max_field:
                rec.error = f"{where}: element {q.localname} is longer than {max_field} characters"
                continue
            setattr(rec, q.localname, text)
        if not ref and not rec.error:
            rec.error = f"{where} has no ref attribute"
        return rec

    def header(self, options: TextOptions) -> bytes:
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<filematchResult xmlns="{NAMESPACE}">\n'.encode()

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes:
        parts = []
        for r in results:
            values = r.values()
            inner = "".join(f"<{name}>{escape(v)}</{name}>" for name, v in zip(RESULT_FIELDS[2:], values[2:],
                                                                                strict=True) if v)
            parts.append(f"  <result ref={quoteattr(r.ref)} code=\"{r.code.value}\">{inner}</result>\n")
        return "".join(parts).encode()

    def footer(self, options: TextOptions) -> bytes:
        return b"</filematchResult>\n"
