"""Replay a corpus against a target and report: does the target answer as the recorded service did?

Each case is sent as recorded: SOAP cases as an HTTP POST of the recorded envelope to ``target +
endpoint`` (Content-Type and SOAPAction as recorded, HTTP Basic from the case's account, resolved by
:class:`~server.replay.corpus.Secrets`; ``{{username}}``/``{{password}}`` placeholders in a WS-Security
header are filled the same way), HL7 cases as MLLP frames over one persistent connection to the HL7
target (as a broker would hold it), reading as many replies as were recorded. The answer is compared
canonically (:func:`~server.replay.compare_xml.compare_xml`, :func:`~server.replay.compare_hl7.compare_hl7`);
a SOAP case also compares the HTTP status. Outcome per case: identical · equalAfterIgnores · differs ·
error (no answer, a recording of an upstream failure, missing credentials).

Reports: a terminal summary (rich; a progress bar while running), JUnit XML (one ``testcase`` per case,
the diff as the ``failure`` text, so CI systems show it), and a self-contained HTML page (inline CSS, no
scripts or external assets, every value escaped). Nothing is logged about bodies; the reports do hold
the differing values, which is their purpose — they are test artefacts, keep them where the corpus is.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import http.client
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape as xml_escape

from lxml import etree
from rich.console import Console
from rich.table import Table

from server.hl7.framing import FramingError, MllpFramer, frame
from server.replay.compare_hl7 import DEFAULT_HL7_IGNORES, compare_hl7, parse_hl7, parse_ignore
from server.replay.compare_xml import compare_xml
from server.replay.corpus import Case, Corpus, Secrets
from server.replay.recorder import parse_hostport
from server.replay.result import Comparison, Difference, Outcome
from store.errors import InvalidInput

__all__ = ["CaseResult", "Report", "Target", "print_summary", "replay", "split_ignores", "write_html", "write_junit"]

_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Target:
    url: str | None = None  # base URL for SOAP cases (scheme://host:port[/prefix])
    hl7: str | None = None  # host:port for HL7 cases; None: each case's recorded endpoint
    timeout: float = _TIMEOUT


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: Case
    comparison: Comparison
    seconds: float

    @property
    def outcome(self) -> Outcome:
        return self.comparison.outcome


@dataclass
class Report:
    corpus: Path
    target: Target
    results: list[CaseResult] = field(default_factory=list)
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    seconds: float = 0.0

    def counts(self) -> Counter[Outcome]:
        return Counter(r.outcome for r in self.results)

    @property
    def passed(self) -> bool:
        return all(r.outcome.passed for r in self.results)


def split_ignores(rules: Sequence[str]) -> tuple[list[str], list[str]]:
    """``--ignore`` values → (XPaths, HL7 fields): ``SEG-n[.c[.s]]`` is a field, anything else an XPath."""
    xml, hl7 = [], []
    for rule in rules:
        try:
            parse_ignore(rule)
        except ValueError:
            xml.append(rule)
        else:
            hl7.append(rule)
    return xml, hl7


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class _MllpConnection:
    """One persistent MLLP client connection per target, reopened after a failure."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.address: tuple[str, int] | None = None
        self.framer = MllpFramer()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def exchange(self, address: tuple[str, int], message: bytes, replies: int) -> list[bytes]:
        if self.sock is None or self.address != address:
            self.close()
            self.sock = socket.create_connection(address, timeout=self.timeout)
            self.address, self.framer = address, MllpFramer()
        try:
            self.sock.sendall(frame(message))
            out: list[bytes] = []
            deadline = time.monotonic() + self.timeout
            while len(out) < max(replies, 1):
                self.sock.settimeout(max(0.05, deadline - time.monotonic()))
                data = self.sock.recv(1 << 16)
                if not data:
                    self.close()
                    break
                out += self.framer.feed(data)
            return out
        except (OSError, FramingError):
            self.close()
            raise


