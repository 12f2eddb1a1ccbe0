"""Hostile Filematch files: over real HTTP against the served face, through the CLI as a subprocess, and
the formats themselves; SQLite and PostgreSQL where a store is used.

Each case asserts the typed answer (a refused line answered INVALID naming its line and column, or a 4xx
JSON naming line and column), that records in = records washed + lines refused, that a normal request is
answered right after, and that no traceback and no record content reached the log or the error.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from filematch.formats import format_named
from filematch.formats.csv_format import _closes, _quote_state, neutralise
from filematch.formats.text import MAX_FIELD
from filematch.records import FileFormatError
from store import schema
from tests.integration.test_filematch_http import PASSWORD, server, wait_done  # noqa: F401 - the served face
from tests.integration.test_filematch_pipeline import EXPECTED, FIX, load_persons

ROOT = Path(__file__).parents[2]
HEADER = "ref;number;given;family;birth;gender;street;postnummer;poststed\r\n"
# the 14 records of the fixture whose lines are whole (its R15 is a line of three fields)
GOOD = [ln for ln in (FIX / "wash-crlf.csv").read_text(encoding="utf-8").splitlines(keepends=True)[1:]
        if not ln.startswith("R15;")]
WHOLE = {ref: code for ref, code in EXPECTED.items() if ref != "R15"}
SECRET_NUMBER, SECRET_NAME, SECRET_BIRTH = "17858013852", "Zelda", "17.05.1980"  # content no error may show
TRACE = ("Traceback", 'File "', "csv.Error", "field larger than field limit")


def register(n: int, *, replace: dict[int, str] | None = None) -> str:
    """A CSV of ``n`` records: the 14 whole fixture records over and over with numbered refs (R01-3), line
    ``i`` (1-based, header = 1) replaced by ``replace[i]``."""
    lines = [HEADER]
    for i in range(n):
        ref, rest = GOOD[i % len(GOOD)].split(";", 1)
        lines.append(f"{ref}-{i // len(GOOD)};{rest}")
    for i, text in (replace or {}).items():
        lines[i - 1] = text
    return "".join(lines)


def rows_of(body: bytes, encoding: str = "utf-8") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode(encoding), newline=""), delimiter=";"))


def assert_clean(text: str, *secrets: str) -> None:
    assert not any(t in text for t in TRACE), text[-3000:]
    assert not any(s and s in text for s in (SECRET_NUMBER, SECRET_NAME, SECRET_BIRTH, *secrets)), text[-3000:]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    err = capfd.readouterr().err  # wsgiref prints an unhandled exception's traceback here
    assert_clean(caplog.text + err)


def post(url: str, data: bytes | str, *, name: str = "register.csv", fmt: str = "csv", user: str = "kari",
         **fields: str) -> requests.Response:
    body = data.encode("utf-8") if isinstance(data, str) else data
    return requests.post(f"{url}/jobs", auth=(user, PASSWORD), files={"file": (name, body)},
                         data={"format": fmt, **fields}, timeout=30)


def normal_request_answered(url: str) -> None:
    r = post(url, register(14))
    assert r.status_code == 202, r.text
    info = wait_done(url, r.json()["job"], "kari")
    assert info["records"] == 14 and info["refused"] == 0


def washed(url: str, response: requests.Response) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, str]]]:
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    info = wait_done(url, job, "kari")
    report = requests.get(f"{url}/jobs/{job}/report", auth=("kari", PASSWORD), timeout=10).json()
    body = requests.get(f"{url}/jobs/{job}/result", auth=("kari", PASSWORD), timeout=10).content
    rows = rows_of(body)
    assert report["records"] == len(rows) == info["records"]  # one answer per record, nothing merged
    assert report["records"] == report["washed"] + report["refused"] and report["refused"] == info["refused"]
    return info, report, rows


# -- broken lines: refused one by one, the rest washed -------------------------------------------------


def test_an_unbalanced_quote_refuses_its_line_only(server: tuple[str, Engine], log: None) -> None:  # noqa: F811
    url, _ = server
    info, report, rows = washed(url, post(url, register(200, replace={3: f'R02-0;;"{SECRET_NAME};Ås;1975\r\n'})))
    assert info["records"] == 200 and report["refused"] == 1 and report["washed"] == 199
    bad = rows[1]
    assert bad["code"] == "INVALID" and bad["ref"] == "R02-0"
    assert bad["reason"] == "line 3: an unbalanced quote in column 3 (given)"
    assert report["problems"] == [bad["reason"]]
    n = len(GOOD)
    assert [r["ref"] for r in rows[2:]] == [f"{GOOD[i % n].split(';')[0]}-{i // n}" for i in range(2, 200)]
    assert {r["ref"][:3]: r["code"] for r in rows[n : 2 * n]} == WHOLE  # the lines after it washed as usual
    normal_request_answered(url)


@pytest.mark.parametrize(("size", "reason"), [
    (MAX_FIELD + 1, f"line 4: column 4 (family) is longer than {MAX_FIELD} characters"),
    (128 * 1024 + 1, "line 4: the line is longer than 20510 characters"),  # was an HTML 500 (csv field limit)
    (900_000, "line 4: the line is longer than 20510 characters"),  # (the face's test upload limit: 1 MB)
])
def test_an_over_long_field_refuses_its_line(server: tuple[str, Engine], log: None, size: int,  # noqa: F811
                                             reason: str) -> None:
    url, _ = server
    text = register(30, replace={4: f"R03-0;;Per;{'x' * size};03021940\r\n"})
    info, report, rows = washed(url, post(url, text))
    assert (info["records"], report["refused"]) == (30, 1)
    assert rows[2]["code"] == "INVALID" and rows[2]["reason"] == reason and "xxx" not in rows[2]["reason"]
    normal_request_answered(url)


def test_a_line_with_the_wrong_number_of_fields_is_refused_and_counted(server: tuple[str, Engine],  # noqa: F811
                                                                       log: None) -> None:
    url, _ = server
    info, report, rows = washed(url, post(url, register(20, replace={5: "R04-0;1;2\r\n", 6: ";" * 5000 + "\r\n"})))
    assert report["refused"] == 2 and rows[3]["reason"] == "line 5 has 3 fields, expected 9"
    assert rows[4]["reason"] == "line 6 has 5001 fields, expected 9"


# -- broken files: a 4xx JSON naming line and column, never content --------------------------------------


def _refused(r: requests.Response, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status and r.headers["Content-Type"] == "application/json", r.text
    body = r.json()
    assert_clean(r.text)
    return dict(body)


def test_nul_bytes_refuse_the_file_naming_line_and_column(server: tuple[str, Engine], log: None) -> None:  # noqa: F811
    url, _ = server
    body = _refused(post(url, register(10, replace={4: f"R03-0;;{SECRET_NAME}\x00;Olsen;03021940\r\n"})))
    assert (body["line"], body["column"]) == (4, 13) and "NUL" in body["error"]
    normal_request_answered(url)


def test_a_wrong_encoding_refuses_the_file_naming_line_and_column(server: tuple[str, Engine],  # noqa: F811
                                                                   log: None) -> None:
    url, _ = server
    latin1 = register(10).encode("utf-8").replace("Ås".encode(), "Ås".encode("iso-8859-1"))
    body = _refused(post(url, latin1, encoding="utf-8"))
    assert (body["line"], body["column"]) == (3, 28) and "not valid UTF-8" in body["error"]  # bytes, Ø is two
    utf16 = _refused(post(url, register(3).encode("utf-16")))
    assert utf16["line"] == 1 and "UTF-16" in utf16["error"]
    normal_request_answered(url)


def test_a_file_without_header_is_refused_without_echoing_its_first_record(server: tuple[str, Engine],  # noqa: F811
                                                                          log: None) -> None:
    url, _ = server
    first = f"R01;{SECRET_NUMBER};{SECRET_NAME};Nordmann;{SECRET_BIRTH};K;Storgata 1;0150;OSLO\r\n"
    body = _refused(post(url, first + "".join(GOOD)))
    assert (body["line"], body["column"]) == (1, 1) and "unknown column" in body["error"]
    normal_request_answered(url)


@pytest.mark.parametrize("how", ["raw", "multipart", "blank lines", "header only"])
def test_an_empty_file_is_422(server: tuple[str, Engine], log: None, how: str) -> None:  # noqa: F811
    url, _ = server
    if how == "raw":
        r = requests.post(f"{url}/jobs?format=csv", auth=("kari", PASSWORD), data=b"", timeout=10)
    else:
        r = post(url, {"multipart": b"", "blank lines": b"\r\n \r\n", "header only": HEADER.encode()}[how])
    body = _refused(r)
    assert "empty" in body["error"] or "no records" in body["error"]
    assert how == "header only" or (body["line"], body["column"]) == (1, 1)
    normal_request_answered(url)


def test_a_second_file_part_is_refused_and_nothing_is_kept(server: tuple[str, Engine], log: None) -> None:  # noqa: F811
    url, engine = server
    with engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(schema.filematch_job)).scalar_one()
    for files in ([("file", ("a.csv", register(5))), ("file", ("b.csv", register(5)))],
                  [("file", ("a.csv", register(5))), ("other", ("b.csv", register(5)))]):
        body = _refused(requests.post(f"{url}/jobs", auth=("kari", PASSWORD), files=files, timeout=10), 400)
        assert "one file per job" in body["error"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(schema.filematch_job)).scalar_one() == before
    normal_request_answered(url)


# -- formula-like values: neutralised in the CSV answer ------------------------------------------------


def test_formula_like_values_are_neutralised_and_can_be_read_back(server: tuple[str, Engine],  # noqa: F811
                                                                   log: None) -> None:
    url, _ = server
    refs = ['=HYPERLINK("http://x")', "+41", "-5", "@SUM(A1)", "\tR", "'quoted", "R-ok"]
    quoted = ['"' + r.replace('"', '""') + '"' if '"' in r else r for r in refs]
    lines = {2 + i: ref + ";" * 8 + "\r\n" for i, ref in enumerate(quoted)}
    _, _, rows = washed(url, post(url, register(len(refs), replace=lines)))
    shown = [r["ref"] for r in rows]
    assert shown == ["'" + ref for ref in refs[:-1]] + ["R-ok"]
    assert [s[1:] if s.startswith("'") else s for s in shown] == refs  # one apostrophe too many, exactly
    assert all(not r["ref"].startswith(("=", "+", "-", "@", "\t")) for r in rows)


def test_neutralise_is_the_documented_rule() -> None:
    assert [neutralise(v) for v in ("", "Ola", "-5", "=1", "+1", "@x", "\tx", "\rx", "'x", "a-b", "1=1")] == [
        "", "Ola", "'-5", "'=1", "'+1", "'@x", "'\tx", "'\rx", "''x", "a-b", "1=1"]


# -- fixed width and XML ---------------------------------------------------------------------------------


def test_fixed_width_over_long_line_and_nul(server: tuple[str, Engine], log: None) -> None:  # noqa: F811
    url, _ = server
    lines = (FIX / "wash-crlf.txt").read_text(encoding="iso-8859-1").splitlines(keepends=True)
    text = "".join(lines[:3]) + "R99" + " " * 17 + "x" * 900_000 + "\r\n" + "".join(lines[3:])
    info, report, rows = washed_fixed(url, post(url, text.encode("iso-8859-1"), name="r.txt", fmt="fixed"))
    assert report["refused"] == 3 and info["records"] == len(lines) + 1  # (and the fixture's two short lines)
    assert report["problems"] == ["line 4 is longer than 169 characters, expected 31-169",
                                  "line 9 is 25 characters long, expected 31-169",
                                  "line 16 is 3 characters long, expected 31-169"]
    body = _refused(post(url, b"".join(ln.encode("iso-8859-1") for ln in lines[:2]) + b"R1\x00\r\n", name="r.txt",
                         fmt="fixed"))
    assert (body["line"], body["column"]) == (3, 3)
    normal_request_answered(url)


def washed_fixed(url: str, response: requests.Response) -> tuple[dict[str, Any], dict[str, Any], int]:
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    info = wait_done(url, job, "kari")
    report = requests.get(f"{url}/jobs/{job}/report", auth=("kari", PASSWORD), timeout=10).json()
    assert report["records"] == report["washed"] + report["refused"] == info["records"]
    return info, report, report["records"]


def test_xml_over_long_element_malformed_and_nul(server: tuple[str, Engine], log: None) -> None:  # noqa: F811
    url, _ = server
    xml = (FIX / "wash.xml").read_text(encoding="utf-8")
    long = xml.replace("<given>Kari</given>", f"<given>{'k' * (MAX_FIELD + 1)}</given>", 1)
    info, report, _ = washed_fixed(url, post(url, long, name="r.xml", fmt="xml"))
    assert report["refused"] == 2 and report["problems"] == [  # (and the fixture's own broken record)
        f"record 1 (line 3): element given is longer than {MAX_FIELD} characters",
        "record 15 (line 17): unknown element shoeSize"]
    body = _refused(post(url, xml.replace("</record>", "", 2), name="r.xml", fmt="xml"))
    assert body["line"] >= 3 and body["column"] >= 1 and "not well-formed" in body["error"]
    body = _refused(post(url, xml.replace("Kari", "Ka\x00ri", 1), name="r.xml", fmt="xml"))
    assert body["line"] == 3 and "not well-formed" in body["error"]
    normal_request_answered(url)


# -- the CLI: a local wash and a submit -------------------------------------------------------------------


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PREGBRIDGE_PASSWORD=PASSWORD)
    return subprocess.run([sys.executable, "-m", "server.filematch_cli", "--database-url", db_url, "filematch",
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_the_cli_run_refuses_lines_and_files_as_the_face_does(engine: Engine, db_url: str, tmp_path: Path) -> None:
    load_persons(engine)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(register(40, replace={3: f'R02-0;;"{SECRET_NAME};Ås;1975\r\n', 9: "=cmd" + ";" * 8 + "\r\n"}),
                   encoding="utf-8")
    done = cli(db_url, "run", str(src), "-o", str(out), "--processes", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 line(s) refused unread (INVALID), 39 washed" in done.stdout
    assert "line 3: an unbalanced quote in column 3 (given)" in done.stdout
    rows = rows_of(out.read_bytes())
    assert len(rows) == 40 and rows[1]["code"] == "INVALID" and rows[7]["ref"] == "'=cmd"
    assert_clean(done.stdout + done.stderr)
    for data, where in ((b"", "line 1, column 1"), (register(5).encode().replace(b"Kari", b"Ka\x00ri"), "line 2"),
                        (f"R01;{SECRET_NUMBER};{SECRET_NAME}\r\n".encode(), "line 1, column 1")):
        src.write_bytes(data)
        done = cli(db_url, "run", str(src), "-o", str(out))
        assert done.returncode == 2 and f"error: {where}" in done.stdout + done.stderr
        assert not out.exists()  # no half-written answer left behind
        assert_clean(done.stdout + done.stderr)


def test_the_cli_submit_shows_the_faces_refusal(server: tuple[str, Engine], db_url: str,  # noqa: F811
                                                tmp_path: Path) -> None:
    url, _ = server
    src = tmp_path / "empty.csv"
    src.write_bytes(b"")
    done = cli(db_url, "submit", str(src), "--url", url.removesuffix("/filematch/v1"), "--user", "kari")
    assert done.returncode == 2 and "422" in done.stdout + done.stderr and "empty" in done.stdout + done.stderr


# -- the formats: every block size reads as the whole file, whatever is broken ------------------------------


HOSTILE = ("\r\n" + HEADER + "".join(GOOD[:3])
           + 'H1;;"open;Berg;1990-01-01\r\n'  # unbalanced quote
           + "".join(GOOD[3:6])
           + 'H2;;"Ola\r\nJohan";Nordmann;1990-01-01;K;;;\r\n'  # a quoted line break: one record of two lines
           + 'H3;;"x"y;Berg;1990-01-01;K;;;\r\n'  # a quote closed early: read leniently, one record
           + "H4;;" + "z" * (MAX_FIELD + 5) + ";Berg;1990-01-01;K;;;\r\n"
           + "H5;;" + "w" * 30_000 + "\r\n"
           + 'H6;;"closes late\r\n' + "".join(GOOD[6:9]) + 'end";Berg;;;;;;;;;;\r\n'  # closes, too wide
           + "\r\n" + "".join(GOOD[9:]) + 'H7;;;;"never closed')


def test_hostile_csv_reads_the_same_at_every_block_size(tmp_path: Path) -> None:
    src = tmp_path / "hostile.csv"
    src.write_text(HOSTILE, encoding="utf-8")
    fmt = format_named("csv")
    options = fmt.detect(src)
    assert not options.plain
    whole = list(fmt.read(src, options))
    physical = HOSTILE.count("\n") + 1
    blank = 2
    assert len(whole) == physical - blank - 1 - 1  # every line a record but the header, the blanks, H2's 2nd
    errors = {r.seq: r.error for r in whole if r.error}
    assert sorted(e.split(": ", 1)[-1] if "fields" not in e else "fields" for e in errors.values()) == sorted([
        "an unbalanced quote in column 3 (given)", f"column 3 (given) is longer than {MAX_FIELD} characters",
        "the line is longer than 20510 characters", "an unbalanced quote in column 3 (given)",
        "an unbalanced quote in column 5 (birth)", "fields"])  # (the line after H6)
    assert next(r for r in whole if r.ref == "H2").given == "Ola\r\nJohan"
    assert next(r for r in whole if r.ref == "H3").given == "xy"
    for lines in (1, 2, 3, 5, 8, 13, 100):
        blocks = list(fmt.blocks(src, options, lines))  # type: ignore[attr-defined]
        parsed = [r for b in blocks for r in fmt.parse_block(b)]  # type: ignore[attr-defined]
        assert [r.to_list()[1:] for r in parsed] == [r.to_list()[1:] for r in whole], lines
        assert max(len(b.text) for b in blocks) < 25_000  # the 30,000-character line is sent as its head


def test_plain_and_checked_reading_agree_on_a_plain_file(tmp_path: Path) -> None:
    """The fast path (csv module over the file) against the checked one (every line through the scanner)."""
    src = tmp_path / "plain.csv"
    src.write_text(register(300, replace={7: "R06-0;1;2\r\n", 9: "\r\n"}), encoding="utf-8")
    fmt = format_named("csv")
    options = fmt.detect(src)
    assert options.plain
    from dataclasses import replace as with_

    checked = with_(options, has_quotes=True)
    assert [r.to_list() for r in fmt.read(src, options)] == [r.to_list() for r in fmt.read(src, checked)]
    for lines in (1, 7, 1000):
        fast = [r for b in fmt.blocks(src, options, lines) for r in fmt.parse_block(b)]  # type: ignore[attr-defined]
        slow = [r for b in fmt.blocks(src, checked, lines) for r in fmt.parse_block(b)]  # type: ignore[attr-defined]
        assert [r.to_list() for r in fast] == [r.to_list() for r in slow]


def test_detection_names_the_line_and_column(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    for data, encoding, where in ((b"ab\ncd\nef\x00", None, (3, 3)), (b"ab\r\ncd\xc3", "utf-8", (2, 3)),
                                  (b"a\n" * 700_000 + b"\xff", "utf-8", (700_001, 1)),  # past the first block
                                  (b"", None, (1, 1)), (b" \n", None, (1, 1))):
        src.write_bytes(data)
        with pytest.raises(FileFormatError) as err:
            format_named("csv").detect(src, encoding)
        assert (err.value.line, err.value.column) == where
    src.write_bytes(b"ref\n" + b"x" * 5000 + b'\n"\n')
    options = format_named("csv").detect(src)
    assert options.has_quotes and options.longest_line == 5001 and not options.plain


@given(st.text(alphabet='ab;" ', max_size=30))
def test_the_csv_modules_strict_check_never_hides_an_open_quote(line: str) -> None:
    """The fast check of a quoted line (:func:`_closes`, the csv module in strict mode) against the state
    machine it stands in for: a line it passes never ends inside a quote."""
    line += "\r\n"
    if _closes(line):
        assert not _quote_state(line, False)[0]
