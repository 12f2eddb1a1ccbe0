"""``pregbridge filematch submit|status|fetch`` against a real server on loopback, and ``run`` locally:
the CLI as an operator runs it (a subprocess), every record answered once with the expected code."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from tests.integration.test_cli_terminal import on_a_terminal
from tests.integration.test_filematch_http import PASSWORD, server  # noqa: F401 - the server fixture
from tests.integration.test_filematch_pipeline import EXPECTED, FIX, load_persons

ROOT = Path(__file__).parents[2]


def cli(db_url: str, *args: str) -> str:
    env = dict(os.environ, PREGBRIDGE_PASSWORD=PASSWORD)
    done = subprocess.run([sys.executable, "-m", "server.filematch_cli", "--database-url", db_url, "filematch", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def codes(path: Path, encoding: str = "utf-8") -> dict[str, str]:
    text = path.read_bytes().decode(encoding)
    return {r["ref"]: r["code"] for r in csv.DictReader(io.StringIO(text, newline=""), delimiter=";")}


def test_submit_status_fetch(server: tuple[str, Engine], db_url: str, tmp_path: Path) -> None:  # noqa: F811
    url, _engine = server
    base = url.removesuffix("/filematch/v1")
    out = cli(db_url, "submit", str(FIX / "wash-crlf.csv"), "--url", base, "--user", "kari")
    job = out.strip().splitlines()[-1]
    assert f"job {job} " in out and "15 records" in out
    status = cli(db_url, "status", job, "--url", base, "--user", "kari")
    assert status.startswith(f"job {job} ") and "of 15 records" in status
    (row,) = json.loads(cli(db_url, "status", job, "--url", base, "--user", "kari", "--json"))["rows"]
    assert row["job"] == job and row["records"] == 15 and row["status"] in ("queued", "running", "done")
    result = tmp_path / "answer.csv"
    fetched = cli(db_url, "fetch", job, "-o", str(result), "--wait", "--url", base, "--user", "kari")
    assert f"wrote 15 records to {result}" in fetched
    assert codes(result) == EXPECTED


def test_fetch_wait_shows_progress_on_a_terminal(server: tuple[str, Engine], db_url: str,  # noqa: F811
                                                 tmp_path: Path) -> None:
    url, _engine = server
    base = url.removesuffix("/filematch/v1")
    job = cli(db_url, "submit", str(FIX / "wash-lf.csv"), "--url", base, "--user", "kari").strip().splitlines()[-1]
    code, screen = on_a_terminal("--database-url", db_url, "filematch", "fetch", job, "-o", str(tmp_path / "a.csv"),
                                 "--wait", "--url", base, "--user", "kari", cwd=ROOT, module="server.filematch_cli",
                                 PREGBRIDGE_PASSWORD=PASSWORD)
    assert code == 0, screen
    assert f"job {job[:12]}" in screen and "15/15" in screen


def test_submit_reads_the_format_from_the_content(server: tuple[str, Engine], db_url: str,  # noqa: F811
                                                  tmp_path: Path) -> None:
    """XML under a name that says nothing (``.dat`` used to mean fixed width): washed as XML."""
    url, _engine = server
    base = url.removesuffix("/filematch/v1")
    upload = tmp_path / "register.dat"
    upload.write_bytes((FIX / "wash.xml").read_bytes())
    job = cli(db_url, "submit", str(upload), "--url", base, "--user", "kari").strip().splitlines()[-1]
    result = tmp_path / "answer.xml"
    assert "wrote 15 records" in cli(db_url, "fetch", job, "-o", str(result), "--wait", "--url", base,
                                     "--user", "kari")
    assert result.read_bytes().lstrip().startswith(b"<?xml")


def test_someone_elses_job_is_not_found(server: tuple[str, Engine], db_url: str, tmp_path: Path) -> None:  # noqa: F811
    url, _engine = server
    base = url.removesuffix("/filematch/v1")
    job = cli(db_url, "submit", str(FIX / "wash-lf.csv"), "--url", base, "--user", "kari").strip().splitlines()[-1]
    env = dict(os.environ, PREGBRIDGE_PASSWORD=PASSWORD)
    done = subprocess.run([sys.executable, "-m", "server.filematch_cli", "--database-url", db_url, "filematch",
                           "status", job, "--url", base, "--user", "ola"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "404" in done.stdout + done.stderr


def test_run_locally(engine: Engine, db_url: str, tmp_path: Path) -> None:
    load_persons(engine)
    result = tmp_path / "answer.csv"
    out = cli(db_url, "run", str(FIX / "wash-latin1.csv"), "-o", str(result), "--processes", "2")
    assert "15" in out
    assert codes(result, "iso-8859-1") == EXPECTED
    fixed = tmp_path / "answer.txt"  # no --format: fixed width read from the content
    assert "15" in cli(db_url, "run", str(FIX / "wash-lf.txt"), "-o", str(fixed))
    assert len(fixed.read_text(encoding="iso-8859-1").splitlines()[0]) == 320


def test_the_server_reads_the_format_of_an_upload_that_names_none(server: tuple[str, Engine]) -> None:  # noqa: F811
    import requests

    url, _engine = server
    for name, fmt in (("wash.xml", "xml"), ("wash-crlf.txt", "fixed"), ("wash-bom.csv", "csv")):
        r = requests.post(f"{url}/jobs", auth=("kari", PASSWORD), data=(FIX / name).read_bytes(),
                          headers={"Content-Type": "application/octet-stream"}, timeout=30)
        assert r.status_code == 202, r.text
        assert (r.json()["format"], r.json()["records"]) == (fmt, 15)
    r = requests.post(f"{url}/jobs", auth=("kari", PASSWORD), data=b"", timeout=30)  # refused as CSV always was
    assert r.status_code == 422 and "empty" in r.text