class _Runner:
    def __init__(self, corpus: Corpus, target: Target, secrets: Secrets, xml_ignores: Sequence[str],
                 hl7_ignores: Sequence[str]) -> None:
        self.corpus = corpus
        self.target = target
        self.secrets = secrets
        self.xml_ignores = list(xml_ignores)
        self.hl7_ignores = list(hl7_ignores)
        self.mllp = _MllpConnection(target.timeout)

    def run(self, case: Case) -> Comparison:
        if case.expected.outcome == "upstreamError":
            return Comparison(Outcome.ERROR, message="the recording holds no answer: the upstream failed when it "
                              f"was recorded ({case.expected.error or 'unknown'}); record the case again")
        if not case.response:
            return Comparison(Outcome.ERROR, message="the case has no recorded answer")
        try:
            return self._soap(case) if case.face == "soap" else self._hl7(case)
        except InvalidInput as exc:
            return Comparison(Outcome.ERROR, message=str(exc))
        except FileNotFoundError as exc:
            return Comparison(Outcome.ERROR, message=f"corpus file missing: {Path(str(exc.filename)).name}")
        except TimeoutError:
            return Comparison(Outcome.ERROR, message=f"no answer within {self.target.timeout:g} s")
        except ConnectionRefusedError:
            return Comparison(Outcome.ERROR, message="the target refused the connection")
        except (OSError, http.client.HTTPException, FramingError) as exc:
            return Comparison(Outcome.ERROR, message=f"the exchange failed ({type(exc).__name__})")

    def _soap(self, case: Case) -> Comparison:
        if not self.target.url:
            raise InvalidInput("a SOAP case needs --target URL")
        body = self.corpus.read(case.request)
        headers = {"Content-Type": case.content_type or ("application/soap+xml; charset=utf-8"
                                                         if case.soap_version == "1.2" else "text/xml; charset=utf-8")}
        if case.soap_action is not None:
            headers["SOAPAction"] = case.soap_action
        if case.account:
            creds = self.secrets.get(case.account)
            headers["Authorization"] = _basic(creds.username, creds.password)
            body = body.replace(b"{{username}}", xml_escape(creds.username).encode()).replace(
                b"{{password}}", xml_escape(creds.password).encode())
        endpoint = case.endpoint
        if "://" in endpoint:
            u = urlsplit(endpoint)
            endpoint = u.path + (f"?{u.query}" if u.query else "")
        base = urlsplit(self.target.url)
        path = base.path.rstrip("/") + endpoint
        conn_cls = http.client.HTTPSConnection if base.scheme == "https" else http.client.HTTPConnection
        conn = conn_cls(base.hostname or "127.0.0.1", base.port, timeout=self.target.timeout)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            status, answer = resp.status, resp.read()
        finally:
            conn.close()
        result = compare_xml(self.corpus.read(case.response or ""), answer,
                             [*self.xml_ignores, *case.ignore], self.corpus.namespaces)
        if case.expected.status is not None and status != case.expected.status:
            diffs = (Difference("HTTP status", str(case.expected.status), str(status)), *result.differences)
            return Comparison(Outcome.DIFFERS, diffs, f"{len(diffs)} difference(s)", result.ignored)
        return result

    def _hl7(self, case: Case) -> Comparison:
        address = parse_hostport(self.target.hl7 or case.endpoint, 2575)
        recorded = self.corpus.read(case.response or "")
        replies = self.mllp.exchange(address, self.corpus.read(case.request), len(parse_hl7(recorded)))
        if not replies:
            return Comparison(Outcome.ERROR, message="the target closed the connection without a reply")
        answer = b"".join(r if r.endswith(b"\r") else r + b"\r" for r in replies)
        return compare_hl7(recorded, answer, [*self.hl7_ignores, *(i for i in case.ignore if _is_field(i))])


def _is_field(rule: str) -> bool:
    try:
        parse_ignore(rule)
    except ValueError:
        return False
    return True


def replay(corpus: Corpus, target: Target, *, secrets: Secrets | None = None, ignore: Sequence[str] = (),
           cases: Sequence[str] | None = None, progress: Callable[[CaseResult], None] | None = None) -> Report:
    """Replay every case (or those in ``cases``) and return the report."""
    extra_xml, extra_hl7 = split_ignores(ignore)
    hl7_ignores = [*(corpus.hl7_ignores or DEFAULT_HL7_IGNORES), *extra_hl7]
    runner = _Runner(corpus, target, secrets or Secrets({}), [*corpus.xml_ignores, *extra_xml], hl7_ignores)
    report = Report(corpus.directory, target)
    start = time.perf_counter()
    try:
        for case in corpus.cases:
            if cases is not None and case.id not in cases:
                continue
            t0 = time.perf_counter()
            result = CaseResult(case, runner.run(case), time.perf_counter() - t0)
            report.results.append(result)
            if progress is not None:
                progress(result)
    finally:
        runner.mllp.close()
    report.seconds = time.perf_counter() - start
    return report


_STYLE = {Outcome.IDENTICAL: "green", Outcome.EQUAL_AFTER_IGNORES: "green", Outcome.DIFFERS: "red",
          Outcome.ERROR: "magenta"}


