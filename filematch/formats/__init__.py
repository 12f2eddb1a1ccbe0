"""File formats: each turns a client's file into :class:`InputRecord` and :class:`Result` into bytes.

A format has ``name``, ``media_type``, ``suffix`` and four methods: ``detect(path, encoding)`` (encoding,
BOM and line ending, or FileFormatError), ``read(path, options)`` (a stream of records),
``header/encode/footer(…, options)`` (the answer's bytes: encoded per chunk, so that a job can store each
chunk's answer and the download is header + chunks + footer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from filematch.formats.csv_format import CsvFormat
from filematch.formats.fixedwidth import FixedWidthFormat
from filematch.formats.text import TextOptions
from filematch.formats.xml_format import XmlFormat
from filematch.records import InputRecord, Result

__all__ = ["FORMATS", "Format", "TextOptions", "format_named"]


class Format(Protocol):
    name: str
    media_type: str
    suffix: str

    def detect(self, path: Path, encoding: str | None = None) -> TextOptions: ...

    def read(self, path: Path, options: TextOptions) -> Iterator[InputRecord]: ...

    def header(self, options: TextOptions) -> bytes: ...

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes: ...

    def footer(self, options: TextOptions) -> bytes: ...


FORMATS: dict[str, Format] = {f.name: f for f in (CsvFormat(), FixedWidthFormat(), XmlFormat())}


def format_named(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name[:20]!r}; one of {', '.join(FORMATS)}") from None
