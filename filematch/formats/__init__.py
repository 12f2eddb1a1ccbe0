"""File formats: each turns a client's file into :class:`InputRecord` and :class:`Result` into bytes.

A format has ``name``, ``media_type``, ``suffix`` and four methods: ``detect(path, encoding)`` (encoding,
BOM and line ending, or FileFormatError), ``read(path, options)`` (a stream of records),
``header/encode/footer(…, options)`` (the answer's bytes: encoded per chunk, so that a job can store each
chunk's answer and the download is header + chunks + footer). A format that can also split its file into
blocks of raw text cheaply (:class:`SplitFormat`: CSV) lets a local wash parse in its worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from filematch.formats.csv_format import CsvFormat
from filematch.formats.fixedwidth import FixedWidthFormat
from filematch.formats.text import TextOptions
from filematch.formats.xml_format import XmlFormat
from filematch.records import InputRecord, Result

__all__ = ["FORMATS", "Format", "SplitFormat", "TextOptions", "format_named"]


class Format(Protocol):
    name: str
    media_type: str
    suffix: str

    def detect(self, path: Path, encoding: str | None = None) -> TextOptions: ...

    def read(self, path: Path, options: TextOptions) -> Iterator[InputRecord]: ...

    def header(self, options: TextOptions) -> bytes: ...

    def encode(self, results: Sequence[Result], options: TextOptions) -> bytes: ...

    def footer(self, options: TextOptions) -> bytes: ...


@runtime_checkable
class SplitFormat(Format, Protocol):
    """A format whose file the reading process splits into blocks of raw text (cheap) that are parsed where
    each is washed (dear): ``blocks`` yields picklable blocks of about ``lines`` lines, ``parse_block`` gives
    a block's records exactly as :meth:`Format.read` gives them."""

    def blocks(self, path: Path, options: TextOptions, lines: int) -> Iterator[Any]: ...

    def parse_block(self, block: Any) -> list[InputRecord]: ...


FORMATS: dict[str, Format] = {f.name: f for f in (CsvFormat(), FixedWidthFormat(), XmlFormat())}


def format_named(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name[:20]!r}; one of {', '.join(FORMATS)}") from None