def print_summary(report: Report, console: Console, *, max_lines: int = 25) -> None:
    table = Table(title=f"replay of {report.corpus}", show_lines=False)
    for col in ("case", "face", "outcome", "ms", "detail"):
        table.add_column(col, overflow="fold")
    for r in report.results:
        detail = r.comparison.message if not r.outcome.passed else (
            f"{r.comparison.ignored} ignored difference(s)" if r.comparison.ignored else "")
        table.add_row(r.case.id, r.case.face, f"[{_STYLE[r.outcome]}]{r.outcome.value}[/]",
                      f"{r.seconds * 1000:.0f}", detail)
    console.print(table)
    for r in report.results:
        if r.outcome.passed:
            continue
        console.print(f"[bold]{r.case.id}[/bold] [{_STYLE[r.outcome]}]{r.outcome.value}[/]", highlight=False)
        lines = r.comparison.diff_text().splitlines()
        for line in lines[:max_lines]:
            console.print("  " + line, markup=False, highlight=False)
        if len(lines) > max_lines:
            console.print(f"  … {len(lines) - max_lines} more line(s) in the JUnit/HTML report", highlight=False)
    counts = report.counts()
    console.print(f"{len(report.results)} case(s) in {report.seconds:.1f} s: " + ", ".join(
        f"{counts.get(o, 0)} {o.value}" for o in Outcome), highlight=False)


def write_junit(report: Report, path: Path) -> Path:
    counts = report.counts()
    suites = etree.Element("testsuites")
    suite = etree.SubElement(suites, "testsuite", name="pregbridge replay", tests=str(len(report.results)),
                             failures=str(counts.get(Outcome.DIFFERS, 0)), errors=str(counts.get(Outcome.ERROR, 0)),
                             skipped="0", time=f"{report.seconds:.3f}",
                             timestamp=report.started.strftime("%Y-%m-%dT%H:%M:%S"))
    props = etree.SubElement(suite, "properties")
    etree.SubElement(props, "property", name="corpus", value=str(report.corpus))
    etree.SubElement(props, "property", name="target", value=report.target.url or "")
    etree.SubElement(props, "property", name="hl7Target", value=report.target.hl7 or "")
    for r in report.results:
        tc = etree.SubElement(suite, "testcase", classname=f"replay.{r.case.face}", name=r.case.id,
                              time=f"{r.seconds:.3f}")
        if r.outcome is Outcome.DIFFERS:
            el = etree.SubElement(tc, "failure", message=r.comparison.message or "differs", type="differs")
            el.text = r.comparison.diff_text()
        elif r.outcome is Outcome.ERROR:
            el = etree.SubElement(tc, "error", message=r.comparison.message or "error", type="error")
            el.text = r.comparison.diff_text()
        else:
            out = etree.SubElement(tc, "system-out")
            out.text = r.outcome.value + (f" ({r.comparison.ignored} ignored difference(s))"
                                          if r.comparison.ignored else "")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(etree.tostring(suites, xml_declaration=True, encoding="UTF-8", pretty_print=True))
    return path


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2329}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .6rem;
border-bottom:1px solid #dde1e5;vertical-align:top}th{background:#f3f5f7}.o{font-weight:600;white-space:nowrap}
.identical,.equalAfterIgnores{color:#18794e}.differs{color:#b42318}.error{color:#8a2be2}
pre{background:#f7f7f8;padding:.6rem;overflow-x:auto;white-space:pre-wrap;margin:.3rem 0}
.summary span{margin-right:1.2rem}details summary{cursor:pointer}
"""


def write_html(report: Report, path: Path) -> Path:
    e = html.escape
    counts = report.counts()
    rows = []
    for r in report.results:
        detail = ""
        if not r.outcome.passed:
            detail = f"<details open><summary>{e(r.comparison.message or r.outcome.value)}</summary>" \
                     f"<pre>{e(r.comparison.diff_text())}</pre></details>"
        elif r.comparison.ignored:
            detail = f"{r.comparison.ignored} ignored difference(s)"
        rows.append(f"<tr><td>{e(r.case.id)}</td><td>{e(r.case.face)}</td><td>{e(r.case.endpoint)}</td>"
                    f"<td class='o {e(r.outcome.value)}'>{e(r.outcome.value)}</td>"
                    f"<td>{r.seconds * 1000:.0f}</td><td>{detail}</td></tr>")
    verdict = "all cases answer as recorded" if report.passed else "some cases do not answer as recorded"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pregbridge replay report</title><style>{_CSS}</style></head>
<body><h1>pregbridge replay: {e(verdict)}</h1>
<p>corpus <code>{e(str(report.corpus))}</code>, target <code>{e(report.target.url or '-')}</code>,
HL7 target <code>{e(report.target.hl7 or '-')}</code>, {e(report.started.strftime('%Y-%m-%d %H:%M:%S UTC'))},
{report.seconds:.1f} s</p>
<p class="summary">{''.join(f"<span class='{e(o.value)}'>{counts.get(o, 0)} {e(o.value)}</span>" for o in Outcome)}</p>
<table><thead><tr><th>case</th><th>face</th><th>endpoint</th><th>outcome</th><th>ms</th><th>differences</th></tr>
</thead><tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
