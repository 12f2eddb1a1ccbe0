"""Formats and cleaning without a store: every format and line ending reads the same records; dates,
numbers and streets are cleaned as documented; multipart bodies are parsed split at every offset."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest

from filematch.clean import clean, parse_date, split_street
from filematch.formats import format_named
from filematch.formats.fixedwidth import OUTPUT_WIDTH
from filematch.records import Code, InputRecord, Result

FIX = Path(__file__).parent.parent / "fixtures" / "filematch"


def records(name: str, fmt: str) -> list[InputRecord]:
    f = format_named(fmt)
    return list(f.read(FIX / name, f.detect(FIX / name)))


def test_every_format_and_line_ending_reads_the_same_records() -> None:
    base = {r.ref: (r.number.replace(" ", ""), r.given, r.family) for r in records("wash-crlf.csv", "csv")}
    for name, fmt in [("wash-lf.csv", "csv"), ("wash-bom.csv", "csv"), ("wash-latin1.csv", "csv"),
                      ("wash-crlf.txt", "fixed"), ("wash-lf.txt", "fixed"), ("wash.xml", "xml")]:
        got = {r.ref: (r.number.replace(" ", ""), r.given, r.family) for r in records(name, fmt)}
        assert set(got) == set(base), name
        good = {k: v for k, v in got.items() if k != "R15"}
        assert good == {k: v for k, v in base.items() if k != "R15"}, name
    assert any(r.given == "Øystein" for r in records("wash-latin1.csv", "csv"))


def test_detection() -> None:
    csv_format = format_named("csv")
    assert csv_format.detect(FIX / "wash-lf.csv").newline == "\n"
    crlf = csv_format.detect(FIX / "wash-crlf.csv")
    assert (crlf.newline, crlf.encoding, crlf.bom) == ("\r\n", "utf-8", False)
    assert csv_format.detect(FIX / "wash-bom.csv").bom
    assert csv_format.detect(FIX / "wash-latin1.csv").encoding == "iso-8859-1"


@pytest.mark.parametrize(("text", "expected"), [
    ("1980-05-17", (dt.date(1980, 5, 17), 1980)), ("17.05.1980", (dt.date(1980, 5, 17), 1980)),
    ("7.5.1980", (dt.date(1980, 5, 7), 1980)), ("17051980", (dt.date(1980, 5, 17), 1980)),
    ("00.05.1980", (None, 1980)), ("1980", (None, 1980)),
])
def test_dates(text: str, expected: tuple[dt.date | None, int]) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["31.02.1980", "1980/05/17", "17-05-80", "2999-01-01"])
def test_bad_dates(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)


def test_clean_notes_problems_without_data() -> None:
    c = clean(InputRecord(1, ref="A", number="123", birth="xx", gender="?", postnummer="12"))
    assert c.number is None and c.problems == ["number:length", "birth:format", "gender:format",
                                              "postnummer:format"]
    assert not c.identifiable
    assert split_street("Storgata 12 b") == ("Storgata", "12B") and split_street("Postboks") == ("Postboks", "")


def test_fixed_width_output_layout() -> None:
    fixed = format_named("fixed")
    opts = fixed.detect(FIX / "wash-crlf.txt")
    data = fixed.encode([Result(1, "R1", Code.DECEASED, number="12345678901", birth="1940-02-03",
                                death="2024-03-01", gender="mann")], opts)
    line = data.decode("iso-8859-1").rstrip("\r\n")
    assert len(line) == OUTPUT_WIDTH == 320
    assert line[20:32].strip() == "DECEASED" and line[134:142] == "03021940" and line[142] == "M"
    assert line[155:163] == "01032024"


def test_multipart_split_at_every_offset() -> None:
    from server.http.filematch import _Body, read_multipart

    content = b"ref;number\r\nA;1\r\n" * 3
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"format\"\r\n\r\ncsv\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n"
            b"Content-Type: text/csv\r\n\r\n" + content + b"\r\n--XyZ--\r\n")

    class Trickle(io.BytesIO):
        def __init__(self, data: bytes, step: int) -> None:
            super().__init__(data)
            self.step = step

        def read(self, n: int | None = -1) -> bytes:
            return super().read(self.step)

    for step in range(1, len(body) + 1, 7):
        sink = io.BytesIO()
        env = {"CONTENT_LENGTH": str(len(body)), "wsgi.input": Trickle(body, step)}
        fields, seen = read_multipart(_Body(env, 10_000), b"XyZ", sink)
        assert seen and fields == {"format": "csv"} and sink.getvalue() == content, step


def test_csv_blocks_read_what_the_whole_file_reads_at_every_block_size(tmp_path: Path) -> None:
    """Blocks never split a quoted field (newlines, semicolons and doubled quotes inside), a broken line
    keeps its line number, and the records are those of reading the whole file."""
    text = ("\r\nref;number;given;family;birth\r\n"
            'A1;01019012345;"Ola\r\nJohan";Nordmann;1990-01-01\r\n'
            "\r\n"
            'A2;;"Kari ""Kaja""";"Berg; Hansen";1991-02-02\r\n'
            "A3;only;three\r\n"
            'A4;;"x";"multi\r\nline\r\nfamily";1992-03-03\r\n'
            "A5;;Per;Dahl;1993-04-04\r\n")
    src = tmp_path / "quoted.csv"
    src.write_bytes(text.encode())
    csv_format = format_named("csv")
    options = csv_format.detect(src)
    whole = list(csv_format.read(src, options))
    assert [r.ref for r in whole] == ["A1", "A2", "A3", "A4", "A5"]
    assert whole[0].given == "Ola\r\nJohan" and whole[1].family == "Berg; Hansen" and whole[1].given == 'Kari "Kaja"'
    assert whole[2].error == "line 7 has 3 fields, expected 5"

    def strip_seq(rs: list[InputRecord]) -> list[tuple[object, ...]]:
        return [tuple(r.to_list()[1:]) for r in rs]

    for lines in range(1, 12):
        blocks = list(csv_format.blocks(src, options, lines))  # type: ignore[attr-defined]
        parsed = [r for block in blocks for r in csv_format.parse_block(block)]  # type: ignore[attr-defined]
        assert strip_seq(parsed) == strip_seq(whole), lines
        assert [r.seq for r in parsed] == [4, 6, 7, 10, 11], lines  # the line each record ends on


