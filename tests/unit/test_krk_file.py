"""The KRK file format and register rules (store/krk.py): one clear problem per bad line, never the value."""

from __future__ import annotations

import pytest

from store.krk import HEADER, parse_krk

HEAD = ";".join(HEADER)


def _parse(*lines: str) -> tuple[list[object], list[str]]:
    entries, problems = parse_krk("\n".join((HEAD, *lines)) + "\n")
    return list(entries), [str(p) for p in problems]


def test_a_good_file_with_every_kind_of_line() -> None:
    entries, problems = parse_krk(
        "\ufeff# kommuneoverleger\n"
        f"{HEAD}\n"
        "0301;;;kommuneoverlege@oslo.example.no;21 80 21 80;2001234;1234567 7654321;\n"
        "0301;030105;;smittevern.frogner@oslo.example.no;+47 23 00 00 00;;1234567;\n"
        "\n"
        "3301;330103;Konnerud;kommunelege@drammen.example.no;32040000;;;\n"
        "1101;;;post@eigersund.example.no;0047 51 46 80 00;;;1111 1112\n")
    assert problems == []
    oslo, frogner, konnerud, eigersund = entries
    assert (oslo.area, oslo.phone, oslo.issi, oslo.hpr) == ("0301", "21802180", "2001234", ("1234567", "7654321"))
    assert (frogner.area, frogner.bydel_name, frogner.phone) == ("030105", "Frogner", "23000000")
    assert (konnerud.area, konnerud.bydel_name) == ("330103", "Konnerud")
    assert (eigersund.line, eigersund.covers, eigersund.phone) == (7, ("1111", "1112"), "51468000")


@pytest.mark.parametrize(("line", "expected"), [
    ("9999;;;post@x.example.no;21802180;;;", "line 2: error: kommune: not a kommunenummer valid from 2024-01-01"),
    ("0301;;;post@x.example.no;21802180;;;", None),
    ("1101;110101;;post@x.example.no;21802180;;;", "line 2: error: bydel: a bydel is allowed only in Oslo, Bergen, "
                                                    "Trondheim, Stavanger and Drammen"),
    ("0301;030199;;post@x.example.no;21802180;;;", "line 2: error: bydel: no such bydel in this kommune"),
    ("0301;460101;;post@x.example.no;21802180;;;", "line 2: error: bydel: not a bydelsnummer of this kommune"),
    ("3301;330101;;post@x.example.no;21802180;;;", "line 2: error: bydelsnavn: required for this bydel"),
    ("0301;;;;21802180;;;", "line 2: error: epost: required"),
    ("0301;;;not-an-address;21802180;;;", "line 2: error: epost: not an e-mail address"),
    ("0301;;;post@x.example.no;;;;", "line 2: error: telefon: required"),
    ("0301;;;post@x.example.no;2180;;;", "line 2: error: telefon: not a Norwegian phone number"),
    ("0301;;;post@x.example.no;21802180;16777216;;", "line 2: error: nodnett: not an ISSI"),
    ("0301;;;post@x.example.no;21802180;12a;;", "line 2: error: nodnett: not an ISSI"),
    ("0301;;;post@x.example.no;21802180;;12x;", "line 2: error: hpr: not a list of HPR numbers"),
    ("0301;030105;;post@x.example.no;21802180;;;1101", "line 2: error: dekker: only a kommune's contact"),
    ("1101;;;post@x.example.no;21802180;;;1101", "line 2: error: dekker: names the contact's own kommune"),
    ("1101;;;post@x.example.no;21802180;;;0000", "line 2: error: dekker: names a number that is not"),
    ("1101;;;post@x.example.no;21802180", "line 2: error: 5 columns; 8 expected"),
])
def test_one_clear_error_per_bad_line(line: str, expected: str | None) -> None:
    entries, problems = _parse(line)
    if expected is None:
        assert problems == [] and len(entries) == 1
    else:
        assert entries == []
        assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_a_personal_address_or_a_mobile_number_is_only_a_warning_and_the_value_is_never_echoed() -> None:
    entries, problems = _parse("0301;;;kari.nordmann@oslo.example.no;91234567;;;",
                               "1101;;;kommuneoverlege.eigersund@example.no;21802180;;;")
    assert len(entries) == 2
    assert problems == [
        "line 2: warning: epost: looks like a person's address; the register wants the function's generic address",
        "line 2: warning: telefon: a mobile number; the register wants the function's generic number",
    ]
    assert not any("kari" in p or "9123" in p for p in problems)


def test_rules_across_lines() -> None:
    entries, problems = _parse("1101;;;a@x.example.no;21802180;;;1111",
                               "1106;;;b@x.example.no;21802180;;;1111",
                               "1111;;;c@x.example.no;21802180;;;",
                               "1101;;;d@x.example.no;21802180;;;")
    assert problems == [
        "line 3: error: dekker: a kommune is covered by line 2 too",
        "line 5: error: the same kommune or bydel as line 2",
        "line 4: error: this kommune is covered by line 2; a covered kommune has no contact of its own",
    ]
    assert len(entries) == 4  # checked one by one; the caller refuses the file on any error


def test_header_and_encoding_problems() -> None:
    assert [str(p) for p in parse_krk("kommune;epost\n0301;a@b.no\n")[1]] == [
        "line 1: error: the header must be exactly: " + HEAD]
    assert [str(p) for p in parse_krk("# only a comment\n")[1]] == ["line 0: error: the file has no header line"]
