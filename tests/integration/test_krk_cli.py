"""``pregbridge krk load`` as a real process: a file with errors changes nothing and names every bad line; a good
file loads, warnings shown; an update moves a kommune into an arrangement. The transcripts are docs/krk.md's."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from store import schema as s
from store.engine import make_engine
from store.krk import HEADER
from tests.integration.test_cli import pregbridge

HEAD = ";".join(HEADER)
GOOD = f"""# kommuneoverleger, Rogaland and Oslo
{HEAD}
0301;;;kommuneoverlege@oslo.example.no;21802180;2001234;1234567;
0301;030105;;smittevern.frogner@oslo.example.no;23000000;;7654321;
1101;;;kari.nordmann@eigersund.example.no;51468000;;;1111 1112
1103;;;smittevern@stavanger.example.no;51507090;;2345678;
"""
BAD = f"""{HEAD}
0301;;;kommuneoverlege@oslo.example.no;21802180;;;
9999;;;post@x.example.no;21802180;;;
1101;110101;;post@x.example.no;21802180;;;
3301;330101;;post@x.example.no;21802180;;;
1103;;;post@x.example.no;2180;;;
"""
UPDATE = f"""{HEAD}
1106;;;post@haugesund.example.no;52743000;;3456789;1103
"""


def test_krk_load_update_and_errors(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, text in (("good.csv", GOOD), ("bad.csv", BAD), ("update.csv", UPDATE)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    bad = pregbridge("krk", "load", str(tmp_path / "bad.csv"), "--replace", data_dir=data, check=False)
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert lines == [
        "bad.csv: line 3: error: kommune: not a kommunenummer valid from 2024-01-01",
        "bad.csv: line 4: error: bydel: a bydel is allowed only in Oslo, Bergen, Trondheim, Stavanger and Drammen",
        "bad.csv: line 5: error: bydelsnavn: required for this bydel (the project's geography has no name for it)",
        "bad.csv: line 6: error: telefon: not a Norwegian phone number (8 digits, +47 allowed)",
        "bad.csv: 4 error(s); the register is unchanged",
    ]
    good = pregbridge("krk", "load", str(tmp_path / "good.csv"), "--replace", data_dir=data)
    assert good.stdout.strip() == "KRK replaced: 4 contact(s), 5 kommune(r) covered, 1 warning(s)"
    assert "line 5: warning: epost: looks like a person's address" in good.stderr
    assert "kari" not in good.stderr
    update = pregbridge("krk", "load", str(tmp_path / "update.csv"), data_dir=data)
    assert update.stdout.strip() == ("KRK updated: 1 contact(s), 2 kommune(r) covered, 0 warning(s); "
                                     "contacts replaced by coverage: 1103")
    engine = make_engine(f"sqlite:///{data / 'pregbridge.sqlite'}")
    try:
        with engine.connect() as conn:
            coverage = dict(conn.execute(select(s.krk_coverage.c.kommune, s.krk_coverage.c.area)).all())
    finally:
        engine.dispose()
    assert coverage == {"0301": "0301", "1101": "1101", "1111": "1101", "1112": "1101", "1106": "1106",
                        "1103": "1106"}
