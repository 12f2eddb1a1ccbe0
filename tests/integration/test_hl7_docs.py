"""docs/hl7.md shows real exchanges for every supported message: this test makes them.

Each example is one message sent to a real MLLP listener on loopback (SQLite store, the fixed synthetic
persons of tests/integration/test_hl7_mllp.py) and the reply read back, shown one segment per line.
Values that change from run to run are masked: MSH-7 (time), MSH-10 (control id), the felles
hjelpenummer allocated. The section between ``<!-- examples:start -->`` and ``<!-- examples:end -->``
must equal what docs/hl7.md holds; ``PREGBRIDGE_REGEN_DOCS=1`` rewrites it instead.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from store.engine import make_engine, migrate
from tests.integration.test_hl7_mllp import (
    KARI_FNR,
    OLA_FNR,
    Running,
    exchange,
    fixture,
    make_app,
    message,
    populate,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "hl7.md"
START, END = "<!-- examples:start -->", "<!-- examples:end -->"


def _mask(text: str) -> str:
    lines = []
    for seg in text.strip("\r").split("\r"):
        if seg.startswith("MSH|") and "PREGBRIDGE" in seg.split("|")[2]:
            f = seg.split("|")
            f[6], f[9] = "<MSH-7>", "<MSH-10>"
            seg = "|".join(f)
        lines.append(seg)
    out = "\n".join(lines)
    return re.sub(r"\b[89]\d{10}\b", "<FH-number>", out)


def _examples() -> list[tuple[str, str, bytes, int]]:
    q23 = "QBP^Q23^QBP_Q21"
    return [
        ("PDQ: find candidates by name and birth date (ISO-8859-1 sender, answered in ISO-8859-1)", "latin-1",
         fixture("pdq_q22_latin1.hl7"), 1),
        ("PDQ by fødselsnummer for a profile without legal basis (utenHjemmel): fortrolig address masked", "utf-8",
         message("QBP^Q22^QBP_Q21", f"QPD|IHE PDQ Query|pdq-5|@PID.3.1^{KARI_FNR}", "RCP|I|10^RD",
                 sender="DIPS|OUS", control="PDQ-5"), 1),
        ("PIX: a ceased D-nummer gives the current fødselsnummer and every identifier", "utf-8",
         fixture("pix_q23_ceased_dnr.hl7"), 1),
        ("PIX: only the fødselsnummer domain (QPD-4)", "utf-8",
         message(q23, "QPD|IHE PIX Query|pix-3|57858036757^^^DNR|^^^FNR&2.16.578.1.12.4.1.4.1&ISO", "RCP|I",
                 control="PIX-3"), 1),
        ("PIX: unknown number", "utf-8", fixture("pix_q23_unknown.hl7"), 1),
        ("Legacy QRY^A19 (v2.3)", "utf-8", fixture("a19_qry.hl7"), 1),
        ("Felles hjelpenummer: QBP^Q24 allocate identifiers (the same request again gives the same number)",
         "utf-8", fixture("fh_q24_allocate.hl7"), 1),
        ("Enhanced mode, MSH-15 AL and MSH-16 AL: commit ACK, then the response", "utf-8",
         message(q23, f"QPD|IHE PIX Query|pix-4|{OLA_FNR}^^^FNR", "RCP|I", control="PIX-4", msh15="AL",
                 msh16="AL"), 2),
        ("Unsupported message type: AR with table 0357 code 200", "utf-8", fixture("adt_a01_unsupported.hl7"), 1),
        ("Unknown sender: AR with code 207", "utf-8",
         message(q23, f"QPD|IHE PIX Query|pix-5|{OLA_FNR}", "RCP|I", sender="STRANGER|X", control="PIX-5"), 1),
    ]


def render(tmp_path: Path) -> str:
    engine = make_engine(f"sqlite:///{tmp_path / 'docs.sqlite'}")
    migrate(engine)
    populate(engine)
    app, audit, settings = make_app(engine)
    running = Running(settings, app, app.closed)
    parts = ["\n"]
    try:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            for title, codec, payload, replies in _examples():
                got = exchange(sock, payload, replies)
                parts.append(f"### {title}\n\n```hl7\n{_mask(payload.decode(codec))}\n```\n\n")
                for reply in got:
                    parts.append(f"```hl7\n{_mask(reply.decode(codec))}\n```\n\n")
    finally:
        running.stop()
        audit.close()
        engine.dispose()
    return "".join(parts)


def test_docs_examples_are_current(tmp_path: Path) -> None:
    doc = DOC.read_text(encoding="utf-8")
    start, end = doc.index(START) + len(START), doc.index(END)
    current = render(tmp_path)
    if os.environ.get("PREGBRIDGE_REGEN_DOCS") == "1":
        DOC.write_text(doc[:start] + current + doc[end:], encoding="utf-8")
        return
    assert doc[start:end] == current, "docs/hl7.md is out of date: run with PREGBRIDGE_REGEN_DOCS=1"
