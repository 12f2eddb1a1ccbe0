"""The shipped corpus (docs/replay-corpus) replayed against a freshly started pregbridge — real ``serve`` and
``listen-hl7`` processes on loopback — answers as recorded; a tampered answer is reported as differs, with a
readable diff in the terminal output, the JUnit XML and the HTML report; and the corpus regenerates byte for byte.
"""

from __future__ import annotations

import difflib
import html
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from server.replay.make_corpus import DemoServers, demo_servers, make_corpus

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "docs" / "replay-corpus"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServers]:
    with demo_servers(tmp_path_factory.mktemp("replay-store")) as demo:
        yield demo


def run_replay(demo: DemoServers, corpus: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200", **demo.env())
    return subprocess.run([sys.executable, "-m", "server.replay.cli", "replay", str(corpus), "--target", demo.url,
                           "--hl7-target", demo.hl7, "--junit", str(out / "junit.xml"), "--html",
                           str(out / "report.html")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_shipped_corpus_answers_as_recorded(servers: DemoServers, tmp_path: Path) -> None:
    proc = run_replay(servers, CORPUS, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    suite = etree.parse(str(tmp_path / "junit.xml")).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "24" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert "0 differs, 0 error" in " ".join(proc.stdout.split())
    assert servers.password not in proc.stdout + (tmp_path / "junit.xml").read_text()


def test_a_tampered_answer_is_reported_with_a_readable_diff(servers: DemoServers, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    soap = corpus / "002-preg-getPerson-soap11.response.xml"
    text = soap.read_text(encoding="utf-8")
    given = text.split("<tns:fornavn>", 1)[1].split("</tns:fornavn>", 1)[0]
    soap.write_text(text.replace(f"<tns:fornavn>{given}</tns:fornavn>", "<tns:fornavn>Åse <x></tns:fornavn>"
                                 .replace("<x>", "&lt;x&gt;"), 1), encoding="utf-8")
    hl7 = corpus / "023-hl7-QRY_A19.response.hl7"
    raw = hl7.read_bytes()
    family = raw.split(b"\rPID|", 1)[1].split(b"|")[4].split(b"^")[0]
    hl7.write_bytes(raw.replace(b"|" + family + b"^", b"|Tampered^", 1))

    proc = run_replay(servers, corpus, tmp_path)
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())
    soap_line = f"/Envelope/Body/getPersonResponse/person/navn/fornavn: expected 'Åse <x>' got '{given}'"
    hl7_line = f"PID[1]-5[1].1: expected 'Tampered' got '{family.decode()}'"
    assert soap_line in out and hl7_line in out
    assert "22 equalAfterIgnores" in out or "2 differs" in out

    suite = etree.parse(str(tmp_path / "junit.xml")).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "2"
    failures = {tc.get("name"): tc.findtext("failure") for tc in suite.iter("testcase")
                if tc.find("failure") is not None}
    assert set(failures) == {"002-preg-getPerson-soap11", "023-hl7-QRY_A19"}
    assert soap_line in failures["002-preg-getPerson-soap11"] and hl7_line in failures["023-hl7-QRY_A19"]

    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert html.escape(soap_line) in page and "Åse &lt;x&gt;" in page and "<x>" not in page
    assert html.escape(hl7_line) in page
    assert "<script" not in page and "http://" not in page.split("</style>")[0] and "<link" not in page


def test_the_corpus_regenerates_byte_for_byte(tmp_path: Path) -> None:
    make_corpus(tmp_path / "corpus", tmp_path / "work")
    made = sorted(p.name for p in (tmp_path / "corpus").iterdir())
    assert made == sorted(p.name for p in CORPUS.iterdir())
    for name in made:
        got, shipped = (tmp_path / "corpus" / name).read_bytes(), (CORPUS / name).read_bytes()
        if got != shipped:  # say where, so a flaky difference can be diagnosed from the CI log
            diff = difflib.unified_diff(shipped.decode(errors="replace").splitlines(),
                                        got.decode(errors="replace").splitlines(), "shipped", "made", lineterm="")
            raise AssertionError(f"{name} differs:\n" + "\n".join(list(diff)[:40]))
