"""A Filematch file's format read from its first bytes (filematch/formats/sniff.py), on the project's fixtures and
on the shapes that could fool it."""

from __future__ import annotations

from pathlib import Path

import pytest

from filematch.formats.sniff import SNIFF_BYTES, sniff_file, sniff_format

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "filematch"


@pytest.mark.parametrize(("name", "fmt"), [("wash-lf.csv", "csv"), ("wash-crlf.csv", "csv"), ("wash-bom.csv", "csv"),
                                           ("wash-latin1.csv", "csv"), ("wash-lf.txt", "fixed"),
                                           ("wash-crlf.txt", "fixed"), ("wash.xml", "xml")])
def test_the_fixtures_formats_are_recognised(name: str, fmt: str) -> None:
    assert sniff_file(FIX / name) == fmt


@pytest.mark.parametrize(("head", "fmt"), [
    (b'"REF";"Number";"given";"family";"birth"\r\n"1";"";"Kari";"N";""\r\n', "csv"),  # quoted, any case
    (b"\n\nref;number;given;family;birth\n", "csv"),  # blank lines first
    (b"\xef\xbb\xbf  \n <!-- a comment --><filematch/>", "xml"),
    (b"\t<filematch/>", "xml"),
    (b"R01                 17858013852Nordmann; AS\n", "fixed"),  # a ; in a fixed-width name is no header
    (b"R01;17858013852;Kari;Nordmann;17.05.1980\r\n", "csv"),  # headerless CSV: refused by the CSV reader
    (b"number;given;family\n", "csv"),  # no ref column: the CSV reader names the problem
    (b"", "csv"),  # empty: refused as before
    (b"\x00\x01\x02", "csv"),
    (b"short line\n", "csv"),
])
def test_shapes(head: bytes, fmt: str) -> None:
    assert sniff_format(head) == fmt


def test_only_the_first_bytes_are_read(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"ref;number;given;family;birth\n" + b"x" * (SNIFF_BYTES * 8))
    assert sniff_file(big) == "csv"
    one_line = tmp_path / "one-line.csv"  # a header past the bytes read is not seen: fixed (then refused as such)
    one_line.write_bytes(b" " * SNIFF_BYTES + b"ref;number\n")
    assert sniff_file(one_line) == "fixed"
