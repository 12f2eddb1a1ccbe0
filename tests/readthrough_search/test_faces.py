"""The search faces in read-through mode against the fake Persontjenesten over loopback, SQLite and PostgreSQL,
each starting from an EMPTY store: PREG searchPerson over SOAP and HL7 PDQ over MLLP answer as the replica (the
same population loaded by file) answers — canonically: equal scores in any order, since a store breaks ties by
its own person ids; too-broad searches and continuation keep their semantics; the fake's injected faults give
each face its unavailable answer (SOAP Server.Unavailable, HL7 AE 207, Filematch UNAVAILABLE)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import Engine

from filematch.pipeline import wash
from filematch.records import Code, InputRecord
from store.engine import read_connection
from tests.integration.preg_support import ACCOUNTS, PASSWORD, running_preg
from tests.integration.test_hl7_mllp import ask, message, parsed
from tests.readthrough.support import add_hl7_accounts, hl7_serving, read_through_settings, source_of
from tests.readthrough_search.support import SPLITS, WIDE, documents, stored_keys
from upstream.fake import RunningFake
from upstream.fake.app import Faults

DEADLINE = 5.0  # the fake's search reads every person: generous under a loaded machine


def _current(items: list[dict[str, Any]]) -> dict[str, Any]:
    return next((i for i in items if i.get("current", True)), {})


def _searches(population: Path) -> list[dict[str, str]]:
    """searchPerson elements (in the contract's order) of a few kinds, from every 90th person."""
    out: list[dict[str, str]] = []
    for doc in documents(population)[::90]:
        name, birth = _current(doc["names"]), _current(doc["birth"])
        if not name or not birth.get("date"):
            continue
        home = next((a for a in doc["addresses"] if a.get("current", True) and a.get("kommune")), None)
        out += [{"etternavn": name["family"], "fodselsdato": birth["date"]},
                {"fornavn": name["given"], "fodselsaar": birth["date"][:4]},
                {"navn": f"{name['given']} {name['family']}", "fodselsaar": birth["date"][:4]}]
        if home:
            out.append({"etternavn": name["family"][:4], "kommunenummer": home["kommune"], "maksAntall": "200"})
    return out


def _search_body(fields: dict[str, str]) -> str:
    order = ("fornavn", "etternavn", "navn", "fodselsdato", "fodselsaar", "kjonn", "kommunenummer", "postnummer",
             "gatenavn", "maksAntall")
    return "<p:searchPerson>" + "".join(f"<p:{k}>{fields[k]}</p:{k}>" for k in order if k in fields) + \
        "</p:searchPerson>"


def _canonical(body: bytes) -> tuple[bytes, list[tuple[float, bytes]]]:
    """The answer without its hits, and its hits (score, canonical XML) sorted: ties in any order."""
    root = etree.fromstring(body)
    hits = []
    for el in root.iter("{*}treff"):
        score = float(next(el.iter("{*}score")).text or 0)
        hits.append((el, score))
    for el, _ in hits:
        el.getparent().remove(el)
    return (etree.tostring(root, method="c14n"),
            sorted(((-s, etree.tostring(el, method="c14n")) for el, s in hits)))


@contextlib.contextmanager
def _both(db_url: str, replica: Engine, reader: Engine, fake: RunningFake, work: Path) -> Iterator[tuple[Any, Any]]:
    (work / "r").mkdir(parents=True)
    (work / "t").mkdir()
    with running_preg(db_url, work / "r", populated=False, engine=replica) as rep, \
            running_preg(db_url, work / "t", populated=False, engine=reader,
                         upstream=read_through_settings(fake, lookup_deadline=DEADLINE)) as rt:
        yield rep, rt


def _ask(srv: Any, fields: dict[str, str]) -> tuple[int, bytes]:
    answer = srv.call("1.1", _search_body(fields), auth=(ACCOUNTS["full"], PASSWORD))
    return answer.status, answer.body


def test_preg_search_person_answers_as_the_replica(db_url: str, population: Path, replica: Engine, reader: Engine,
                                                   fake: RunningFake, tmp_path: Path) -> None:
    searches = _searches(population)
    too_broad = [{"etternavn": WIDE, "fodselsaar": "1976", "maksAntall": "200"},  # > 100 in the register
                 {"etternavn": SPLITS, "fodselsaar": "1975", "maksAntall": "20"}]  # > maksAntall: both refuse
    with _both(db_url, replica, reader, fake, tmp_path) as (rep, rt):
        answered = 0
        for fields in searches:
            want, got = _ask(rep, fields), _ask(rt, fields)
            assert got[0] == want[0], fields
            if b"TooManyHits" in want[1]:  # too broad for both (the limit each names may differ: > 100 upstream)
                assert b"TooManyHits" in got[1]
                continue
            assert _canonical(got[1]) == _canonical(want[1]), fields
            answered += b"treff" in want[1]
        assert answered >= len(searches) // 2
        for fields in too_broad:
            got = _ask(rt, fields)
            assert got[0] == 500 and b"TooManyHits" in got[1], fields
        assert _ask(rep, too_broad[1]) == _ask(rt, too_broad[1])  # the same fault, word for word
        split = {"etternavn": SPLITS, "fodselsaar": "1975", "maksAntall": "200"}  # 130: listed by a split
        want, got = _ask(rep, split), _ask(rt, split)
        assert want[0] == got[0] == 200 and _canonical(got[1]) == _canonical(want[1])
    assert WIDE not in str(stored_keys(reader))  # a refused search stored nobody


def _pdq(query: str, limit: str = "", pointer: str = "") -> bytes:
    segments = [f"QPD|IHE PDQ Query|q1|{query}", f"RCP|I|{limit}"]
    if pointer:
        segments.append(f"DSC|{pointer}|I")
    return message("QBP^Q22^QBP_Q21", *segments)


def _pages(srv: Any, query: str, limit: str) -> tuple[list[list[str]], list[tuple[str, str]]]:
    """Every page of a PDQ query (following DSC on one connection): each page's QAK and ERR, and all its hits
    (QRI, PID without its set id), sorted."""
    from tests.integration.test_hl7_mllp import exchange

    heads: list[list[str]] = []
    hits: list[tuple[str, str]] = []
    pointer = ""
    with srv.connect() as sock:
        while True:
            segs = [str(s) for s in parsed(exchange(sock, _pdq(query, limit, pointer))[0])]
            heads.append([s for s in segs if s[:3] in ("MSA", "QAK", "ERR")])
            # PID-1 numbers a page's hits: equal scores may sit on other pages (ties in any order)
            hits += [(segs[i + 1], "PID||" + s.split("|", 2)[2]) for i, s in enumerate(segs) if s.startswith("PID")]
            dsc = [s for s in segs if s.startswith("DSC")]
            if not dsc:
                break
            pointer = dsc[0].split("|")[1]
    return [[h.split("|", 2)[2] if h.startswith("MSA") else h for h in page] for page in heads], sorted(hits)


def test_hl7_pdq_answers_as_the_replica_with_continuation(population: Path, replica: Engine, reader: Engine,
                                                          fake: RunningFake) -> None:
    queries = []
    for doc in documents(population)[::120]:
        name, birth = _current(doc["names"]), _current(doc["birth"])
        if name and birth.get("date"):
            queries += [f"@PID.5.1^{name['family']}~@PID.7^{birth['date'].replace('-', '')}",
                        f"@PID.5.2^{name['given']}~@PID.7^{birth['date'][:4]}"]
    add_hl7_accounts(replica)
    add_hl7_accounts(reader)
    source = source_of(reader, fake, lookup_deadline=DEADLINE)
    with hl7_serving(replica, None) as rep, hl7_serving(reader, source) as rt:
        for q in queries:
            want, got = _pages(rep, q, ""), _pages(rt, q, "")
            qak = [h for h in want[0][0] if h.startswith("QAK")][0].split("|")
            if len(qak) > 4 and int(qak[4]) > 100:  # more than the register lists: AE TooManyHits (docs/upstream.md)
                assert "207" in got[0][0][1] and got[1] == [], q
                continue
            assert got == want, q
        # continuation: 130 hits in pages of 40 (the register lists them in a split by gender)
        q = f"@PID.5.1^{SPLITS}~@PID.7^1975"
        want = _pages(rep, q, "40^RD")
        assert len(want[0]) == 4 and len(want[1]) == 130
        assert _pages(rt, q, "40^RD") == want
        # too broad for the register's cap: AE with the TooManyHits code, where the replica lists them
        broad = [str(s) for s in parsed(ask(rt, _pdq(f"@PID.5.1^{WIDE}~@PID.7^1976"))[0])]
        assert any(s.startswith("MSA|AE") for s in broad) and any(s.startswith("ERR") and "207" in s for s in broad)
    source.close()


def test_each_injected_fault_gives_the_faces_unavailable_answer(db_url: str, replica: Engine, reader: Engine,
                                                                fake: RunningFake, tmp_path: Path) -> None:
    saved = fake.app.faults
    add_hl7_accounts(reader)
    with _both(db_url, replica, reader, fake, tmp_path) as (_rep, rt):
        for faults in (Faults(error_every=1), Faults(slow_every=1, slow_seconds=DEADLINE + 1.5)):
            fake.app.faults = faults
            try:
                status, body = _ask(rt, {"etternavn": "Brattlikrok", "fodselsdato": "1975-01-01"})
                assert status == 500 and b"Server.Unavailable" in body
                source = source_of(reader, fake, lookup_deadline=DEADLINE)
                with hl7_serving(reader, source) as srv:
                    got = [str(s) for s in parsed(ask(srv, _pdq(f"@PID.5.1^{SPLITS}~@PID.7^19750101"))[0])]
                    assert any(s.startswith("MSA|AE") for s in got)
                    assert any(s.startswith("ERR") and "207" in s for s in got)
                rec = InputRecord(1, ref="r1", given="Per", family=SPLITS, birth="1975-01-01")
                with read_connection(reader) as conn:
                    res = wash(conn, [rec], source=source)
                assert [(r.code, r.reason) for r in res.results] == [(Code.UNAVAILABLE, "upstream:unavailable")]
                source.close()
            finally:
                fake.app.faults = saved
    assert stored_keys(reader) == set()