def test_csv_blocks_take_a_quote_inside_an_unquoted_field_as_a_character(tmp_path: Path) -> None:
    """A quote that does not open a field (O"Neil) is a character to the csv reader: counting quotes would
    end a block inside the quoted field that follows, or never end one."""
    text = ("ref;number;given;family;birth\n"
            'B1;;Sean;O"Neil;1980-01-01\n'
            "B2;;Per;Dahl;1981-01-01\n"
            'B3;;"x";"multi\nline ""quoted""";1982-01-01\n'
            'B4;;"a"b;c"d;1983-01-01\n'
            "B5;;Kari;Berg;1984-01-01\n") + "".join(f"C{i};;Ola;Nordmann;1985-01-01\n" for i in range(40))
    src = tmp_path / "stray.csv"
    src.write_bytes(text.encode())
    csv_format = format_named("csv")
    options = csv_format.detect(src)
    whole = list(csv_format.read(src, options))
    assert len(whole) == 45 and not any(r.error for r in whole)
    assert whole[0].family == 'O"Neil' and whole[2].family == 'multi\nline "quoted"' and whole[3].given == "ab"
    for lines in range(1, 12):
        blocks = list(csv_format.blocks(src, options, lines))  # type: ignore[attr-defined]
        parsed = [r for block in blocks for r in csv_format.parse_block(block)]  # type: ignore[attr-defined]
        assert [tuple(r.to_list()[1:]) for r in parsed] == [tuple(r.to_list()[1:]) for r in whole], lines
        assert max(block.lines for block in blocks) <= lines + 1, lines  # blocks stay about `lines` long


def test_csv_answers_are_written_as_the_csv_module_writes_them() -> None:
    """Rows without ; " CR LF are joined directly, the others quoted by the csv module: the bytes are the same."""
    import csv as csv_module

    from filematch.formats.text import TextOptions

    plain = Result(1, "R1", Code.UNCHANGED, number="01019012345", given="Ola", family="Nordmann", street="Storgata 1")
    tricky = [Result(2, 'R"2', Code.UPDATED, given="Ola; Per"), Result(3, "R3", Code.INVALID, reason="line\r\nbreak"),
              Result(4, "", Code.NOT_FOUND), Result(5, " R5 ", Code.AMBIGUOUS, candidates="a b")]
    rows = [plain, *tricky, plain]
    for newline in ("\r\n", "\n"):
        options = TextOptions("utf-8", False, newline)
        expected = io.StringIO()
        csv_module.writer(expected, delimiter=";", quotechar='"', lineterminator=newline).writerows(
            r.values() for r in rows)
        assert format_named("csv").encode(rows, options) == expected.getvalue().encode()


@pytest.mark.parametrize(("fields", "identifiable"), [
    ({"family": "Nordmann", "birth": "1980-05-17"}, True),  # no given name, no address
    ({"given": "Ola", "postnummer": "0151"}, True),  # a name and an address: no birth date
    ({"birth": "17.05.1980", "street": "Storgata 1"}, True),  # no name at all
    ({"given": "Ola", "family": "Nordmann"}, False),  # names alone
    ({"birth": "1980", "gender": "M"}, False),
    ({"postnummer": "0151", "street": "Storgata 1"}, False),
])
def test_two_of_name_birth_and_address_are_enough_to_identify(fields: dict[str, str], identifiable: bool) -> None:
    """A missing field is neutral (issue 16): INVALID only for a record that cannot be identified at all."""
    assert clean(InputRecord(1, ref="r", **fields)).identifiable is identifiable
